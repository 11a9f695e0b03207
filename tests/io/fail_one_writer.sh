#!/usr/bin/env bash
# One rank fails alone while a snapshot writer is open (its destructor runs
# during unwinding on that rank only): that rank must not enter a collective
# close, so it reaches MPI_Abort and the job ends within seconds, with one
# line naming the rank; the previous snapshot stays intact and no temporary is
# left beside it.
set -euo pipefail
tool=$1
launcher=(${KHALO_LAUNCHER:-})
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
target=$dir/snap.h5

"${launcher[@]}" "$tool" write "$target" 1.0 1
before=$(stat -c '%i %s %Y' "$target")

start=$SECONDS
rc=0
timeout 60 "${launcher[@]}" "$tool" fail-one "$target" 2.0 >"$dir/out" 2>&1 || rc=$?
took=$((SECONDS - start))
cat "$dir/out"
if [[ $rc -eq 124 ]]; then
  echo "FAIL: the job did not end within 60 s (a rank waits in a collective)"
  exit 1
fi
if [[ $rc -eq 0 ]]; then
  echo "FAIL: the job succeeded although a rank failed"
  exit 1
fi
if ! grep -q '^khalo: rank [0-9]*: injected failure while the snapshot writer is open' "$dir/out"; then
  echo "FAIL: no line naming the failing rank and the cause"
  exit 1
fi
after=$(stat -c '%i %s %Y' "$target")
if [[ "$before" != "$after" ]]; then
  echo "FAIL: the target changed ($before -> $after)"
  exit 1
fi
"${launcher[@]}" "$tool" check "$target" 1.0
left=$(find "$dir" -name '.snap.h5.khalo-tmp-*')
if [[ -n "$left" ]]; then
  echo "FAIL: temporary left beside the target: $left"
  exit 1
fi
echo "one rank failing with an open writer: job ended in ${took} s (exit $rc), previous snapshot intact, no temporary"
