#!/usr/bin/env bash
# Fail-stop: one rank fails, and every rank ends within 30 s with a non-zero exit and one
# message naming the rank and the cause; an existing output file stays as it was and no
# temporary is left beside it. Faults come from the fault tool (a Kokkos Tools library:
# an allocation that fails, an error inside an exchange, SIGKILL) and from one rank changing
# its shapes alone.
#
# Usage: fault_matrix.sh LAUNCHER DECODE FAULT_DRIVER FAULT_TOOL [NP...]
#   LAUNCHER: mpirun or srun (srun needs SLURM_CONF of a running cluster)
#   NP: rank counts (default: 2 3)
# KHALO_FAULT_CASES=REGEX runs only the cases whose label matches (debugging).
set -uo pipefail
launcher=$1 decode=$(realpath "$2") driver=$(realpath "$3") tool=$(realpath "$4")
shift 4
counts=("$@")
((${#counts[@]} > 0)) || counts=(2 3)
limit=30

tmp=$(mktemp -d "${TMPDIR:-/tmp}/khalo-fault.XXXXXX")
trap 'rm -rf -- "$tmp"' EXIT
# Kokkos 3 and Kokkos 4 name the tool variable differently.
export KOKKOS_PROFILE_LIBRARY=$tool KOKKOS_TOOLS_LIBS=$tool
# Short waits keep the matrix quick; the defaults (3 s, 30 s) only make a failing job end later.
export OMPI_MCA_mpi_yield_when_idle=1 KHALO_REPLAN_TIMEOUT=2 KHALO_FAIL_AGREE_SECONDS=1

launch() { # launch N COMMAND...
  local n=$1
  shift
  if [[ "$launcher" == srun ]]; then
    local extra=()
    (($(nproc) < n)) && extra=(--overcommit)
    srun -N 1 -n "$n" --kill-on-bad-exit=1 --input=none "${extra[@]}" "$@"
  else
    mpirun -np "$n" --oversubscribe "$@"
  fi
}

failures=0
cases=0
# expect_failstop LABEL N PATTERN COMMAND...: the job must end in time, non-zero, saying PATTERN
# (an extended regex), with out.h5 intact.
expect_failstop() {
  local label=$1 n=$2 pattern=$3
  shift 3
  [[ "$label" =~ ${KHALO_FAULT_CASES:-.} ]] || return 0
  cases=$((cases + 1))
  local dir=$tmp/case$cases
  mkdir -p "$dir"
  printf 'previous snapshot\n' >"$dir/out.h5"
  local started=$SECONDS rc=0
  (cd "$dir" && timeout -k 5 "$limit" bash -c 'launch "$@"' _ "$n" "$@") >"$dir/log" 2>&1 || rc=$?
  local took=$((SECONDS - started)) why=""
  if ((rc == 0)); then
    why="exit 0, want non-zero"
  elif ((rc == 124 || took >= limit)); then # (137 is also mpirun's own exit when a rank was killed)
    why="still running after ${limit}s"
  elif [[ -n "$pattern" ]] && ! grep -Eq -- "$pattern" "$dir/log"; then
    why="no message matching '$pattern'"
  elif [[ "$(cat "$dir/out.h5")" != "previous snapshot" ]]; then
    why="the existing out.h5 changed"
  elif compgen -G "$dir/.out.h5.khalo-tmp-*" >/dev/null; then
    why="a temporary was left: $(ls -a "$dir" | grep khalo-tmp | tr '\n' ' ')"
  fi
  if [[ -n "$why" ]]; then
    failures=$((failures + 1))
    printf 'FAIL: %s (%s -n %d): %s\n' "$label" "$launcher" "$n" "$why"
    sed 's/^/    | /' "$dir/log" | tail -n 25
  else
    printf 'ok:   %s (%s -n %d): exit %d after %ds\n' "$label" "$launcher" "$n" "$rc" "$took"
  fi
}
export -f launch
export launcher

job=(--random-input 1,16,3,24,32 --random-weights --seed 5 --num-res-blocks 0 --upsample upsample3d --quiet
  --output out.h5)
for n in "${counts[@]}"; do
  r=$((n - 1)) # the last rank fails: rank 0, which prints, stays healthy
  # The send buffer is an ordinary allocation only without node-shared memory.
  KHALO_SHARED_MEMORY=0 KHALO_FAULT_RANK=$r KHALO_FAULT_ALLOC=khalo::send \
    expect_failstop "halo plan: rank $r cannot allocate its buffers" "$n" \
    "rank $r could not allocate its halo buffers: out of memory" "$driver" --exchanges 5
  KHALO_FAULT_RANK=$r KHALO_FAULT_REGION=khalo::Halo::wait KHALO_FAULT_SKIP=3 \
    expect_failstop "halo exchange: rank $r fails inside wait()" "$n" \
    "khalo: rank $r: failure inside khalo::Halo::wait" "$driver" --exchanges 20
  expect_failstop "halo exchange: rank $r changes its shapes alone" "$n" \
    "khalo: rank $r: .*met field shapes it has no plan for" "$driver" --exchanges 5 --reshape-rank "$r"
  KHALO_FAULT_RANK=$r KHALO_FAULT_ALLOC=khalo::conv::weight KHALO_FAULT_SKIP=1 \
    expect_failstop "decode: rank $r runs out of memory building the stage" "$n" \
    "khalo: rank $r: .*out of memory" "$decode" "${job[@]}"
  KHALO_FAULT_RANK=$r KHALO_FAULT_REGION=khalo::Halo::wait KHALO_FAULT_SKIP=2 \
    expect_failstop "decode: rank $r fails in the middle of the decode" "$n" \
    "khalo: rank $r: failure inside khalo::Halo::wait" "$decode" "${job[@]}"
  KHALO_FAULT_RANK=$r KHALO_FAULT_ALLOC=khalo::io::c_order \
    expect_failstop "decode: rank $r runs out of memory writing the snapshot" "$n" \
    "khalo: rank $r: .*out of memory" "$decode" "${job[@]}"
  KHALO_FAULT_RANK=$r KHALO_FAULT_REGION=khalo::Halo::wait KHALO_FAULT_SKIP=2 KHALO_FAULT_ACTION=kill \
    expect_failstop "decode: kill -9 of rank $r" "$n" "signal 9|Killed" "$decode" "${job[@]}"
done
printf '%d passed, %d failed\n' "$((cases - failures))" "$failures"
((failures == 0))
