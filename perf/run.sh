#!/usr/bin/env bash
# Builds khalo in Release and measures the decoder's convolution beside
# PyTorch's CPU conv3d on the same shapes and thread count, in one run.
# Also times snapshot I/O on 2 ranks beside a plain sequential write of the same bytes.
# Writes perf/results/{conv,torch_conv,io}.json and prints the tables.
#   perf/run.sh [--quick]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=()
[[ "${1:-}" == --quick ]] && quick=(--quick)
build=${KHALO_PERF_BUILD_DIR:-build-perf}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKHALO_ENABLE_PERF=ON -DKHALO_ENABLE_TESTS=OFF \
  -DKHALO_ENABLE_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$(nproc)" --target bench_conv bench_io >/dev/null
mkdir -p perf/results
echo "== khalo conv3d 3x3x3, 1 rank, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
OMP_NUM_THREADS=1 OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
  "$build/perf/bench_conv" "${quick[@]}" --json perf/results/conv.json
echo "== snapshot write/read on 2 ranks vs a plain sequential write"
OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 mpirun -np 2 --oversubscribe "$build/perf/bench_io" \
  --mib "$([[ ${#quick[@]} -gt 0 ]] && echo 4 || echo 256)" --json perf/results/io.json </dev/null
if /usr/bin/python3 -c 'import torch' 2>/dev/null; then
  echo "== PyTorch conv3d 3x3x3, 1 thread"
  /usr/bin/python3 perf/torch_baseline.py --threads 1 "${quick[@]}" --json perf/results/torch_conv.json
else
  echo "(python3-torch is not installed: apt-get install python3-torch for the PyTorch column)"
fi
