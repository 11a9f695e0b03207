#!/usr/bin/env bash
# khalo-decode against the PyTorch reference on configurations that are not
# committed: other seeds, shapes and chunkings, generated now. Needs Debian's
# python3-torch and python3-h5py; exits 77 (skipped) without them.
set -uo pipefail
decode=$1
compare=$2
mpiexec=(${KHALO_MPIEXEC:-mpirun})
here=$(dirname "$0")
/usr/bin/python3 -c 'import torch, h5py' 2>/dev/null || { echo "python3-torch/python3-h5py not installed: skipped"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
failures=0
# name seed in out blocks upsample shape chunks ranks
while read -r name seed cin cout blocks up shape chunks ranks; do
  /usr/bin/python3 "$here/wan_stage.py" --out "$dir" --name "$name" --seed "$seed" --in-dim "$cin" --out-dim "$cout" \
    --num-res-blocks "$blocks" --upsample "$up" --shape "$shape" ${chunks:+--chunks $chunks} >/dev/null || exit 1
  for layout in contiguous channels_last_3d; do
    "${mpiexec[@]}" -np "$ranks" "$decode" --input "$dir/$name.input.h5" --weights "$dir/$name.weights.h5" \
      --layout "$layout" ${chunks:+--chunks $chunks} --output "$dir/$name.$layout.h5" --quiet </dev/null
    if "$compare" "$dir/$name.$layout.h5" "$dir/$name.expected.h5" --rtol 1e-4 --atol 1e-5 >"$dir/report" 2>&1; then
      echo "ok:   $name ($layout, $ranks ranks)"
    else
      echo "FAIL: $name ($layout, $ranks ranks)"
      cat "$dir/report"
      failures=$((failures + 1))
    fi
  done
done <<'CONFIGS'
fresh_up3d 99 6 4 2 upsample3d 1,6,5,9,5 2 3
fresh_up2d 5 8 8 1 upsample2d 2,8,4,11,7 1 4
fresh_res 123 4 6 0 none 1,4,7,6,3 4 2
CONFIGS
exit $((failures > 0))
