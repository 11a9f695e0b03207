# shellcheck shell=bash
# The step framework of perf/gpu_check.sh, which sources it after parsing its options: each step
# runs under timeout with what is left of the budget (at most its own cap), logs to
# logs/NN-name.log, and is recorded; a failed step does not stop the later ones, except where a
# later one cannot run without it (then it is recorded as not run, which counts as a failure).
# On exit (or a TERM or INT) the summary, steps.tsv and results.md are written.
# Uses the caller's: out, budget, repo, script_dir, python, and for the summary kokkos_root,
# kokkos_devices, kokkos_arch, gpu_name, arch, cxx.
# shellcheck disable=SC2154 # the variables above are the caller's

start=$SECONDS
deadline=$((start + budget))
step_no=0
names=()
statuses=()
seconds=()
logs=()
notes=()
warnings=()
failed=0

record() { # name status seconds log
  names+=("$1")
  statuses+=("$2")
  seconds+=("$3")
  logs+=("$4")
  case "$2" in
    PASS | SKIP) ;;
    *) failed=1 ;;
  esac
  printf '==> %-12s %-8s %4ss  %s\n' "$1" "$2" "$3" "${4#"$out"/}"
}

# run_step NAME CAP_SECONDS COMMAND...: runs COMMAND with stdout and stderr in the step's log.
run_step() {
  local name=$1 cap=$2
  shift 2
  step_no=$((step_no + 1))
  local log
  log=$(printf '%s/logs/%02d-%s.log' "$out" "$step_no" "$name")
  local left=$((deadline - SECONDS))
  if ((left < 5)); then
    echo "not run: the ${budget}s budget is spent" >"$log"
    record "$name" NOTRUN 0 "$log"
    return 1
  fi
  local limit=$((cap < left ? cap : left))
  printf -- '--> %s (limit %ss): %s\n' "$name" "$limit" "$*"
  {
    printf '# %s\n# limit %ss, started %s\n' "$*" "$limit" "$(date -u +%FT%TZ)"
  } >"$log"
  local t0=$SECONDS rc=0
  # timeout puts the command in its own process group and signals all of it (mpirun, ranks).
  # In the background, so that a TERM or INT to this script is handled at once (on_signal),
  # not after the step ends.
  timeout --kill-after=15 "$limit" "$@" >>"$log" 2>&1 &
  running_pid=$!
  running_name=$name
  running_log=$log
  running_t0=$t0
  wait "$running_pid" || rc=$?
  running_pid=""
  local took=$((SECONDS - t0))
  printf '# exit %d after %ss\n' "$rc" "$took" >>"$log"
  if ((rc == 0)); then
    record "$name" PASS "$took" "$log"
  elif ((rc == 124 || rc == 137)); then
    record "$name" TIMEOUT "$took" "$log"
  else
    record "$name" "FAIL($rc)" "$took" "$log"
  fi
  return "$rc"
}

unrun_step() { # name status what reason: a step that does not run, with its log and note
  step_no=$((step_no + 1))
  local log
  log=$(printf '%s/logs/%02d-%s.log' "$out" "$step_no" "$1")
  echo "$3: $4" >"$log"
  record "$1" "$2" 0 "$log"
  notes+=("$1: $3: $4")
}
skip_step() { unrun_step "$1" SKIP skipped "$2"; }              # name reason: left out on purpose
notrun_step() { unrun_step "$1" NOTRUN "not run" "$2"; }        # name reason: should have run, could not

# "N tests failed out of M" and the failed tests' names, from a ctest log. These and
# write_summary run from the EXIT trap, which shellcheck does not follow (SC2317).
# shellcheck disable=SC2317
ctest_counts() {
  grep -E 'tests passed, [0-9]+ tests? failed out of [0-9]+' "$1" 2>/dev/null | tail -n1
}
# shellcheck disable=SC2317
ctest_failures() {
  sed -n '/^The following tests FAILED:/,/^Errors while running CTest/p' "$1" 2>/dev/null |
    grep -vE '^(The following tests FAILED:|Errors while running CTest)' || true
}

