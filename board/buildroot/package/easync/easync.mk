################################################################################
#
# easync
#
################################################################################

EASYNC_VERSION = 0.1.0
EASYNC_SITE = $(call github,easync,easync,v$(EASYNC_VERSION))
EASYNC_LICENSE = Apache-2.0
EASYNC_LICENSE_FILES = LICENSE

# The device build: easyncd with the D-Bus service, and easyncctl; no lab
# server, no XML tools. "cargo install" compiles again, so it gets the same
# features as the build.
EASYNC_CARGO_BUILD_OPTS = --no-default-features --features device
EASYNC_CARGO_INSTALL_OPTS = --no-default-features --features device
# Cargo.toml's release profile strips the binaries: leave that to Buildroot
# (BR2_STRIP_strip), so that BR2_STRIP_none keeps the symbols.
EASYNC_CARGO_ENV = CARGO_PROFILE_RELEASE_STRIP=false

# The group whose members may call org.easync (board/dbus/org.easync.conf).
EASYNC_USERS = - - easync -1 * - - - easync D-Bus clients

# Building from a checkout (EASYNC_OVERRIDE_SRCDIR in local.mk) rsyncs the
# tree instead of downloading it: leave the build products out, and vendor
# the crates here, as the download step does for the release tarball (this
# needs the network once; the build itself stays offline).
EASYNC_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude=/target --exclude=/fuzz/target --exclude=/fuzz/corpus

define EASYNC_VENDOR_CHECKOUT
	if [ ! -d $(@D)/VENDOR ]; then \
		mkdir -p $(@D)/.cargo && \
		cd $(@D) && \
		$(HOST_MAKE_ENV) $(PKG_COMMON_CARGO_ENV) \
			cargo vendor --locked VENDOR >.cargo/config.toml; \
	fi
endef
EASYNC_PRE_BUILD_HOOKS += EASYNC_VENDOR_CHECKOUT

# The unit is installed, not enabled: enabling it is the board's choice (see
# board/qemu-aarch64-virt/post-build.sh of this tree).
define EASYNC_INSTALL_INIT_SYSTEMD
	$(INSTALL) -D -m 0644 $(@D)/board/systemd/easyncd.service \
		$(TARGET_DIR)/usr/lib/systemd/system/easyncd.service
endef

define EASYNC_INSTALL_BOARD_FILES
	$(INSTALL) -D -m 0644 $(@D)/board/dbus/org.easync.conf \
		$(TARGET_DIR)/usr/share/dbus-1/system.d/org.easync.conf
	$(INSTALL) -D -m 0644 $(@D)/board/dbus/org.easync.service \
		$(TARGET_DIR)/usr/share/dbus-1/system-services/org.easync.service
	$(INSTALL) -d -m 0750 $(TARGET_DIR)/etc/easync
	$(INSTALL) -m 0640 $(@D)/board/easync.toml \
		$(TARGET_DIR)/etc/easync/easync.toml
	$(INSTALL) -D -m 0755 $(@D)/board/hooks/device-lock-pwquality \
		$(TARGET_DIR)/usr/lib/easync/hooks/device-lock-pwquality
	$(INSTALL) -D -m 0755 $(@D)/board/hooks/storage-encryption-luks \
		$(TARGET_DIR)/usr/lib/easync/hooks/storage-encryption-luks
endef
EASYNC_POST_INSTALL_TARGET_HOOKS += EASYNC_INSTALL_BOARD_FILES

$(eval $(cargo-package))
