#!/usr/bin/env bash
# Builds khalo in Release and runs every benchmark, in a few minutes on 2 cores:
#   conv     the decoder's causal conv3d on 1 rank beside PyTorch's conv3d on 1 thread
#   io       snapshot write/read on 2 ranks beside a plain sequential write of the same bytes
#   halo     the halo exchange on 2 ranks: khalo (blocking, split phase), the naive scheme, the
#            fixed seed, MPI derived datatypes and raw MPI, same run, same data; then 3 ranks
#            (oversubscribed, for the counters of a rank with two neighbours, not for its times);
#            and MPI's side of khalo's transport choice (pack, datatype, in place) on 2 ranks;
#            with PyTorch and the Python module, the seed's own gloo + torch.cat exchange beside khalo
#   decoder  the decoder stage on 1, 2 and 4 (oversubscribed) ranks, strong and weak scaling,
#            beside the same stage in PyTorch on 1 and 2 threads
# Writes perf/results/*.json, perf/results/summary.md (the tables) and PNG plots (when
# python3-matplotlib is installed), and prints the tables. The machine is shared: compare
# ratios from one run, and look at the load printed first.
#   perf/run.sh [--quick]      (--quick: tiny shapes, results under the build directory)
#   KHALO_PERF_NICE=-15 perf/run.sh    (as root: ahead of other jobs on a shared machine)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
quick=()
[[ "${1:-}" == --quick ]] && quick=(--quick)
build=${KHALO_PERF_BUILD_DIR:-build-perf}
results=perf/results
[[ ${#quick[@]} -gt 0 ]] && results=$build/quick-results
cores=$(nproc)  # before OMP_NUM_THREADS=1, which nproc obeys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
# KHALO_PERF_NICE=-15 (root): the benchmarks take the CPUs from other jobs on a shared machine.
prio=()
[[ -n ${KHALO_PERF_NICE:-} ]] && prio=(nice -n "$KHALO_PERF_NICE")
mpirun=("${prio[@]}" mpirun --oversubscribe)
python=/usr/bin/python3
[[ -x $python ]] || python=python3

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKHALO_ENABLE_PERF=ON -DKHALO_ENABLE_TESTS=OFF \
  -DKHALO_ENABLE_EXAMPLES=OFF >/dev/null
cmake --build "$build" -j "$cores" --target bench_conv bench_io bench_halo transport_sweep bench_decoder >/dev/null
mkdir -p "$results"
echo "== $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores;" \
  "load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%FT%TZ); results in $results"

echo "== khalo conv3d 3x3x3, 1 rank"
"${prio[@]}" "$build/perf/bench_conv" "${quick[@]}" --json "$results/conv.json"
echo "== snapshot write/read on 2 ranks vs a plain sequential write"
"${mpirun[@]}" -np 2 "$build/perf/bench_io" \
  --mib "$([[ ${#quick[@]} -gt 0 ]] && echo 4 || echo 256)" --json "$results/io.json" </dev/null

echo "== halo exchange, 2 ranks"
"${mpirun[@]}" -np 2 "$build/perf/bench_halo" "${quick[@]}" --json "$results/halo.json" </dev/null
echo "== halo exchange, 2 ranks, khalo's Views in node-shared memory (khalo::NodeSharedArena)"
"${mpirun[@]}" -np 2 "$build/perf/bench_halo" "${quick[@]}" --only wan --node-shared-fields \
  --json "$results/halo_node_shared_fields.json" </dev/null
echo "== halo exchange, 3 ranks on 2 cores: the counters of an inner rank (times are not meaningful)"
if [[ ${#quick[@]} -gt 0 ]]; then
  "${mpirun[@]}" -np 3 "$build/perf/bench_halo" --quick --only wan --json "$results/halo_np3.json" </dev/null
else
  "${mpirun[@]}" -np 3 "$build/perf/bench_halo" --only wan --case wan_c96_d4_h30 --reps 3 \
    --json "$results/halo_np3.json" </dev/null
fi

echo "== MPI's side of the transport choice, 2 ranks: pack, datatype, in place, raw"
if [[ ${#quick[@]} -gt 0 ]]; then
  "${mpirun[@]}" -np 2 "$build/perf/transport_sweep" --run-bytes 416 16384 --face-bytes 32768 --reps 5 \
    --json "$results/transport.json" </dev/null
else
  "${mpirun[@]}" -np 2 "$build/perf/transport_sweep" --json "$results/transport.json" </dev/null
fi

for n in 1 2 4; do
  echo "== decoder stage, $n rank(s)$([[ $n -gt 2 ]] && echo ', oversubscribed: for information')"
  "${mpirun[@]}" -np "$n" "$build/perf/bench_decoder" "${quick[@]}" --json "$results/decoder_np$n.json" </dev/null
done

if $python -c 'import torch' 2>/dev/null; then
  echo "== PyTorch conv3d 3x3x3, 1 thread"
  "${prio[@]}" $python perf/torch_baseline.py --threads 1 "${quick[@]}" --json "$results/torch_conv.json"
  echo "== PyTorch decoder stage, 1 and 2 threads"
  "${prio[@]}" $python perf/torch_baseline.py --decoder --threads 1 2 "${quick[@]}" --json "$results/torch_decoder.json"
  echo "== halo exchange, 2 ranks: torch.distributed (gloo) + torch.cat beside khalo's Python module"
  if grep -q '^KHALO_ENABLE_PYTHON:BOOL=ON' "$build/CMakeCache.txt"; then
    cmake --build "$build" -j "$cores" --target khalo_python >/dev/null
    "${mpirun[@]}" -np 2 -x PYTHONPATH="$build/python${PYTHONPATH:+:$PYTHONPATH}" $python perf/torch_dist_halo.py \
      "${quick[@]}" --json "$results/torch_dist_halo.json" </dev/null
  else
    echo "(KHALO_ENABLE_PYTHON is off: khalo's Python module needs pybind11-dev and python3-mpi4py)"
  fi
else
  echo "(python3-torch is not installed: apt-get install python3-torch for the PyTorch columns)"
fi

echo "== summary"
plot_args=()
if ! $python -c 'import matplotlib' 2>/dev/null; then
  echo "(python3-matplotlib is not installed: tables only, no plots; apt-get install python3-matplotlib)"
  plot_args=(--no-plots)
fi
$python perf/plot.py --results "$results" "${plot_args[@]}"
