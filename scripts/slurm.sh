#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, to run khalo's MPI programs through a real srun.
#
# Usage: scripts/slurm.sh run BUILD_DIR   start the cluster, run the checks below, stop it
#        scripts/slurm.sh shell           start the cluster and open a shell with SLURM_CONF set
#                                         (srun, sinfo, squeue work in it); exit the shell to stop
#        scripts/slurm.sh --help
#
# `run` needs BUILD_DIR built with -DKHALO_ENABLE_TESTS=ON. Every srun runs under `timeout`,
# at 2 ranks (srun -n 2) and at 4 ranks on fewer CPUs (srun -n 4 --overcommit):
#   - the halo, decomposition and snapshot tests (test_halo, test_halo_errors, test_halo_stats,
#     test_decomposition, test_snapshot, test_snapshot_safety);
#   - every rank's khalo::node_local_rank equals Slurm's SLURM_LOCALID (tests/slurm/local_rank.cpp,
#     built against khalo installed from BUILD_DIR);
#   - khalo-decode gives the same bytes under srun -n 2, srun -n 4, mpirun -np 2 and on 1 rank
#     (khalo-compare --bitwise);
#   - examples/slurm/decode.sbatch runs through sbatch on 2 ranks (its GPU request removed) and
#     matches the golden output in tests/reference/golden;
#   - fail-stop: when one rank fails (tests/fault/fault_matrix.sh, srun -n 2 and -n 3), every
#     rank ends within 30 s with one message, and no output is damaged.
# The cluster (slurm.conf, state, logs, munge key and socket) lives in one temporary directory,
# removed at exit. munged, slurmctld and slurmd are stopped by their PIDs however the script ends.
# Missing packages (slurmctld slurmd slurm-client munge) are installed with apt-get, as root or
# through sudo; where that is impossible the script says so and exits 0 (skipped).
#
# Environment:
#   KHALO_SKIP_SLURM=1      skip: install and start nothing, exit 0
#   KHALO_SKIP_DEPS=1       install nothing: skip (exit 0) when Slurm is not installed
#   KHALO_REQUIRE_SLURM=1   fail instead of skipping when Slurm cannot be installed
#   KHALO_SLURM_TIMEOUT=S   limit for each srun or mpirun, in seconds (default 120)
#   KHALO_SLURM_KEEP=1      keep the temporary directory (logs, outputs) and print its path
# Exit status: 0 passed or skipped, 1 a check failed, 2 bad usage.
set -euo pipefail

