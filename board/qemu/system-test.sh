#!/usr/bin/env bash
# The QEMU system test: easyncd and easync-lab cross-built for aarch64 (or armv7), booted
# under qemu-system-aarch64 -M virt -cpu cortex-a53 (qemu-system-arm -M virt -cpu cortex-a7
# with --arch armhf), no network device, a busybox initramfs, two virtio disks. Inside the
# guest easyncd provisions against the lab (the policy hooks record what they are asked),
# syncs every class, is pushed a new mail, and carries out the full remote wipe the lab
# orders on the data disk. The host then checks the guest's markers and scans the disk
# images. Exit status 0 only when everything held.
#
#   board/qemu/system-test.sh                  # build (cargo, incremental), boot, check
#   board/qemu/system-test.sh --no-build       # reuse target/cross/<triple>/release
#   board/qemu/system-test.sh --arch armhf     # armv7-unknown-linux-gnueabihf, Debian's armmp-lpae kernel
#   board/qemu/system-test.sh --discard unmap  # a data disk that honours discards (the
#                                              # default, ignore, accepts and drops them)
#
# Options: --timeout SECONDS (whole guest run, default 600), --step-timeout SECONDS (each
# guest wait, default 120), --items N (lab mailbox size, default 20), --seed N.
# Needs root and the Debian trixie chroot of ../shared/cross (made with its
# setup-toolchain.sh when missing), e2fsprogs on the host (mkfs.ext4 -d, debugfs).
# Work files (images, initramfs, console log) stay in target/qsys/<arch>/ for inspection.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$REPO/board/qemu"
ARCH=aarch64
BUILD=yes
TIMEOUT=600
STEP_TIMEOUT=120
ITEMS=20
SEED=1
DISCARD=ignore
while [ $# -gt 0 ]; do
    case "$1" in
        --no-build) BUILD=no; shift ;;
        --arch) ARCH="$2"; shift 2 ;;
        --timeout) TIMEOUT="$2"; shift 2 ;;
        --step-timeout) STEP_TIMEOUT="$2"; shift 2 ;;
        --items) ITEMS="$2"; shift 2 ;;
        --seed) SEED="$2"; shift 2 ;;
        --discard) DISCARD="$2"; shift 2 ;;
        -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
        *) echo "system-test.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
done
case "$DISCARD" in unmap|ignore) ;; *) echo "--discard must be unmap or ignore" >&2; exit 2 ;; esac
case "$ARCH" in
    aarch64|arm64)
        ARCH=aarch64 TRIPLE=aarch64-unknown-linux-gnu DEBARCH=arm64 GNU=aarch64-linux-gnu
        KMETA=linux-image-arm64 QEMU="qemu-system-aarch64 -M virt -cpu cortex-a53" ;;
    armhf|armv7)
        ARCH=armhf TRIPLE=armv7-unknown-linux-gnueabihf DEBARCH=armhf GNU=arm-linux-gnueabihf
        KMETA=linux-image-armmp-lpae QEMU="qemu-system-arm -M virt -cpu cortex-a7" ;;
    *) echo "--arch must be aarch64 or armhf" >&2; exit 2 ;;
esac

# --- toolchain (the chroot of ../shared/cross) ---------------------------------------------
CROSS_DIR=""
for dir in "${EASYNC_CROSS_DIR:-}" "$REPO/../shared/cross" "$REPO/../../shared/cross"; do
    if [ -n "$dir" ] && [ -f "$dir/lib.sh" ]; then CROSS_DIR="$(cd "$dir" && pwd)"; break; fi
done
if [ -z "$CROSS_DIR" ]; then
    echo "system-test.sh: no ../shared/cross/lib.sh next to the checkout: set EASYNC_CROSS_DIR" >&2
    exit 1
