#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 600) and prints one line per target:
# executions, seconds, corpus size and crashes found. Needs the nightly toolchain and
# cargo-fuzz (`cargo install cargo-fuzz`). Seeds: the bundled sample for the codec targets,
# real lab traffic for eas_responses (seed_eas_responses.sh), the example configuration for
# local_files. A crash leaves its input in fuzz/artifacts/<target>/; make it a regression
# test before fixing it.
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

seed() {
  local target=$1 dir=corpus/$1
  mkdir -p "$dir"
  [ -n "$(ls -A "$dir")" ] && return 0
  case "$target" in
    reader|roundtrip) cp ../samples/sync-response.wbxml "$dir/" ;;
    xml_encode) cargo run -q --manifest-path ../Cargo.toml -- wbxml decode \
                  ../samples/sync-response.wbxml >"$dir/sync-response.xml" ;;
    eas_responses) bash seed_eas_responses.sh ;;
    local_files) printf '\x00' >"$dir/config"; cat ../board/easync.toml >>"$dir/config" ;;
    *) ;;
  esac
}

printf '%-16s %14s %8s %8s %8s\n' target executions seconds corpus crashes
status=0
for t in "${targets[@]}"; do
  seed "$t"
  log=$(mktemp)
  before=$(ls artifacts/"$t" 2>/dev/null | wc -l)
  started=$(date +%s)
  # libFuzzer exits non-zero on a crash; the run goes on with the next target.
  cargo +nightly fuzz run "$t" -- -max_total_time="$seconds" -print_final_stats=1 \
    >"$log" 2>&1 || status=1
  took=$(( $(date +%s) - started ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  after=$(ls artifacts/"$t" 2>/dev/null | wc -l)
  printf '%-16s %14s %8s %8s %8s\n' "$t" "${execs:-?}" "$took" \
    "$(ls corpus/"$t" | wc -l)" "$((after - before))"
  rm -f "$log"
done
exit $status
