#!/usr/bin/env bash
# Measures what perf/model fits and validates against, on this machine, into perf/model/data/:
#   pingpong.jsonl           2-rank MPI ping-pong and bidirectional exchange, 8 B .. 64 MiB
#   halo_np{2,3,4}.json      bench_halo, Wan cases, 2, 3 and 4 ranks (3 and 4 oversubscribed
#                            when the machine has 2 cores)
#   halo_quick_np{2,3,4}.json  the same in bench_halo's --quick form (tiny shapes: latency)
#   machine.txt              lscpu, load before and after each step
# Then fit, validate, predict. Build bench_halo first (README.md). Usage:
#   perf/model/measure.sh [build-dir]      (default: build)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
build=${1:-build}
data=perf/model/data
mkdir -p "$data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
py=/usr/bin/python3
load() { echo "$(date -u +%FT%TZ) $1: load average $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$data/machine.txt"; }
{ lscpu | grep -E 'Model name|CPU family|^Model:|^CPU\(s\)'; mpirun --version | head -1; } > "$data/machine.txt"
mpicc -O2 -o "$build/pingpong" perf/model/pingpong.c
load "pingpong start"
mpirun --oversubscribe -np 2 "$build/pingpong" 0.3 > "$data/pingpong.jsonl"
for n in 2 3 4; do
  load "bench_halo np$n start"
  mpirun --oversubscribe -np "$n" "$build/perf/bench_halo" --only wan --budget "${KHALO_MODEL_BUDGET:-0.5}" \
    --json "$data/halo_np$n.json" </dev/null > "$data/halo_np$n.txt"
  load "bench_halo --quick np$n start"
  mpirun --oversubscribe -np "$n" "$build/perf/bench_halo" --quick --only wan \
    --json "$data/halo_quick_np$n.json" </dev/null > "$data/halo_quick_np$n.txt"
done
load "end"
cpu="$(lscpu | sed -n "s/^Model name: *//p"), family $(lscpu | sed -n "s/^CPU family: *//p") model $(lscpu | sed -n "s/^Model: *//p")"
$py perf/model/halo_model.py fit --cpu "$cpu"
$py perf/model/halo_model.py validate --bench "$data"/halo_np{2,3,4}.json "$data"/halo_quick_np{2,3,4}.json
$py perf/model/halo_model.py predict