fi
# shellcheck source=/dev/null
source "$CROSS_DIR/lib.sh"
log() { printf '[qsys %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
case "$REPO/" in "$CROSS_REPO"/*) ;; *) die "$REPO is outside $CROSS_REPO, which the chroot mounts: set CROSS_REPO" ;; esac
# A bind mount left by an interrupted run may still show a checkout deleted since
# (a CI clone made again at the same path): drop it so lib.sh mounts the current one.
if mountpoint -q "$CROSS_ROOT$CROSS_REPO" \
    && [ "$(stat -c %d:%i "$CROSS_ROOT$CROSS_REPO")" != "$(stat -c %d:%i "$CROSS_REPO")" ]; then
    umount -l "$CROSS_ROOT$CROSS_REPO"
fi
for tool in mkfs.ext4 debugfs; do
    command -v "$tool" > /dev/null || die "$tool is missing: apt-get install e2fsprogs"
done

T_ALL=$(now_s)
if [ ! -e "$CROSS_ROOT/.cross-debootstrap-done" ]; then
    log "no toolchain in $CROSS_ROOT: making it ($CROSS_DIR/setup-toolchain.sh)"
    "$CROSS_DIR/setup-toolchain.sh"
fi

# --- 1. cross-build ------------------------------------------------------------------------
OUT="$REPO/target/cross/$TRIPLE/release"
BUILD_S="skipped (--no-build)"
if [ "$BUILD" = yes ]; then
    t=$(now_s)
    EASYNC_BINS=easyncd "$REPO/board/cross/build.sh" -t "$TRIPLE" > /dev/null
    EASYNC_BINS=easync-lab EASYNC_FEATURES=device,lab "$REPO/board/cross/build.sh" -t "$TRIPLE" > /dev/null
    BUILD_S="$(elapsed "$t") s"
    log "easyncd + easync-lab built in $BUILD_S"
fi
for b in easyncd easync-lab; do
    [ -f "$OUT/$b" ] || die "$OUT/$b is missing (run without --no-build)"
done

# --- 2. kernel, busybox, modules (fetched once) and the initramfs ----------------------------
t=$(now_s)
CACHE=/var/cache/cross-boot/easync-qsys-$ARCH        # inside the chroot
# virtio-blk and ext4 are modules in Debian's kernels; loaded in this order (one built into
# the kernel is left out of modules/order).
MODULES="virtio_blk crc32c_generic crc16 mbcache jbd2 ext4"
cross_run "set -e; mkdir -p $CACHE; cd $CACHE
    if [ ! -f vmlinuz ] || [ ! -f busybox ] || [ \"\$(cat modules/wanted 2>/dev/null)\" != '$MODULES' ]; then
        kpkg=\$(apt-cache depends $KMETA:$DEBARCH | awk '/Depends: linux-image-/{print \$2; exit}')
        rm -rf x modules *.deb; chown _apt . 2>/dev/null || true
        apt-get -qq download \"\$kpkg\" busybox-static:$DEBARCH
        mkdir x modules; touch modules/order; for d in *.deb; do dpkg-deb -x \"\$d\" x; done
        cp x/boot/vmlinuz-* vmlinuz; cp x/usr/bin/busybox busybox
        for m in $MODULES; do
            f=\$(find x/usr/lib/modules -name \"\$m.ko*\" | head -1)
            [ -n \"\$f\" ] || continue
            case \"\$f\" in *.xz) xz -dc \"\$f\" ;; *.zst) zstd -dc \"\$f\" ;; *) cat \"\$f\" ;; esac > modules/\$m.ko
            echo \$m >> modules/order
        done
        echo '$MODULES' > modules/wanted; echo \"\$kpkg\" > kernel-package; rm -rf x *.deb
    fi"
log "kernel $(cat "$CROSS_ROOT$CACHE/kernel-package") + busybox + modules ready"

WORK="$REPO/target/qsys/$ARCH"
rm -rf "$WORK"
ROOT="$WORK/root"
mkdir -p "$ROOT"/{bin,usr/bin,lib/modules,proc,sys,dev,run,tmp,etc/qsys,usr/lib/qsys/hooks}
cp "$CROSS_ROOT$CACHE/busybox" "$ROOT/bin/busybox"
cp "$CROSS_ROOT$CACHE"/modules/*.ko "$CROSS_ROOT$CACHE/modules/order" "$ROOT/lib/modules/"
cp "$OUT/easyncd" "$OUT/easync-lab" "$ROOT/usr/bin/"
# The binaries link glibc dynamically: the loader and the libraries they name.
cross_run "set -e; r='$ROOT'; sysroot=/usr/$GNU/lib
    for bin in \$r/usr/bin/easyncd \$r/usr/bin/easync-lab; do
        interp=\$($GNU-readelf -lW \$bin | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
        [ -n \"\$interp\" ] || continue
        mkdir -p \$r\$(dirname \$interp); cp -L \$sysroot/\$(basename \$interp) \$r\$interp
        for l in \$($GNU-readelf -dW \$bin | sed -n 's/.*Shared library: \[\(.*\)\]/\1/p'); do
            cp -L \$sysroot/\$l \$r/lib/
        done
    done"
cp "$HERE/init" "$ROOT/init"
cp "$HERE/easyncd.toml" "$HERE/policy.json" "$ROOT/etc/qsys/"
cp "$HERE"/hooks/* "$ROOT/usr/lib/qsys/hooks/"
chmod 755 "$ROOT/init" "$ROOT"/usr/lib/qsys/hooks/*
# The lab's default account password; easyncd wants it in a 0600 file.
printf 'labpass\n' > "$ROOT/etc/qsys/password"
chmod 600 "$ROOT/etc/qsys/password"
token() { printf '%s-%s' "$1" "$(od -An -tx1 -N8 /dev/urandom | tr -d ' \n')"; }
TOKEN=$(token QSYSOLD)
PUSH_TOKEN=$(token QSYSPUSH)
DEVICE_ID=$(sed -n 's/^device_id = "\(.*\)"/\1/p' "$HERE/easyncd.toml")
cat > "$ROOT/etc/qsys/env" <<EOF
TOKEN=$TOKEN
PUSH_TOKEN=$PUSH_TOKEN
ITEMS=$ITEMS
SEED=$SEED
DEVICE_ID=$DEVICE_ID
STEP_TIMEOUT=$STEP_TIMEOUT
WIPE_TIMEOUT=$STEP_TIMEOUT
EOF
cross_run "cd '$ROOT' && find . | cpio -o -H newc -R 0:0 --quiet | gzip -1 > '$WORK/initrd.gz'"
INITRAMFS_S=$(elapsed "$t")
log "initramfs $(stat -c %s "$WORK/initrd.gz") bytes ($INITRAMFS_S s)"

# --- 3. the disks: old content with the token on the data disk; an empty state disk ---------
mkdir -p "$WORK/old"/{documents,photos,Mail/INBOX/cur}
for i in 1 2 3; do
    printf 'Quarterly report %s, confidential: %s\n' "$i" "$TOKEN" > "$WORK/old/documents/report-$i.txt"
    printf 'From: boss@example.com\nSubject: old mail %s\n\n%s\n' "$i" "$TOKEN" \
        > "$WORK/old/Mail/INBOX/cur/old-$i:2,S"
done
for i in 1 2 3 4; do
    # 2 MiB each, the token spread through every 4 KiB block.
    awk -v t="$TOKEN" 'BEGIN { for (i = 0; i < 512; i++) printf "%-4096s", "photo block " i " " t }' \
        > "$WORK/old/photos/img-$i.raw"
done
truncate -s 64M "$WORK/data.img"
mkfs.ext4 -q -F -L data -d "$WORK/old" "$WORK/data.img"
truncate -s 32M "$WORK/state.img"
mkfs.ext4 -q -F -L easync "$WORK/state.img"
count_in() { { LC_ALL=C grep -a -o -F "$1" "$2" || true; } | wc -l; }
TOKEN_BEFORE=$(count_in "$TOKEN" "$WORK/data.img")
[ "$TOKEN_BEFORE" -gt 0 ] || die "the token is not found in the fresh data image: the scan is broken"
log "data.img: 64 MiB ext4, the token $TOKEN_BEFORE times; state.img: 32 MiB ext4, empty"

# --- 4. boot ---------------------------------------------------------------------------------
t=$(now_s)
set +e
cross_run "timeout --foreground -k 5 $TIMEOUT $QEMU -m 512 \
    -smp 2 -nographic -no-reboot -nic none \
    -kernel $CACHE/vmlinuz -initrd '$WORK/initrd.gz' \
    -append 'console=ttyAMA0 rdinit=/init panic=-1 quiet loglevel=3' \
    -drive file='$WORK/data.img',format=raw,if=none,id=data,discard=$DISCARD \
    -device virtio-blk-pci,drive=data,serial=qsys-data \
    -drive file='$WORK/state.img',format=raw,if=none,id=state \
    -device virtio-blk-pci,drive=state,serial=qsys-state" \
    < /dev/null 2>&1 | tr -d '\r' | tee "$WORK/console.log"
QEMU_RC=${PIPESTATUS[0]}
set -e
BOOT_S=$(elapsed "$t")
log "qemu exit $QEMU_RC after $BOOT_S s"

# --- 5. verdict ----------------------------------------------------------------------------
RESULTS=()
FAILED=0
record() {   # record NAME ok|FAIL|info DETAIL
    RESULTS+=("$(printf '%-26s %-5s %s' "$1" "$2" "$3")")
    [ "$2" != FAIL ] || FAILED=1
}
for name in BOOT OLD-DATA LAB PROVISIONED HOOK-device_lock HOOK-storage_encryption HOOK-policy \
    SYNCED PUSH MEM PUSH-IDLE WIPED WIPE-ACK WIPE-HOOKS AFTER-WIPE; do
    line=$(grep -m1 "^QSYS-$name " "$WORK/console.log" || true)
    case "$line" in
        "QSYS-$name ok "*) record "$name" ok "${line#"QSYS-$name ok "}" ;;
        "QSYS-$name FAIL "*) record "$name" FAIL "${line#"QSYS-$name FAIL "}" ;;
        *) record "$name" FAIL "no marker (the guest stopped before this step)" ;;
    esac
done
done_line=$(grep -m1 '^QSYS-DONE ' "$WORK/console.log" || true)
case "$done_line" in
    "QSYS-DONE ok "*) record DONE ok "guest powered off (${done_line#QSYS-DONE ok })" ;;
    *) record DONE FAIL "qemu exit $QEMU_RC, ${done_line:-no QSYS-DONE line (timeout after $TIMEOUT s?)}" ;;
esac

# The data disk: no token left anywhere in the image, a new empty file system on it.
left=$(count_in "$TOKEN" "$WORK/data.img")
if [ "$left" -eq 0 ]; then
    record HOST-DATA-TOKEN ok "token found 0 times in data.img (before the boot: $TOKEN_BEFORE)"
else
    record HOST-DATA-TOKEN FAIL "token still found $left times in data.img (before: $TOKEN_BEFORE)"
fi
data_ls=$(debugfs -R 'ls -p /' "$WORK/data.img" 2>/dev/null | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }' | paste -sd' ' -)
if [ "$data_ls" = "lost+found" ]; then
    record HOST-DATA-FS ok "data.img holds a new file system with only lost+found"
else
    record HOST-DATA-FS FAIL "data.img root: [${data_ls:-unreadable}]"
fi
# The state disk: the account's files are gone; only the wipe's record stays.
store_ls=$(debugfs -R 'ls -p /data' "$WORK/state.img" 2>/dev/null | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }' | paste -sd' ' -)
state_ls=$(debugfs -R 'ls -p /data/state' "$WORK/state.img" 2>/dev/null | awk -F/ 'NF > 5 && $6 != "." && $6 != ".." { print $6 }' | sort | paste -sd' ' -)
phase=$(debugfs -R 'cat /data/state/wipe.phase' "$WORK/state.img" 2>/dev/null | tr '\n' ' ')
account=$(debugfs -R 'cat /data/state/account.postcard' "$WORK/state.img" 2>/dev/null | LC_ALL=C tr -c '[:print:]' ' ')
if [ "$store_ls" = state ] && [ "$state_ls" = "account.postcard lock wipe.phase" ] \
    && [[ "$phase" == *completed* ]] && [[ "$account" == *"was wiped"* ]] && [ ${#account} -lt 512 ]; then
    record HOST-STORE-FILES ok "state.img data_dir: only state/{lock,wipe.phase (\"${phase% }\"),account.postcard (${#account} bytes: the wipe record)}"
else
    record HOST-STORE-FILES FAIL "data_dir: [$store_ls], state/: [$state_ls], wipe.phase: \"$phase\""
fi
# The pushed mail's token in the raw state image: unlinked files leave their blocks as they
# were (see README: easyncd's account clear removes files, it does not overwrite them).
residue=$(count_in "$PUSH_TOKEN" "$WORK/state.img")
record HOST-STORE-RESIDUE info "pushed mail's token found $residue times in the free blocks of state.img; $(count_in "$PUSH_TOKEN" "$WORK/data.img") times in data.img"

echo
echo "QEMU system test ($TRIPLE, discard=$DISCARD):"
printf '%s\n' "${RESULTS[@]}"
echo
printf '%-26s %s\n' "build (cargo, 2 binaries)" "$BUILD_S" \
    "initramfs" "${INITRAMFS_S} s ($(stat -c %s "$WORK/initrd.gz") bytes)" \
    "boot to poweroff" "${BOOT_S} s" \
    "whole run" "$(elapsed "$T_ALL") s"
passed=0 failed=0
for r in "${RESULTS[@]}"; do
    case "$r" in *" FAIL  "*) failed=$((failed + 1)) ;; *) passed=$((passed + 1)) ;; esac
done
if [ "$FAILED" = 0 ]; then
    echo "QSYS PASSED"
else
    echo "QSYS FAILED (console: $WORK/console.log)"
fi
echo "qsys: $passed passed, $failed failed"
exit "$FAILED"
