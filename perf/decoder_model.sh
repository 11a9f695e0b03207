#!/usr/bin/env bash
# The whole Wan 2.1 decoder (issue #16): khalo-decode on 1 and 2 ranks (Serial Kokkos, one core
# each) beside perf/torch_decoder.py (the reference decoder of tests/reference/wan_decoder.py in
# PyTorch float32) on 1 and 2 threads, same latent shape, random weights of the real size (base
# dim 96, z_dim 16, 2 residual blocks; the two generators draw different values). khalo runs
# with kp_regions (a Kokkos Tools library, perf/kp_regions.cpp) for the halo's exposed time.
# Writes perf/results/decoder_model.json, decoder_model.md (the table) and the raw logs
# decoder_model_*, and prints the table. The machine is shared: look at the loads it prints.
#   perf/decoder_model.sh [--quick] [--shape N,16,T,H,W] [--warmup W]
#       --quick   a tiny model (base dim 8) and latent (1,16,2,4,6), results under the build dir
#       --shape   the latent (default 1,16,2,30,52: 240x416, 5 frames; the issue's full shape is
#                 1,16,3,60,104: 480x832, 9 frames, ~31 TFLOP, several minutes per run per core)
#       --warmup  PyTorch decodes before the timed one (default 1; khalo-decode decodes once,
#                 after allocating every buffer in its constructor)
#   also --khalo-decode BIN --kp-regions LIB (use these instead of building) and --results DIR
#   KHALO_PERF_NICE=-15 perf/decoder_model.sh    (as root: ahead of other jobs on a shared machine)
# With the kernel's autogroups (/proc/sys/kernel/sched_autogroup_enabled = 1), a process's nice
# only ranks it within its session's group, and each session's group gets an equal share of the
# CPUs: two ranks of one session then share what one would get. So with KHALO_PERF_NICE the
# script runs in a session of its own (setsid) and gives that group the nice value.
set -euo pipefail
if [[ -n ${KHALO_PERF_NICE:-} && -z ${KHALO_PERF_AUTOGROUP:-} && -e /proc/self/autogroup ]] &&
  command -v setsid >/dev/null; then
  KHALO_PERF_AUTOGROUP=1 exec setsid --wait bash "$(realpath "${BASH_SOURCE[0]}")" "$@"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ -n ${KHALO_PERF_AUTOGROUP:-} ]]; then
  echo "$KHALO_PERF_NICE" 2>/dev/null >/proc/self/autogroup || echo "(could not set the autogroup's nice)"
  echo "== scheduling group: $(cat /proc/self/autogroup)"
fi
quick=0 shape=1,16,2,30,52 base=96 seed=1 warmup=1 decode_bin="" kp="" results=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --quick) quick=1 ;;
    --shape) shape=$2; shift ;;
    --warmup) warmup=$2; shift ;;
    --khalo-decode) decode_bin=$2; shift ;;
    --kp-regions) kp=$2; shift ;;
    --results) results=$2; shift ;;
    *) echo "usage: perf/decoder_model.sh [--quick] [--shape N,16,T,H,W] [--warmup W] [--khalo-decode BIN]" \
         "[--kp-regions LIB] [--results DIR]" >&2; exit 2 ;;
  esac
  shift
done
build=${KHALO_PERF_BUILD_DIR:-build-perf}
if [[ $quick == 1 ]]; then
  shape=1,16,2,4,6 base=8
  results=${results:-$build/quick-results/decoder_model}
fi
results=${results:-perf/results}
cores=$(nproc)  # before OMP_NUM_THREADS=1, which nproc obeys
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
prio=()
[[ -n ${KHALO_PERF_NICE:-} ]] && prio=(nice -n "$KHALO_PERF_NICE")
python=/usr/bin/python3
[[ -x $python ]] || python=python3
if ! $python -c 'import torch' 2>/dev/null; then
  echo "(python3-torch is not installed: apt-get install python3-torch; skipped)"
  exit 77
fi

if [[ -z $decode_bin ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DKHALO_ENABLE_PERF=ON -DKHALO_ENABLE_TESTS=OFF \
    -DKHALO_ENABLE_EXAMPLES=OFF >/dev/null
  cmake --build "$build" -j "$((cores < 2 ? cores : 2))" --target khalo-decode kp_regions >/dev/null
  decode_bin=$build/src/apps/khalo-decode
  kp=$(realpath "$build/perf/libkp_regions.so")
fi
mkdir -p "$results"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
loads=$results/decoder_model_loads.txt
: >"$loads"
cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo |
  cut -d: -f2 | xargs) model $(grep -m1 -P '^model\t' /proc/cpuinfo | cut -d: -f2 | xargs), $cores cores"
echo "== $cpu; load average $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%FT%TZ); latent $shape," \
  "base dim $base; results in $results"

for n in 1 2; do
  echo "== khalo-decode, $n rank(s), Serial, channels_last_3d"
  echo "khalo_np$n $(date -u +%FT%TZ) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$loads"
  env=()
  [[ -n $kp ]] && env=(-x "KOKKOS_PROFILE_LIBRARY=$kp")
  "${prio[@]}" mpirun --oversubscribe -np "$n" -x OMP_NUM_THREADS "${env[@]}" "$decode_bin" \
    --random-input "$shape" --random-weights --base-dim "$base" --seed "$seed" --layout channels_last_3d \
    --output "$tmp/out_np$n.h5" </dev/null 2>"$results/decoder_model_khalo_np$n.log"
  grep '^khalo-decode: .* GFLOP/s' "$results/decoder_model_khalo_np$n.log"
  rm -f "$tmp/out_np$n.h5"
done

for k in 1 2; do
  echo "== PyTorch, $k thread(s)"
  echo "torch_t$k $(date -u +%FT%TZ) $(cut -d' ' -f1-3 /proc/loadavg)" >>"$loads"
  "${prio[@]}" $python perf/torch_decoder.py --shape "$shape" --base-dim "$base" --seed "$seed" --threads "$k" \
    --warmup "$warmup" --json "$results/decoder_model_torch_t$k.json" 2>"$results/decoder_model_torch_t$k.log"
done

echo "== summary"
$python perf/decoder_model_report.py --results "$results" --cpu "$cpu"
