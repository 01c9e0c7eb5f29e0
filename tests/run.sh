#!/usr/bin/env bash
# The full test run: installs what the tests need, then builds and tests every part.
# README.md names this script; .ci/run calls it. Safe to run again and again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests use: libwbxml (the differential oracle and the benchmark's
# reference parser) and a C compiler for the benchmark harness.
need=()
for pkg in libwbxml2-utils libwbxml2-dev pkg-config gcc; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}"
  sudo_cmd=""
  [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${need[@]}" >/dev/null
fi

cargo fmt --all -- --check
cargo clippy --all-targets -- -D warnings
# The device build must stand on its own: no XML tooling, no lab server.
cargo build --release --no-default-features --features device --bins
cargo test --no-default-features --features device --lib
cargo test --lib --bins --tests
