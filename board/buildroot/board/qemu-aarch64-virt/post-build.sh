#!/bin/sh
# Post-build script of easync_qemu_aarch64_virt_defconfig (BR2_ROOTFS_POST_BUILD_SCRIPT):
# Buildroot runs it with the target directory as $1 after every package is installed, on
# every build, so each step is idempotent. The easync package installed easyncd, the unit,
# the bus policy, the activation file, /etc/easync/easync.toml and the example hooks; this
# board adds what is its own choice:
#  - easyncd.service enabled (a wants link, and a preset for `systemctl preset-all`);
#  - the data partition: the second virtio disk /dev/vdb mounted at /data, the path the
#    unit's ReadWritePaths= names (systemd refuses to start a unit whose ReadWritePaths=
#    is missing, so /data always exists in the image).
# Secrets are not made up here: /etc/easync/password (0600) comes from the image's rootfs
# overlay (BR2_ROOTFS_OVERLAY); without it the unit's LoadCredential= fails and easyncd
# does not start.
set -eu

target=${1:?usage: post-build.sh TARGET_DIR}
unit=usr/lib/systemd/system/easyncd.service

if [ ! -f "$target/$unit" ]; then
    echo "post-build.sh: $target/$unit is missing: enable BR2_PACKAGE_EASYNC and BR2_INIT_SYSTEMD" >&2
    exit 1
fi

mkdir -p "$target/etc/systemd/system/multi-user.target.wants"
ln -sfn "/$unit" "$target/etc/systemd/system/multi-user.target.wants/easyncd.service"
mkdir -p "$target/usr/lib/systemd/system-preset"
echo "enable easyncd.service" >"$target/usr/lib/systemd/system-preset/80-easync.preset"

mkdir -p "$target/data"
fstab="$target/etc/fstab"
touch "$fstab"
if ! grep -q '^/dev/vdb[[:space:]]' "$fstab"; then
    printf '%s\n' '/dev/vdb /data ext4 nofail,nodev,nosuid,x-systemd.device-timeout=10s 0 2' >>"$fstab"
fi

if [ ! -f "$target/etc/easync/password" ]; then
    echo "post-build.sh: note: no /etc/easync/password in the image; easyncd starts once the overlay provides it" >&2
fi
