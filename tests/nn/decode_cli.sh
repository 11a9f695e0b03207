#!/usr/bin/env bash
# khalo-decode end to end: equal to the PyTorch golden output, the same bytes
# on 1 and 2 ranks (khalo-compare --bitwise and h5diff agree), layer dumps,
# the contract's attributes, and bad input ending every rank with exit 2
# without damaging an existing output file.
set -uo pipefail
decode=$1
compare=$2
mpiexec=(${KHALO_MPIEXEC:-mpirun})
golden=$(dirname "$0")/../reference/golden
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=tests/nn/cli_checks.sh
source "$(dirname "$0")/cli_checks.sh"

cfg=up3d_chunks3
for layout in contiguous channels_last_3d; do
  for np in 1 2; do
    check 0 "khalo-decode: $np ranks" -- run "$np" --input "$golden/$cfg.input.h5" --weights "$golden/$cfg.weights.h5" \
      --chunks 3 --layout "$layout" --output "$dir/$layout.$np.h5" --dump-layers "$dir/$layout.$np.layers.h5"
  done
  check 0 "result: equal" -- "$compare" "$dir/$layout.1.h5" "$dir/$layout.2.h5" --bitwise
  check 0 "result: equal" -- "$compare" "$dir/$layout.1.layers.h5" "$dir/$layout.2.layers.h5" --bitwise
  check 0 "result: equal" -- "$compare" "$dir/$layout.2.h5" "$golden/$cfg.expected.h5" --rtol 1e-4 --atol 1e-5
  if command -v h5diff >/dev/null; then
    # The data agree; the `ranks` attribute (provenance) differs by design.
    check 0 "" -- h5diff --exclude-attribute /data "$dir/$layout.1.h5" "$dir/$layout.2.h5"
    check 1 "ranks of </data>" -- h5diff -v "$dir/$layout.1.h5" "$dir/$layout.2.h5"
  fi
done
check 0 "result: equal" -- "$compare" "$dir/contiguous.2.h5" "$dir/channels_last_3d.2.h5" --rtol 1e-5 --atol 1e-5
if command -v h5dump >/dev/null; then
  check 0 "khalo_format_version" -- h5dump -A "$dir/contiguous.2.h5"
  check 0 '"NCDHW"' -- h5dump -A "$dir/contiguous.2.h5"
  check 0 '"channels_last_3d"' -- h5dump -A "$dir/channels_last_3d.2.h5"
fi
# h5py (what users open snapshots with) reads the global array in logical order.
if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
  check 0 "logical order ok" -- /usr/bin/python3 -c "
import h5py, numpy as np
a = h5py.File('$dir/channels_last_3d.2.h5', 'r')['data']
b = h5py.File('$golden/$cfg.expected.h5', 'r')['data'][()]
assert a.shape == b.shape and a.attrs['ranks'] == 2 and a.attrs['khalo_format_version'] == 1, dict(a.attrs)
assert np.allclose(a[()], b, rtol=1e-4, atol=1e-5)
print('logical order ok')"
fi
# The two layouts agree within float32 rounding, layer by layer.
check 0 "/chunk2/upsamplers.0.resample.1" -- "$compare" "$dir/contiguous.1.layers.h5" "$dir/channels_last_3d.1.layers.h5" --rtol 1e-4 --atol 1e-5
# Another input: the report names the first layer that diverges.
check 0 "" -- run 1 --input "$golden/res_same.input.h5" --weights "$golden/res_same.weights.h5" --output "$dir/a.h5" --dump-layers "$dir/a.layers.h5" --quiet
check 0 "" -- run 1 --input "$golden/res_same.expected.h5" --weights "$golden/res_same.weights.h5" --output "$dir/b.h5" --dump-layers "$dir/b.layers.h5" --quiet
check 1 "first divergent dataset: /resnets.0.conv1" -- "$compare" "$dir/a.layers.h5" "$dir/b.layers.h5"
# Random input and weights: the same bits on 1 and 2 ranks.
for np in 1 2; do
  check 0 "->" -- run "$np" --random-input 1,8,3,9,6 --random-weights --seed 5 --out-dim 8 --upsample upsample2d \
    --output "$dir/random.$np.h5" --quiet
