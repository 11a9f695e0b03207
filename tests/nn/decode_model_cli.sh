#!/usr/bin/env bash
# khalo-decode with the whole decoder, end to end: a safetensors checkpoint (with decoy
# encoder keys) against the PyTorch golden at 1 and 3 ranks in both layouts, the same bytes
# on any rank count, PNG frames (one per output frame), and damaged checkpoints ending every
# rank with exit 2 and one message that names the key.
set -uo pipefail
decode=$1
compare=$2
mpiexec=(${KHALO_MPIEXEC:-mpirun})
golden=$(dirname "$0")/../reference/golden_decoder
python=/usr/bin/python3
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# shellcheck source=tests/nn/cli_checks.sh
source "$(dirname "$0")/cli_checks.sh"

cfg=dec_mixed # F32, F16 and BF16 tensors, decoy encoder keys, 3 latent frames, 5 rows
for layout in contiguous channels_last_3d; do
  for np in 1 3; do
    check 0 "latent frame 3/3" -- run "$np" --input "$golden/$cfg.input.h5" --weights "$golden/$cfg.safetensors" \
      --layout "$layout" --output "$dir/$layout.$np.h5" --frames "$dir/frames.$layout.$np"
  done
  check 0 "result: equal" -- "$compare" "$dir/$layout.1.h5" "$dir/$layout.3.h5" --bitwise
  check 0 "result: equal" -- "$compare" "$dir/$layout.3.h5" "$golden/$cfg.expected.h5" --rtol 1e-4 --atol 1e-4
  check 0 "" -- cmp "$dir/frames.$layout.1/frame_00008.png" "$dir/frames.$layout.3/frame_00008.png"
done
count=$(find "$dir/frames.contiguous.3" -name 'frame_*.png' | wc -l)
if [[ $count -ne 9 ]]; then
  echo "FAIL: $count PNG frames, want 9 (1 + 4 (3 - 1))"
  failures=$((failures + 1))
fi
check 0 "peak memory per rank" -- run 2 --input "$golden/dec_z16_norm.input.h5" --weights "$golden/dec_z16_norm.safetensors" \
  --latents-normalized --output "$dir/norm.h5" --quiet
check 0 "result: equal" -- "$compare" "$dir/norm.h5" "$golden/dec_z16_norm.expected.h5" --rtol 1e-4 --atol 1e-4
# Random whole models need no file; the decoder's options need the decoder.
check 0 "decoder z_dim 4" -- run 2 --random-input 1,4,2,3,4 --random-weights --base-dim 2 --output "$dir/random.h5"
check 2 "need the whole decoder" -- run 2 --random-input 1,4,2,3,4 --random-weights --frames "$dir/x"
check 2 "needs Wan 2.1's 16 latent channels" -- run 2 --input "$golden/$cfg.input.h5" \
  --weights "$golden/$cfg.safetensors" --latents-normalized --output "$dir/x.h5"

# Damaged checkpoints, written from the golden one: every rank ends with exit 2, one message.
damage() { # damage KIND OUT: a copy of dec_f32.safetensors with one defect
  "$python" - "$golden/dec_f32.safetensors" "$2" "$1" <<'PY'
import json, struct, sys
src, dst, kind = sys.argv[1:]
raw = open(src, "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
data = raw[8 + n:]
key = "decoder.mid_block.resnets.0.conv1.weight"
if kind == "missing":
    del header["decoder.conv_out.bias"]
elif kind == "shape":
    s = header[key]["shape"]
    header[key]["shape"] = [s[1], s[0]] + s[2:] if s[0] != s[1] else [s[0] * s[1], 1] + s[2:]
elif kind == "offsets":
    header[key]["data_offsets"] = [len(data) + 64, len(data) + 64 + 4]
elif kind == "dtype":
    header[key]["dtype"] = "F8_E4M3"
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
out = struct.pack("<Q", len(text)) + text + data
if kind == "truncated":
    out = raw[: 8 + n + len(data) // 2]
open(dst, "wb").write(out)
PY
}
for kind in missing shape offsets dtype truncated; do
  damage "$kind" "$dir/$kind.safetensors"
  want="decoder.mid_block.resnets.0.conv1.weight"
  [[ $kind == missing ]] && want="decoder.conv_out.bias"
  [[ $kind == truncated ]] && want="$kind.safetensors"
  echo previous >"$dir/keep.h5"
  check 2 "$want" -- run 2 --input "$golden/dec_f32.input.h5" --weights "$dir/$kind.safetensors" \
    --output "$dir/keep.h5"
  lines=$(grep -c "^khalo-decode: error\|^khalo: rank" <<<"$last_output")
  if [[ $lines -ne 1 ]]; then
    echo "FAIL: $kind: $lines error lines, want one"
    failures=$((failures + 1))
  fi
  if [[ "$(cat "$dir/keep.h5")" != previous ]]; then
    echo "FAIL: $kind: the existing output was damaged"
    failures=$((failures + 1))
  fi
done
echo "$failures failure(s)"
[[ $failures -eq 0 ]]
