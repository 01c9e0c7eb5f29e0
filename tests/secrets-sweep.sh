#!/usr/bin/env bash
# The secrets sweep: after the test suite ran with its temporary directories kept under DIR
# (tests/run.sh: TMPDIR=DIR EASYNC_KEEP_TEST_DIRS=1), no file there may hold the lab's
# password or an OAuth token the lab issued, except password files and OAuth credential files,
# which must be 0600. Everything the daemons and the engine wrote is there: logs, state
# files, the store, outboxes, captured D-Bus replies and easyncctl output saved by the tests.
#
#   bash tests/secrets-sweep.sh DIR
set -euo pipefail
dir=${1:?usage: secrets-sweep.sh DIR}
# The password, the Basic credentials it makes (base64 of user:password, as an Authorization
# header would show them), the lab's access and refresh tokens.
pattern='labpass|bGFiQGV4YW1wbGUuY29tOmxhYnBhc3M|bGFiOmxhYnBhc3M|lab-access-[0-9]+-|lab-refresh-[0-9]+-'
files=$(find "$dir" -type f | wc -l)
bytes=$(du -sb "$dir" | cut -f1)
leaks=0
allowed=0
while IFS= read -r -d '' f; do
  case "$f" in
    */password|*/credentials/*)
      mode=$(stat -c %a "$f")
      if [ "$mode" != 600 ]; then
        echo "secrets sweep: $f holds a secret with mode $mode, not 0600"
        leaks=$((leaks + 1))
      fi
      allowed=$((allowed + 1))
      ;;
    *)
      echo "secrets sweep: a secret in $f:"
      grep -a -o -m 3 -E "$pattern" "$f" | head -3 | sed 's/^/    /'
      leaks=$((leaks + 1))
      ;;
  esac
done < <(grep -rlZ -a -E "$pattern" "$dir" 2>/dev/null || true)
echo "secrets sweep: $files files ($bytes bytes) scanned, $allowed password/credential files (0600), $leaks leaks"
[ "$leaks" = 0 ]
