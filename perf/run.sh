#!/usr/bin/env bash
# Builds khalo in Release and measures the decoder's convolution beside
# PyTorch's CPU conv3d on the same shapes and thread count, in one run.
# Writes perf/results/conv.json and perf/results/torch_conv.json; prints both tables.
#   perf/run.sh [--quick]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=()
[[ "${1:-}" == --quick ]] && quick=(--quick)
build=${KHALO_PERF_BUILD_DIR:-build-perf}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKHALO_ENABLE_PERF=ON -DKHALO_ENABLE_TESTS=OFF \
  -DKHALO_ENABLE_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target bench_conv >/dev/null
mkdir -p perf/results
echo "== khalo conv3d 3x3x3, 1 rank, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  "$build/perf/bench_conv" "${quick[@]}" --json perf/results/conv.json
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "== PyTorch conv3d 3x3x3, 1 thread"
  /usr/bin/python3 perf/torch_baseline.py --threads 1 "${quick[@]}" --json perf/results/torch_conv.json
else
  echo "(python3-torch is not installed: apt-get install python3-torch for the PyTorch column)"
fi
