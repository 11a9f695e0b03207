# Shared by the khalo-decode command-line tests (sourced; needs $decode and $mpiexec).
# check WANT_RC PATTERN -- command...: runs the command, counts a failure unless it exits
# WANT_RC with PATTERN in its output; the output stays in $last_output.
# run NP args...: khalo-decode on NP ranks.
failures=0
last_output=""
check() {
  local want=$1 pattern=$2
  shift 3
  local rc
  last_output=$("$@" 2>&1 </dev/null)
  rc=$?
  if [[ $rc -ne $want ]] || ! grep -q -- "$pattern" <<<"$last_output"; then
    echo "FAIL: $* -> exit $rc (want $want, output should contain '$pattern')"
    echo "$last_output" | tail -20 | sed 's/^/    /'
    failures=$((failures + 1))
  else
    echo "ok:   ${*: -6} -> $rc"
  fi
}
run() {
  local np=$1
  shift
  "${mpiexec[@]}" -np "$np" "$decode" "$@"
}
