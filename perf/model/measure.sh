#!/usr/bin/env bash
# Measures what perf/model fits and validates against, on this machine, into perf/model/data/
# (or $KHALO_MODEL_OUT):
#   pingpong.jsonl           2-rank MPI ping-pong and bidirectional exchange, 8 B .. 64 MiB; the
#                            exchange again with its bytes from memory (exchange_cold)
#   chain.jsonl              chain.c at 2, 3 and 4 ranks (the core-sharing fit; 3 and 4
#                            oversubscribed when the machine has 2 cores)
#   halo_np{2,3,4}.json      bench_halo, Wan cases, 2, 3 and 4 ranks
#   halo_quick_np{2,3,4}.json  the same in bench_halo's --quick form (tiny shapes: latency)
#   node/halo{,_quick}_np{2,3,4}.json  the same with khalo's node-local transports on (steps node2..4)
#   mapped/halo{,_quick}_np{2,3,4}.json  the same with khalo's Views in node-shared arenas
#                            (--node-shared-fields; steps mapped2..4)
#   idle_share.jsonl         idle_share.c at 2, 3, 4 ranks, Open MPI's default and without yield
#   khalo.json               the commit measured and khalo's in-place threshold in it
#   machine.txt              lscpu, scheduling group, load before and after each step
# Then fit, fit-sharing, validate, predict. Build bench_halo first (README.md). Usage:
#   perf/model/measure.sh [build-dir] [step ...]     (default: build; every step)
# Steps: pingpong chain np2 np3 np4 analyse (the default), idle, and node2 node3 node4 (bench_halo
# with khalo's node-local transports on, into $data/node/: validate --bench data/node/*.json), and
# mapped2 mapped3 mapped4 (the same with khalo's Views in node-shared arenas, into $data/mapped/). Each step takes
# $KHALO_CPU_LOCK (a flock file, e.g. /tmp/khalo-cpu.lock) when set, so that other timed jobs on
# a shared machine run between steps, not during one (np4, the longest, took 1.5 minutes with
# priority, ~5 under load without).
# KHALO_PERF_NICE=-15 (root): run ahead of other jobs. With the kernel's autogroups a process's
# nice only ranks it within its session's group, so the script runs in a session of its own
# (setsid) and gives that group the nice value, as perf/decoder_model.sh does.
set -euo pipefail
if [[ -n ${KHALO_PERF_NICE:-} && -z ${KHALO_PERF_AUTOGROUP:-} && -e /proc/self/autogroup ]] &&
  command -v setsid >/dev/null; then
  KHALO_PERF_AUTOGROUP=1 exec setsid --wait bash "$(realpath "${BASH_SOURCE[0]}")" "$@"
fi
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
if [[ -n ${KHALO_PERF_AUTOGROUP:-} ]]; then
  echo "$KHALO_PERF_NICE" 2>/dev/null >/proc/self/autogroup || echo "(could not set the autogroup's nice)"
