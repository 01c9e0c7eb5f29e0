SUMMARY = "Device-side Exchange ActiveSync agent for embedded Linux"
DESCRIPTION = "easync keeps mail, calendar, contacts and tasks of an Exchange \
               ActiveSync account on the device: easyncd (the daemon, a systemd \
               service with the D-Bus service org.easync) applies the server's \
               security policy through hooks and carries out remote wipes; \
               easyncctl enrolls and inspects it."
# A placeholder until easync has a public home: the OEM's bbappend may point it elsewhere.
HOMEPAGE = "https://easync.example.org"
SECTION = "net"
CVE_PRODUCT = "easync"
LICENSE = "Apache-2.0"
# The source tree has no LICENSE file yet: the checksum covers the license line of Cargo.toml.
LIC_FILES_CHKSUM = "file://LICENSE;md5=22a53954e4e0ec258dfce4391e905dac"

# The OEM sets both, in a bbappend (meta-easync/README.md): its easync repository,
#   EASYNC_GIT_URI = "git://git.company.com/easync.git;protocol=https;branch=main"
# and the commit to build, SRCREV = "<40 hex digits>". Until SRCREV is set bitbake stops
# with "Please set a valid SRCREV for url ...".
EASYNC_GIT_URI ??= "git://git.example.com/easync.git;protocol=https;branch=main"
SRC_URI = "${EASYNC_GIT_URI}"
# S is left at its default: since whinlatter the git fetcher unpacks to ${UNPACKDIR}/${BP}.

require easync-crates.inc

inherit cargo cargo-update-recipe-crates systemd useradd

# The device build: easyncd with the D-Bus service and easyncctl, no lab server, no XML tools.
CARGO_BUILD_FLAGS += "--no-default-features --features device"
# Cargo.toml's release profile strips; Yocto strips itself and keeps the debug symbols
# in ${PN}-dbg (an already stripped binary is the QA error already-stripped).
export CARGO_PROFILE_RELEASE_STRIP = "false"

# The group whose members may call org.easync (board/dbus/org.easync.conf).
USERADD_PACKAGES = "${PN}"
GROUPADD_PARAM:${PN} = "--system easync"

SYSTEMD_SERVICE:${PN} = "easyncd.service"

do_install:append() {
    install -d ${D}${systemd_system_unitdir}
    install -m 0644 ${S}/board/systemd/easyncd.service ${D}${systemd_system_unitdir}/

    install -d ${D}${datadir}/dbus-1/system.d ${D}${datadir}/dbus-1/system-services
    install -m 0644 ${S}/board/dbus/org.easync.conf ${D}${datadir}/dbus-1/system.d/
    install -m 0644 ${S}/board/dbus/org.easync.service ${D}${datadir}/dbus-1/system-services/

    install -d -m 0750 ${D}${sysconfdir}/easync
    install -m 0640 ${S}/board/easync.toml ${D}${sysconfdir}/easync/easync.toml

    # The path board/easync.toml names in its [hooks] examples.
    install -d ${D}${nonarch_libdir}/easync/hooks
    install -m 0755 ${S}/board/hooks/device-lock-pwquality ${D}${nonarch_libdir}/easync/hooks/
    install -m 0755 ${S}/board/hooks/storage-encryption-luks ${D}${nonarch_libdir}/easync/hooks/

    install -d ${D}${docdir}/easync
    install -m 0644 ${S}/README.md ${D}${docdir}/easync/README.md
    install -m 0644 ${S}/board/hooks/README.md ${D}${docdir}/easync/hooks.md
}

PACKAGE_BEFORE_PN = "${PN}-hooks"

FILES:${PN} += "${datadir}/dbus-1/system.d/org.easync.conf \
                ${datadir}/dbus-1/system-services/org.easync.service"
FILES:${PN}-hooks += "${nonarch_libdir}/easync/hooks"

CONFFILES:${PN} = "${sysconfdir}/easync/easync.toml"

# easyncd serves org.easync on the system bus.
RDEPENDS:${PN} = "dbus"
# What the example hooks call: cryptsetup (storage-encryption-luks) and util-linux; both
# suggestions, an image with its own hooks leaves ${PN}-hooks out.
RDEPENDS:${PN}-hooks = "${PN}"
RRECOMMENDS:${PN}-hooks = "cryptsetup util-linux"
