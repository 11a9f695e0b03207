#!/usr/bin/env bash
# khalo's main job in one command, on a fresh Debian 12 machine or this one:
# installs what is missing, builds khalo-decode and khalo-compare, decodes a
# random latent with a small random whole Wan 2.1 decoder on 2 ranks (PNG frames
# and a snapshot) and on 1 rank, and checks that both outputs are the same bit
# for bit.
#
# Usage: scripts/demo.sh [--help]
# Environment:
#   KHALO_BUILD_DIR=DIR    build directory (default: build)
#   KHALO_DEMO_DIR=DIR     where the frames and snapshots go (default: demo-output)
#   KHALO_DEMO_RANKS=N     ranks of the distributed run (default: 2)
#   KHALO_SKIP_DEPS=1      do not install packages
set -euo pipefail
if [[ "${1:-}" == -h || "${1:-}" == --help ]]; then
  sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  exit 0
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

build=${KHALO_BUILD_DIR:-build}
out=${KHALO_DEMO_DIR:-demo-output}
ranks=${KHALO_DEMO_RANKS:-2}

if [[ -z "${KHALO_SKIP_DEPS:-}" ]]; then
  khalo_step "installing missing Debian packages"
  scripts/deps.sh
fi
khalo_step "building khalo-decode and khalo-compare (Release) in $build/"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$build" -j "$(nproc)" --target khalo-decode khalo-compare >/dev/null
decode=$build/src/apps/khalo-decode
compare=$build/src/apps/khalo-compare

# OpenMPI: as root it wants to be told that is fine; more ranks than cores needs --oversubscribe.
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
mkdir -p "$out"
# A latent of 3 frames, 12 x 16: 9 frames of 96 x 128 pixels; base width 16 (the released model has 96).
job=(--random-input "1,16,3,12,16" --random-weights --base-dim 16 --seed 2026 --layout channels_last_3d)
khalo_step "decoding on $ranks ranks: a (1, 16, 3, 12, 16) latent through a random whole Wan 2.1 decoder (base width 16)"
rm -rf "$out/frames"
mpirun -np "$ranks" "$decode" "${job[@]}" --quiet --output "$out/decoded.${ranks}ranks.h5" --frames "$out/frames" </dev/null
khalo_step "decoding the same on 1 rank"
mpirun -np 1 "$decode" "${job[@]}" --quiet --output "$out/decoded.1rank.h5" </dev/null
khalo_step "comparing the two snapshots bit for bit"
"$compare" "$out/decoded.1rank.h5" "$out/decoded.${ranks}ranks.h5" --bitwise
khalo_step "done"
khalo_note "The frames are PNG files in $out/frames/ (frame_00000.png ... frame_00008.png)."
khalo_note "$ranks ranks and 1 rank wrote $out/decoded.${ranks}ranks.h5 and $out/decoded.1rank.h5: identical bits."
khalo_note "Look inside: h5dump -A $out/decoded.1rank.h5   or   python3 -c \"import h5py; print(h5py.File('$out/decoded.1rank.h5')['data'].shape)\""