usage() {
  sed -n '2,30s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# shellcheck source=scripts/lib.sh
source "$repo/scripts/lib.sh"

# The daemons live in /usr/sbin, which a non-root PATH may lack.
export PATH="$PATH:/usr/sbin:/sbin"

slurm_packages=(slurmctld slurmd slurm-client munge)
slurm_programs=(munged munge unmunge slurmctld slurmd srun sbatch sinfo scontrol squeue scancel)
limit=${KHALO_SLURM_TIMEOUT:-120}

mode=${1:-}
case "$mode" in
  -h | --help)
    usage
    exit 0
    ;;
  run)
    if (($# != 2)); then
      printf 'error: usage: scripts/slurm.sh run BUILD_DIR\n' >&2
      exit 2
    fi
    [[ -d "$2" ]] || khalo_die "no build directory '$2' (configure with -DKHALO_ENABLE_TESTS=ON and build first)"
    build=$(cd "$2" && pwd)
    ;;
  shell)
    if (($# != 1)); then
      printf 'error: usage: scripts/slurm.sh shell\n' >&2
      exit 2
    fi
    ;;
  *)
    printf 'error: unknown or missing command: %s\n\n' "${1:-}" >&2
    usage >&2
    exit 2
    ;;
esac

skip() {
  if [[ "${KHALO_REQUIRE_SLURM:-0}" == 1 ]]; then
    khalo_die "$* (KHALO_REQUIRE_SLURM=1)"
  fi
  khalo_note "SKIPPED the Slurm checks: $*"
  exit 0
}

if [[ "${KHALO_SKIP_SLURM:-0}" == 1 ]]; then
  skip "KHALO_SKIP_SLURM=1"
fi

# ---------------------------------------------------------------------------------------------
# Slurm and munge: installed when missing, where this machine allows it.
missing_programs() {
  local p
  for p in "${slurm_programs[@]}"; do
    command -v "$p" >/dev/null 2>&1 || printf '%s ' "$p"
  done
}
if [[ -n "$(missing_programs)" ]]; then
  if [[ "${KHALO_SKIP_DEPS:-0}" == 1 ]]; then
    skip "not installed ($(missing_programs)missing) and KHALO_SKIP_DEPS=1;" \
      "install ${slurm_packages[*]} to run them"
  fi
  # A subshell: khalo_install_packages exits on failure, which here means "skip", not "fail".
  if ! (khalo_install_packages "${slurm_packages[@]}"); then
    skip "Slurm could not be installed here (see the message above)"
  fi
  if [[ -n "$(missing_programs)" ]]; then
    skip "installed ${slurm_packages[*]}, yet still missing: $(missing_programs)"
  fi
fi

if [[ "$mode" == run ]]; then
  decode=$build/src/apps/khalo-decode
  compare=$build/src/apps/khalo-compare
  tests=(test_decomposition test_halo test_halo_errors test_halo_stats test_snapshot test_snapshot_safety)
  for exe in "$decode" "$compare" "${tests[@]/#/$build/tests/}"; do
    [[ -x "$exe" ]] || khalo_die "missing $exe: build $build with -DKHALO_ENABLE_TESTS=ON first"
  done
fi

# ---------------------------------------------------------------------------------------------
# The temporary directory. Unix socket paths are limited to ~107 bytes, so a long TMPDIR
# falls back to /tmp.
base=${TMPDIR:-/tmp}
if ((${#base} > 48)); then
  base=/tmp
fi
tmp=$(mktemp -d "$base/khalo-slurm.XXXXXX")
mkdir -p "$tmp"/{etc,munge,state,spool,log,run,out}
# munged wants execute permission for all on the directories down to its socket.
chmod 711 "$tmp"
chmod 755 "$tmp/munge"

pids=()  # daemons started here, in start order
names=()
failed=1 # cleared when everything passed
stop_all() {
  local i pid t
  # Jobs first (a timed-out srun may leave its step), then the daemons in reverse order.
  if [[ -n "${SLURM_CONF:-}" ]] && ((${#pids[@]} == 3)) && kill -0 "${pids[1]}" 2>/dev/null; then
    scancel --quiet --user "$(id -un)" >/dev/null 2>&1 || true
    for ((t = 0; t < 50; t++)); do
      [[ -z "$(squeue -h -o %i 2>/dev/null)" ]] && break
      sleep 0.2
    done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    kill -TERM "$pid" 2>/dev/null || continue
    for ((t = 0; t < 50; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      khalo_note "${names[i]} (pid $pid) ignored SIGTERM for 5 s: SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  pids=()
}
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  # The daemons' logs after a failure (not after Ctrl-C or SIGTERM).
  if ((rc != 0 && rc != 130 && rc != 143)) && ((failed)) && [[ -d "$tmp/log" ]]; then
    local f
    for f in "$tmp"/log/{munged,slurmctld,slurmd}.log; do
      [[ -s "$f" ]] || continue
      printf -- '---- last lines of %s\n' "$f" >&2
      tail -n 12 "$f" >&2
    done
  fi
  stop_all
  if [[ "${KHALO_SLURM_KEEP:-0}" == 1 ]]; then
    khalo_note "kept $tmp"
  else
    rm -rf -- "$tmp"
  fi
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # start NAME COMMAND...: runs a daemon in the background, remembers its PID
  local name=$1
  shift
  "$@" </dev/null >>"$tmp/log/$name.out" 2>&1 &
  pids+=("$!")
  names+=("$name")
}
alive() { # alive INDEX: fails (with a message) when the daemon has exited
  if ! kill -0 "${pids[$1]}" 2>/dev/null; then
    printf 'error: %s exited at start; see its log below\n' "${names[$1]}" >&2
    return 1
  fi
}
free_port() { # a TCP port nothing on 127.0.0.1 listens on, below the kernel's ephemeral range
  # (a port in that range can be taken at any moment by an outgoing connection: slurmd once
  # failed to bind one that nothing listened on a second before)
  local p t lo=32768
  read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || lo=32768
  ((lo > 11000)) || lo=32768
  for ((t = 0; t < 50; t++)); do
    p=$((10000 + RANDOM % (lo - 10000)))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
      printf '%s\n' "$p"
      return 0
    fi
  done
  khalo_die "no free TCP port found"
}

# ---------------------------------------------------------------------------------------------
# munged with its own key and socket. It refuses a key that others can read.
user=$(id -un)
key=$tmp/etc/munge.key
socket=$tmp/munge/munge.socket
dd if=/dev/urandom of="$key" bs=1024 count=1 status=none
chmod 400 "$key"
start munged munged --foreground --key-file="$key" --socket="$socket" \
  --pid-file="$tmp/run/munged.pid" --log-file="$tmp/log/munged.log" --seed-file="$tmp/munge/munge.seed"
for ((t = 0; ; t++)); do
  alive 0
  if munge -n -S "$socket" 2>/dev/null | unmunge -S "$socket" >/dev/null 2>&1; then
    break
  fi
  ((t < 100)) || khalo_die "munged did not answer within 10 s"
  sleep 0.1
done

# slurm.conf: one node, this machine's CPUs, PMIx for OpenMPI (pmi2 and none fail with Debian's),
# no cgroups (containers rarely allow them), no accounting.
host=$(hostname -s 2>/dev/null || uname -n)
host=${host%%.*}
cpus=$(nproc)
node=khalo-node
ctld_port=$(free_port)
slurmd_port=$(free_port)
while ((slurmd_port == ctld_port)); do
  slurmd_port=$(free_port)
done
# Nothing from an outer Slurm (this script run inside a job, or on a login node) may leak into
# this cluster's srun and sbatch: they would look for the outer job here.
unset "${!SLURM_@}" "${!SBATCH_@}" "${!SRUN_@}" "${!SALLOC_@}"
export SLURM_CONF=$tmp/etc/slurm.conf
cat >"$SLURM_CONF" <<EOF
# Written by khalo's scripts/slurm.sh: a throwaway one-node cluster.
ClusterName=khalo
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$tmp/state
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/run/slurmctld.pid
SlurmdPidFile=$tmp/run/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/builtin
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
MinJobAge=2
NodeName=$node NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF

start slurmctld slurmctld -D -i -f "$SLURM_CONF"
for ((t = 0; ; t++)); do
  alive 0
  alive 1
  if scontrol ping 2>/dev/null | grep -q 'is UP'; then
    break
  fi
  ((t < 60)) || khalo_die "slurmctld did not answer within 30 s"
  sleep 0.5
done
start slurmd slurmd -D -N "$node" -f "$SLURM_CONF"
for ((t = 0; ; t++)); do
  alive 2
  state=$(sinfo -h -n "$node" -o %T 2>/dev/null || true)
  [[ "$state" == idle ]] && break
  ((t < 60)) || khalo_die "node $node not idle within 30 s (state: '${state:-none}'): $(sinfo -h -R 2>/dev/null)"
  sleep 0.5
done
khalo_note "cluster up: $node with $cpus CPUs, slurmctld :$ctld_port, slurmd :$slurmd_port, in $tmp"

if [[ "$mode" == shell ]]; then
  khalo_note "SLURM_CONF=$SLURM_CONF; try: srun -n 2 hostname. Exit the shell to stop the cluster."
  failed=0
  "${SHELL:-/bin/bash}" -i || true
  exit 0
fi

# ---------------------------------------------------------------------------------------------
# The checks. OpenMPI wants to be told that root is fine (mpirun; harmless under srun).
if [[ "$(id -u)" -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# As in ctest (KHALO_TEST_ENV): a fixed thread count, no spinning on the shared cores.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} OMP_PROC_BIND=false OMP_WAIT_POLICY=passive
# OpenMPI ranks waiting on a message yield the core instead of spinning. mpirun --oversubscribe
# sets this itself; srun does not, and 4 ranks spinning on 2 cores made test_halo take minutes.
export OMPI_MCA_mpi_yield_when_idle=1

checks=0
check() { # check LABEL COMMAND...: runs it under timeout, output to a log shown only on failure
  local label=$1 log started rc
  shift
  checks=$((checks + 1))
  log=$tmp/out/check$checks.log
  started=$SECONDS
  rc=0
  if declare -F "$1" >/dev/null; then # a function here, which applies the limit itself
    "$@" </dev/null >"$log" 2>&1 || rc=$?
  else
    timeout -k 10 "$limit" "$@" </dev/null >"$log" 2>&1 || rc=$?
  fi
  if ((rc != 0)); then
    printf 'FAIL: %s (exit %d%s)\n    %s\n' "$label" "$rc" \
      "$( ((rc == 124 || rc == 137)) && printf ', timed out after %ss' "$limit")" "$*" >&2
    tail -n 40 "$log" | sed 's/^/    | /' >&2
    exit 1
  fi
  khalo_note "ok  $(printf '%3ds' $((SECONDS - started)))  $label"
}
srun_n() { # srun_n N: sets srun_cmd to launch N tasks on the node, oversubscribing its CPUs if needed
  srun_cmd=(srun -N 1 -n "$1" --kill-on-bad-exit=1 --input=none)
  if (($1 > cpus)); then
    srun_cmd+=(--overcommit)
  fi
}
rank_counts=(2 4)

# 1. The node-local rank, through khalo installed from the build tree.
if ! cmake --install "$build" --prefix "$tmp/prefix" >"$tmp/log/install.out" 2>&1; then
  tail -n 30 "$tmp/log/install.out" >&2
  khalo_die "cmake --install $build failed"
fi
if ! { cmake -S "$repo/tests/slurm" -B "$tmp/local_rank" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$tmp/prefix" && cmake --build "$tmp/local_rank"; } >"$tmp/log/local_rank.out" 2>&1; then
  tail -n 30 "$tmp/log/local_rank.out" >&2
  khalo_die "building tests/slurm/local_rank.cpp against khalo installed from $build failed"
fi
for n in "${rank_counts[@]}"; do
  srun_n "$n"
  check "srun -n $n: khalo::node_local_rank == SLURM_LOCALID on every rank" \
    "${srun_cmd[@]}" "$tmp/local_rank/khalo_local_rank"
done
sed -n 's/^local_rank: /    /p' "$tmp/out/check$checks.log"

# 2. The halo, decomposition and snapshot tests. ctest has run all of them under mpirun already;
# here they check the launcher, so the slowest parts that do not depend on it are left out: the
# double-precision halo cases (the float ones take the same paths) and the 40 corrupted files.
declare -A gtest_args=(
  [test_halo]='--gtest_filter=*_float.*'
  [test_snapshot]='--gtest_filter=-SnapshotErrors.RandomCorruptionNeverCrashes'
)
for t in "${tests[@]}"; do
  for n in "${rank_counts[@]}"; do
    srun_n "$n"
    # shellcheck disable=SC2086 # the arguments are one word or none
    check "srun -n $n $t${gtest_args[$t]:+ ${gtest_args[$t]}}" "${srun_cmd[@]}" "$build/tests/$t" ${gtest_args[$t]:-}
  done
done

# 3. khalo-decode: the same bytes under srun, mpirun and on one rank.
job=(--random-input "1,32,5,40,64" --random-weights --seed 2026 --out-dim 32 --num-res-blocks 1
  --upsample upsample3d --chunks 2 --layout channels_last_3d --quiet)
out=$tmp/out
check "khalo-decode on 1 rank" "$decode" "${job[@]}" --output "$out/decode.1.h5"
check "mpirun -np 2 khalo-decode" mpirun -np 2 --oversubscribe "$decode" "${job[@]}" --output "$out/decode.mpirun2.h5"
for n in "${rank_counts[@]}"; do
  srun_n "$n"
  check "srun -n $n khalo-decode" "${srun_cmd[@]}" "$decode" "${job[@]}" --output "$out/decode.srun$n.h5"
done
for other in mpirun2 "${rank_counts[@]/#/srun}"; do
  check "khalo-compare --bitwise: 1 rank == $other" "$compare" "$out/decode.1.h5" "$out/decode.$other.h5" --bitwise
done

# 4. The example batch script through sbatch: 2 ranks on this node, its GPU request removed (this
# node has none), the golden files as input and reference.
golden=$repo/tests/reference/golden
sed '/^#SBATCH --gpus-per-task/d' "$repo/examples/slurm/decode.sbatch" >"$out/decode.sbatch"
sbatch_example() {
  local rc=0
  KHALO_BIN=$(dirname "$decode") KHALO_INPUT=$golden/up3d_chunks3.input.h5 \
    KHALO_WEIGHTS=$golden/up3d_chunks3.weights.h5 KHALO_REFERENCE=$golden/up3d_chunks3.expected.h5 \
    KHALO_OUTPUT=$out/sbatch.decoded.h5 KHALO_CHUNKS=3 \
    timeout -k 10 "$limit" sbatch --wait --quiet --nodes=1 --ntasks=2 --ntasks-per-node=2 --cpus-per-task=1 \
    --chdir="$out" --output="$out/sbatch.out" "$out/decode.sbatch" || rc=$?
  cat "$out/sbatch.out" 2>/dev/null || true
  return "$rc"
}
check "sbatch examples/slurm/decode.sbatch (2 ranks, no GPU), compared with the golden output" sbatch_example

# 5. Fail-stop under srun: one rank fails (out of memory, an error inside an exchange, shapes
# changed alone, kill -9) and every rank ends within 30 s with one message.
fault_matrix_srun() {
  timeout -k 10 600 "$repo/tests/fault/fault_matrix.sh" srun "$decode" "$build/tests/fault_driver" \
    "$build/tests/libkhalo_fault_tool.so" 2 3
}
check "fail-stop under srun: tests/fault/fault_matrix.sh at 2 and 3 ranks" fault_matrix_srun

failed=0
khalo_note "all $checks Slurm checks passed"
