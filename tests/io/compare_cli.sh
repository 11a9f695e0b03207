#!/usr/bin/env bash
# khalo-compare's exit codes and output on the committed golden files:
# 0 equal, 1 different, 2 any error (shape mismatch, missing file, bad option).
set -uo pipefail
compare=$1
launcher=(${KHALO_LAUNCHER:-})
golden=$(dirname "$0")/../reference/golden
failures=0
expect() {
  local want=$1 pattern=$2
  shift 2
  local out rc
  out=$("${launcher[@]}" "$compare" "$@" 2>&1)
  rc=$?
  if [[ $rc -ne $want ]] || ! grep -q -- "$pattern" <<<"$out"; then
    echo "FAIL: khalo-compare $* -> exit $rc (want $want, output should contain '$pattern')"
    echo "$out" | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok:   khalo-compare $* -> $rc"
  fi
}
expect 0 "result: equal" "$golden/res_same.expected.h5" "$golden/res_same.expected.h5" --bitwise
expect 1 "first divergent dataset: /data" "$golden/res_same.input.h5" "$golden/res_same.expected.h5"
expect 1 '"equal": false' "$golden/res_same.input.h5" "$golden/res_same.expected.h5" --json
expect 2 "has shape" "$golden/res_same.expected.h5" "$golden/res_shortcut.expected.h5"
expect 2 "no such file" "$golden/res_same.expected.h5" /nonexistent/x.h5
expect 2 "no such dataset" "$golden/res_same.expected.h5" "$golden/res_same.expected.h5" --dataset /nope
expect 2 "not an HDF5 file" "$0" "$golden/res_same.expected.h5"
expect 2 "rtol" "$golden/res_same.expected.h5" "$golden/res_same.expected.h5" --rtol -1
expect 0 "Usage" --help
if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all khalo-compare checks passed"
