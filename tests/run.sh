#!/usr/bin/env bash
# The full test run: installs what the tests need, then builds and tests every part.
# README.md names this script; .ci/run calls it. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: libwbxml (the differential oracle and the benchmark's
# reference parser), a C compiler for the benchmark harness, losetup, mount and mkfs.ext4
# for the wipe tests on loop devices, cryptsetup for the crypto-erase tests, and
# dbus-daemon and dbus-send for the private buses of the D-Bus tests (setpriv, from util-linux, runs
# their second user), systemd for `systemd-analyze verify` of the shipped unit, and
# make and shellcheck for the Buildroot tree's post-build script and package .mk
# (tests/buildroot.rs).
need=()
for pkg in libwbxml2-utils libwbxml2-dev pkg-config gcc util-linux mount e2fsprogs cryptsetup-bin dbus-daemon dbus-bin systemd shellcheck make; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
# pip, for oelint-adv below (the Yocto recipe's linter).
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

# The SOGo peer (a real EAS server, ../shared/peers/sogo) for the interoperability tests:
# set up here, torn down when this script exits, whatever the outcome.
peers=""
for dir in "${EASYNC_PEERS:-}" "../shared/peers" "/work/shared/peers"; do
  if [ -n "$dir" ] && [ -x "$dir/sogo/setup.sh" ]; then peers=$(cd "$dir" && pwd); break; fi
done
if [ -n "$peers" ] && [ "${EASYNC_SKIP_SOGO:-0}" != 1 ]; then
  echo "starting the SOGo peer from $peers/sogo"
  bash "$peers/sogo/setup.sh" >/tmp/easync-sogo-setup.log 2>&1 || {
    cat /tmp/easync-sogo-setup.log; echo "the SOGo peer did not start (log above)"; exit 1; }
  trap 'bash "$peers/sogo/stop.sh" >/dev/null 2>&1 || true' EXIT
  export EASYNC_SOGO_URL=http://127.0.0.1:8701/Microsoft-Server-ActiveSync
  export EASYNC_SOGO_HTTPS_URL=https://127.0.0.1:8702/Microsoft-Server-ActiveSync
  export EASYNC_SOGO_CA=/var/lib/eas-peers/sogo/tls.crt
  export EASYNC_SOGO_IMAP=127.0.0.1:10143
else
  echo "NOTE: SOGo peer not found (set EASYNC_PEERS to the shared peers folder): interop tests will be SKIPPED"
fi

# oelint-adv (PyPI) lints the Yocto recipe in tests/yocto.rs; 9.11.2 knows --release wrynose.
pip_user=""
[ "$(id -u)" -eq 0 ] || pip_user="--user"
python3 -m pip install --quiet --root-user-action=ignore --break-system-packages $pip_user "oelint-adv==9.11.2"
# kconfiglib (PyPI) parses the Buildroot tree's Config.in in tests/buildroot.rs.
python3 -c 'import kconfiglib' 2>/dev/null ||
  python3 -m pip install --quiet --root-user-action=ignore --break-system-packages $pip_user kconfiglib
export EASYNC_OELINT_ADV="python3 -m oelint_adv"

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
cargo clippy --no-default-features --features device --all-targets -- -D warnings
# The device build must stand on its own: no XML tooling, no lab server.
cargo build --release --no-default-features --features device --bins
cargo test --no-default-features --features device --lib
# The suite keeps its temporary directories in a folder of its own, which the secrets sweep
# then searches for the lab's password and OAuth tokens (tests/secrets-sweep.sh).
sweep=$(mktemp -d "${TMPDIR:-/tmp}/easync-sweep.XXXXXX")
chmod 1777 "$sweep" # like /tmp: the bus tests run clients as another user
TMPDIR="$sweep" EASYNC_KEEP_TEST_DIRS=1 cargo test --lib --bins --tests
bash tests/secrets-sweep.sh "$sweep"
rm -rf "$sweep"

# The QEMU system test (board/qemu/README.md): easyncd and easync-lab cross-built for aarch64
# in the Debian trixie chroot of ../shared/cross (made on first use from Debian's mirror),
# booted under qemu-system-aarch64 with two virtio disks: provision, sync, push, full wipe.
# About 5 min from nothing (the cross build), 15 s when the binaries are current.
# EASYNC_SKIP_QEMU_SYSTEM=1 leaves it out (say so when you report a run).
if [ "${EASYNC_SKIP_QEMU_SYSTEM:-0}" = 1 ]; then
  echo "SKIPPED: the QEMU system test (EASYNC_SKIP_QEMU_SYSTEM=1)"
else
  cross=""
  for dir in "${EASYNC_CROSS_DIR:-}" "../shared/cross" "/work/shared/cross"; do
    if [ -n "$dir" ] && [ -f "$dir/lib.sh" ]; then cross=$(cd "$dir" && pwd); break; fi
  done
  [ -n "$cross" ] || { echo "no ../shared/cross (set EASYNC_CROSS_DIR): the QEMU system test cannot run"; exit 1; }
  # The chroot bind-mounts the checkout, wherever this clone is.
  EASYNC_CROSS_DIR="$cross" CROSS_REPO="$(pwd)" bash board/qemu/system-test.sh
fi