ctest_logs=()
# shellcheck disable=SC2317
write_summary() {
  local rc=$?
  local total=$((SECONDS - start))
  {
    printf 'khalo GPU check: %s\n' "$([[ $failed -eq 0 ]] && echo PASS || echo FAIL)"
    printf 'finished %s on %s after %ss (budget %ss)\n' "$(date -u +%FT%TZ)" "$(uname -n)" "$total" "$budget"
    printf 'commit    %s\n' "$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)$(
      [[ -n "$(git -C "$repo" status --porcelain --untracked-files=no 2>/dev/null)" ]] && echo ' (+ local changes)'
    )"
    printf 'kokkos    %s (devices: %s; arch: %s)\n' "${kokkos_root:-?}" "${kokkos_devices:-?}" "${kokkos_arch:-?}"
    printf 'gpu       %s\n' "${gpu_name:-none}"
    printf 'arch      %s\n' "${arch:-?}"
    printf 'compiler  %s\n' "${cxx:-default}"
    printf 'gpu-aware MPI: KHALO_GPU_AWARE_MPI=%s\n' "${KHALO_GPU_AWARE_MPI:-unset}"
    if [[ -s "$out/build-info.txt" ]]; then
      printf 'build     %s\n' "$(head -n1 "$out/build-info.txt")"
    fi
    printf '\n%-12s %-9s %6s  %s\n' step status seconds log
    local i
    for i in "${!names[@]}"; do
      printf '%-12s %-9s %6s  %s\n' "${names[$i]}" "${statuses[$i]}" "${seconds[$i]}" "${logs[$i]#"$out"/}"
    done
    for i in "${ctest_logs[@]}"; do
      local counts
      counts=$(ctest_counts "$i")
      printf '\n%s: %s\n' "${i#"$out"/}" "${counts:-no ctest summary line (interrupted?)}"
      ctest_failures "$i"
    done
    if ((${#warnings[@]} > 0)); then
      printf '\nwarnings:\n'
      printf '  %s\n' "${warnings[@]}"
    fi
    if ((${#notes[@]} > 0)); then
      printf '\nnotes:\n'
      printf '  %s\n' "${notes[@]}"
    fi
    if ((rc != 0 && failed == 0)); then
      printf '\nthe script itself stopped with exit %d\n' "$rc"
    fi
  } >"$out/summary.txt"
  {
    printf 'step\tstatus\tseconds\tlog\n'
    local j
    for j in "${!names[@]}"; do
      printf '%s\t%s\t%s\t%s\n' "${names[$j]}" "${statuses[$j]}" "${seconds[$j]}" "${logs[$j]#"$out"/}"
    done
  } >"$out/steps.tsv"
  # The measurements as tables (results.md), from whatever JSON the steps left.
  timeout 60 "${python:-python3}" "$script_dir/gpu_results.py" "$out" >"$out/logs/results.log" 2>&1 ||
    printf '\nresults.md: perf/gpu_results.py failed, see logs/results.log\n' >>"$out/summary.txt"
  printf '\n'
  cat "$out/summary.txt"
  if [[ -s "$out/results.md" ]]; then
    printf '\n'
    sed -n '/^## Targets/,$p' "$out/results.md"
  fi
  if ((failed != 0 || rc != 0)); then
    exit 1
  fi
  exit 0
}
# A TERM or INT (an outer timeout, ^C): stop the running step, record it, write the summary.
running_pid=""
# shellcheck disable=SC2317
on_signal() {
  if [[ -n "$running_pid" ]]; then
    kill -TERM "$running_pid" 2>/dev/null
    wait "$running_pid" 2>/dev/null
    printf '# interrupted by a signal after %ss\n' "$((SECONDS - running_t0))" >>"$running_log"
    record "$running_name" KILLED "$((SECONDS - running_t0))" "$running_log"
    running_pid=""
  fi
  notes+=("interrupted by a signal")
  exit 130
}
trap write_summary EXIT
trap on_signal INT TERM