done
check 0 "result: equal" -- "$compare" "$dir/random.1.h5" "$dir/random.2.h5" --bitwise

# The same stage from a safetensors checkpoint (diffusers' names, an encoder key beside it, the
# stage picked by --prefix, the conv weights stored as BF16 where exact): the same bits as from HDF5.
if /usr/bin/python3 -c 'import h5py, numpy' 2>/dev/null; then
  /usr/bin/python3 - "$golden/$cfg.weights.h5" "$dir/vae.safetensors" <<'PY'
import json, struct, sys
import h5py, numpy as np
src, dst = sys.argv[1:3]
tensors = {"encoder.conv_out.weight": np.arange(6, dtype=np.float32).reshape(2, 3)}
with h5py.File(src, "r") as f:
    f.visititems(lambda k, v: tensors.__setitem__("decoder.up_blocks.1." + k, v[()]) if isinstance(v, h5py.Dataset) else None)
header, blobs, offset = {"__metadata__": {"format": "pt"}}, [], 0
for key, value in tensors.items():
    value = np.ascontiguousarray(value, dtype="<f4")
    bits = value.view("<u4")
    # BF16 when every value is exact in it (the biases of this stage are not, the rest stay F32).
    if np.all(bits & 0xFFFF == 0):
        raw, dtype = (bits >> 16).astype("<u2").tobytes(), "BF16"
    else:
        raw, dtype = value.tobytes(), "F32"
    header[key] = {"dtype": dtype, "shape": list(value.shape), "data_offsets": [offset, offset + len(raw)]}
    blobs.append(raw)
    offset += len(raw)
text = json.dumps(header).encode()
with open(dst, "wb") as out:
    out.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))
PY
  check 0 "khalo-decode: 2 ranks" -- run 2 --input "$golden/$cfg.input.h5" --weights "$dir/vae.safetensors" \
    --prefix decoder.up_blocks.1. --chunks 3 --layout channels_last_3d --output "$dir/safetensors.2.h5"
  check 0 "result: equal" -- "$compare" "$dir/safetensors.2.h5" "$dir/channels_last_3d.2.h5" --bitwise
  check 2 "missing key 'resnets.0.conv1.weight'" -- run 2 --input "$golden/$cfg.input.h5" \
    --weights "$dir/vae.safetensors" --prefix decoder.up_blocks.9. --output "$dir/keep.h5"
fi

# Bad input: exit 2 with one clear message; an existing output stays as it was.
cp "$dir/random.1.h5" "$dir/keep.h5"
sum=$(md5sum <"$dir/keep.h5")
check 2 "no such file" -- run 2 --input "$dir/missing.h5" --weights "$golden/$cfg.weights.h5" --output "$dir/keep.h5"
check 2 "missing key 'resnets.0.conv1.weight'" -- run 2 --input "$golden/$cfg.input.h5" --weights "$golden/$cfg.weights.h5" \
  --prefix decoder.up_blocks.1. --output "$dir/keep.h5"
check 2 "cannot split 4 frame(s) into 9 chunk(s)" -- run 2 --input "$golden/$cfg.input.h5" --weights "$golden/$cfg.weights.h5" --chunks 9 \
  --output "$dir/keep.h5"
check 2 "would hold none" -- run 2 --random-input 1,4,2,1,4 --random-weights --output "$dir/keep.h5"
check 2 "the stage takes 8" -- run 2 --input "$golden/res_same.input.h5" --weights "$golden/$cfg.weights.h5" --output "$dir/keep.h5"
check 2 "no such dataset" -- run 2 --input "$golden/$cfg.input.h5:/nope" --weights "$golden/$cfg.weights.h5" --output "$dir/keep.h5"
check 2 "give --output" -- run 2 --random-input 1,4,2,4,4 --random-weights
if [[ $(md5sum <"$dir/keep.h5") != "$sum" ]]; then
  echo "FAIL: a failed decode changed the existing output file"
  failures=$((failures + 1))
fi
if [[ $failures -ne 0 ]]; then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all khalo-decode checks passed"
