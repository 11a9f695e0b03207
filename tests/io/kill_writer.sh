#!/usr/bin/env bash
# Crash safety: a writer killed (SIGKILL) in the middle of a large write leaves
# the previous snapshot readable with its old contents, and nothing but that
# snapshot under the target name.
set -euo pipefail
tool=$1
launcher=(${KHALO_LAUNCHER:-})
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target=$dir/snap.h5

"${launcher[@]}" "$tool" write "$target" 1.0 1
"${launcher[@]}" "$tool" check "$target" 1.0
before=$(stat -c '%i %s %Y' "$target")

# A 4 x 256 MiB write, killed once it has started writing.
"${launcher[@]}" "$tool" write "$target" 2.0 256 >"$dir/out" 2>&1 &
writer=$!
for _ in $(seq 1 300); do
  grep -q writing "$dir/out" 2>/dev/null && break
  sleep 0.05
done
sleep 0.3
pids=$(pgrep -f "snapshot_tool write $target" || true)
if [[ -z "$pids" ]]; then
  echo "FAIL: the writer finished before it could be killed; make the write larger"
  exit 1
fi
kill -9 $pids
wait "$writer" || true

after=$(stat -c '%i %s %Y' "$target")
if [[ "$before" != "$after" ]]; then
  echo "FAIL: the target changed under the killed writer ($before -> $after)"
  exit 1
fi
"${launcher[@]}" "$tool" check "$target" 1.0
echo "left in the directory:"; ls -a "$dir"
echo "kill during write: previous snapshot intact"
