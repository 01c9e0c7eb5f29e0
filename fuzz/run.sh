#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600) and prints one line per target:
# executions, executions per second, seconds fuzzed, corpus size and crashes found. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Seeds: the bundled sample for the codec targets,
# real lab traffic for eas_responses (seed_eas_responses.sh), the example configuration and
# small local files for local_files, inputs made by easync's own writers for dbus_wire,
# device_input and net_headers (examples/seeds.rs), openssl-made certificates for tls_der. A crash leaves its
# input in fuzz/artifacts/<target>/; make it a regression test before fixing it.
#
#   bash fuzz/run.sh            # 10 minutes per target
#   bash fuzz/run.sh 60 reader  # one target for a minute
set -euo pipefail
cd "$(dirname "$0")"
seconds=${1:-600}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(cargo +nightly fuzz list)
fi

# Self-signed certificates as servers send them: RSA and EC keys, a name with CN and O,
# subjectAltName DNS names and addresses, UTCTime and (past 2049) GeneralizedTime validity.
seed_certificates() {
  local dir=$1
  if ! command -v openssl >/dev/null; then
    echo "tls_der: no openssl here; starting without seeds" >&2
    return 0
  fi
  local san="subjectAltName=DNS:mail.example.com,DNS:*.example.com,IP:192.0.2.1,IP:2001:db8::1"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout /dev/null -days 30 \
    -subj "/CN=mail.example.com/O=Example Org" -addext "$san" \
    -outform DER -out "$dir/rsa.der" 2>/dev/null
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout /dev/null \
    -days 20000 -subj "/O=Example/CN=easync lab CA" -addext "$san" \
    -outform DER -out "$dir/ec-generalized-time.der" 2>/dev/null
}

seed() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return 0
  case "$target" in
    reader|roundtrip) cp ../samples/sync-response.wbxml "$dir/" ;;
    xml_encode) cargo run -q --manifest-path ../Cargo.toml -- wbxml decode \
                  ../samples/sync-response.wbxml >"$dir/sync-response.xml" ;;
    eas_responses) bash seed_eas_responses.sh ;;
    local_files) printf '\x00' >"$dir/config"; cat ../board/easync.toml >>"$dir/config"
                 cargo run -q --example seeds -- local_files "$dir" ;;
    dbus_wire|device_input|net_headers) cargo run -q --example seeds -- "$target" "$dir" ;;
    tls_der) seed_certificates "$dir" ;;
    *) ;;
  esac
}

printf '%-16s %14s %8s %8s %8s %8s\n' target executions exec/s seconds corpus crashes
status=0
for t in "${targets[@]}"; do
  seed "$t"
  # Build first, so that the seconds column is the fuzzing time alone.
  if ! cargo +nightly fuzz build "$t" >/dev/null 2>&1; then
    echo "$t: does not build (cargo +nightly fuzz build $t)" >&2
    status=1
    continue
  fi
  log=$(mktemp)
  # (ls of a missing directory would end the script under pipefail.)
  mkdir -p artifacts/"$t"
  before=$(ls artifacts/"$t" | wc -l)
  started=$(date +%s)
  # libFuzzer exits non-zero on a crash; the run goes on with the next target.
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1 || status=1
  took=$(( $(date +%s) - started ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  after=$(ls artifacts/"$t" | wc -l)
  printf '%-16s %14s %8s %8s %8s %8s\n' "$t" "${execs:-?}" "${rate:-?}" "$took" \
    "$(ls corpus/"$t" | wc -l)" "$((after - before))"
  rm -f "$log"
done
exit $status
