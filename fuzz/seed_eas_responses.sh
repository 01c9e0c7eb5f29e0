#!/usr/bin/env bash
# Seeds fuzz/corpus/eas_responses/ from real lab traffic: runs the client-lab conversation
# tests with the lab capturing every response, then prefixes each body with the selector
# byte of the reader it belongs to (see fuzz_targets/eas_responses.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
capture=$(mktemp -d)
trap 'rm -rf "$capture"' EXIT
EASYNC_LAB_CAPTURE="$capture" cargo test -q --test lab_commands --test lab_faults >/dev/null
out=fuzz/corpus/eas_responses
mkdir -p "$out"
selector() {
  case "$1" in
    Provision) echo 0 ;; Settings) echo 1 ;; FolderSync) echo 2 ;; FolderCreate) echo 3 ;;
    FolderUpdate) echo 4 ;; FolderDelete) echo 5 ;; Sync) echo 6 ;; Ping) echo 7 ;;
    GetItemEstimate) echo 8 ;; ItemOperations) echo 9 ;; SendMail|SmartReply|SmartForward) echo 10 ;;
    MoveItems) echo 11 ;; MeetingResponse) echo 12 ;; Search) echo 13 ;;
    ResolveRecipients) echo 15 ;; Find) echo 16 ;; *) echo "" ;;
  esac
}
n=0
for f in "$capture"/*; do
  name=$(basename "$f"); cmd=$(echo "$name" | cut -d- -f2)
  if [[ $name == *.multipart ]]; then sel=17; else sel=$(selector "$cmd"); fi
  [ -n "$sel" ] || continue
  tmp=$(mktemp); printf "\\x$(printf %02x "$sel")" >"$tmp"; cat "$f" >>"$tmp"
  mv "$tmp" "$out/$(sha1sum "$tmp" | cut -c1-40)"   # named by content: duplicates collapse
  n=$((n + 1))
done
echo "$n seeds in $out"