fi
build=build
if [[ $# -gt 0 && -d $1 ]]; then build=$1; shift; fi
steps=("$@")
[[ ${#steps[@]} -eq 0 ]] && steps=(pingpong chain np2 np3 np4 analyse)
data=${KHALO_MODEL_OUT:-perf/model/data}
mkdir -p "$data"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
py=/usr/bin/python3
load() {
  echo "$(date -u +%FT%TZ) $1: load average $(cut -d' ' -f1-3 /proc/loadavg); group $(cat /proc/self/autogroup 2>/dev/null || echo -)" |
    tee -a "$data/machine.txt"
}
locked() {  # run "$@" (a function) under $KHALO_CPU_LOCK when set
  if [[ -n ${KHALO_CPU_LOCK:-} ]]; then { flock 9; "$@"; } 9>>"$KHALO_CPU_LOCK"; else "$@"; fi
}
if [[ ! -s $data/machine.txt ]]; then
  { lscpu | grep -E 'Model name|CPU family|^Model:|^CPU\(s\)'; mpirun --version | head -1; } > "$data/machine.txt"
fi
bench() {  # ranks [out-dir [bench_halo option]]
  # What was measured: the commit, and khalo's in-place threshold in it (the model follows it).
  # By default khalo goes through MPI (--no-shared-memory): the model's fit describes MPI's
  # transports, which are what ranks on different nodes use. The node-N steps keep khalo's
  # node-local transports (direct reads, node-shared buffers) on, into $data/node/: the model
  # predicts those from the same fit (exchange.py, on_node).
  local out=${2:-$data}
  local opt=("${@:3}")
  mkdir -p "$out"
  threshold=$($py perf/model/exchange.py --in-place-run-bytes)
  printf '{"commit": "%s", "in_place_run_bytes": %s}\n' "$(git rev-parse HEAD)" "$threshold" > "$out/khalo.json"
  load "bench_halo np$1 start ($out)"
  mpirun --oversubscribe -np "$1" "$build/perf/bench_halo" --only wan "${opt[@]}" --budget "${KHALO_MODEL_BUDGET:-0.5}" \
    --json "$out/halo_np$1.json" </dev/null > "$out/halo_np$1.txt"
  load "bench_halo --quick np$1 start ($out)"
  mpirun --oversubscribe -np "$1" "$build/perf/bench_halo" --quick --only wan "${opt[@]}" \
    --json "$out/halo_quick_np$1.json" </dev/null > "$out/halo_quick_np$1.txt"
  load "bench_halo np$1 end ($out)"
}
chain() {
  load "chain start"
  # Several runs: which ranks share a core changes from run to run (halo_model.py fits the
  # median of the runs).
  for r in $(seq "${KHALO_MODEL_CHAIN_RUNS:-3}"); do
    for n in 2 3 4; do mpirun --oversubscribe -np "$n" "$build/chain" 0.3 | sed "s/^{/{\"run\": $r, /"; done
  done > "$data/chain.jsonl"
  load "chain end"
}
idle() {
  load "idle_share start"
  for n in 2 3 4; do mpirun --oversubscribe -np "$n" "$build/idle_share" | sed 's/^{/{"yield": "default", /'; done \
    > "$data/idle_share.jsonl"
  for n in 3 4; do
    mpirun --oversubscribe --mca mpi_yield_when_idle 0 -np "$n" "$build/idle_share" | sed 's/^{/{"yield": "0", /'
  done >> "$data/idle_share.jsonl"
  load "idle_share end"
}
pingpong() {
  load "pingpong start"
  mpirun --oversubscribe -np 2 "$build/pingpong" 0.3 > "$data/pingpong.jsonl"
  load "pingpong end"
}
for s in "${steps[@]}"; do
  case $s in
    pingpong) mpicc -O2 -o "$build/pingpong" perf/model/pingpong.c; locked pingpong ;;
    chain) mpicc -O2 -o "$build/chain" perf/model/chain.c; locked chain ;;
    idle) mpicc -O2 -o "$build/idle_share" perf/model/idle_share.c; locked idle ;;
    np[0-9]*) locked bench "${s#np}" "$data" --no-shared-memory ;;
    node[0-9]*) locked bench "${s#node}" "$data/node" ;;
    mapped[0-9]*) locked bench "${s#mapped}" "$data/mapped" --node-shared-fields ;;
    analyse)
      cpu="$(lscpu | sed -n "s/^Model name: *//p"), family $(lscpu | sed -n "s/^CPU family: *//p") model $(lscpu | sed -n "s/^Model: *//p")"
      $py perf/model/halo_model.py fit --cpu "$cpu"
      $py perf/model/halo_model.py fit-sharing
      $py perf/model/halo_model.py validate --bench "$data"/halo_np{2,3,4}.json "$data"/halo_quick_np{2,3,4}.json
      $py perf/model/halo_model.py predict ;;
    *) echo "measure.sh: unknown step $s (pingpong chain np2 np3 np4 analyse idle node2 node3 node4 mapped2 mapped3 mapped4)" >&2; exit 2 ;;
  esac
done
