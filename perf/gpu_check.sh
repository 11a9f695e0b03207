#!/usr/bin/env bash
# khalo on one NVIDIA GPU node: configure, build, run the test suite and the benchmarks on the
# CUDA backend (the team convolution beside cuDNN, the decoder stage on 1 and 2 ranks, the halo
# exchange on device memory), and keep every log and result under one folder. Made for one H200
# with 16 cores, where the whole run fits in 9 minutes (--budget 540, the default).
#
# Usage: perf/gpu_check.sh OUTDIR [options] [-- CTEST-ARGS...]
#
#   OUTDIR               where logs and results go (created; existing files are overwritten)
#   --kokkos-root DIR    an installed CUDA-enabled Kokkos 4.x (default: $Kokkos_ROOT, then $KOKKOS_ROOT)
#   --arch sm_NN         nvcc_wrapper's default architecture, used by CMake's compiler checks (default: the
#                        GPU's compute_cap from nvidia-smi, else sm_90); the kernels are built for the
#                        architecture Kokkos was built for, and a mismatch with the GPU is warned about
#   --build-dir DIR      build directory (default: build-gpu-check/ in the repository; reused when present)
#   --jobs N             build parallelism and ctest -j (default: nproc)
#   --budget SECONDS     wall-clock budget of the whole run (default: 540); each step gets at most what is left
#   --build-cap SECONDS  most the build step may take (default: 420; raise it with --budget for slow machines)
#   --skip-build         use the existing build in --build-dir as it is
#   --build-only         configure and build (including the header self-containment objects), run nothing
#   --no-gpu-check       do not require a GPU, nvidia-smi or a CUDA-enabled Kokkos: exercises this script on a
#                        CPU machine with any Kokkos (the tests then run on its host backend)
#   -h, --help           this text
#   -- CTEST-ARGS...     passed on to the main ctest step (e.g. -- -R halo to rerun a few tests)
#
# Steps (each has a time cap and its own log in OUTDIR/logs/): gpu (nvidia-smi), configure, build
# (all targets plus khalo_headers_self_contained, so that ctest's compile-only test finds it done;
# compiler warnings are counted into the summary), info (khalo-decode --info), lambdas
# (perf/cuda_lambda_check.py over every executable: no nvcc lambda made by two source files), then the
# measurements, before the suite so that a slow suite cannot starve them:
#   cudnn        perf/bench_cudnn: khalo's conv() (the team kernel) beside cuDNN's best forward
#                algorithm on device memory, the decoder's convs at the Wan stage's per-rank shape
#                (1, 96, 4, 60, 104), NCDHW and NDHWC, also a check of khalo's output against
#                cuDNN's (CUDA only: built when Kokkos has CUDA and cuDNN is found)
#   decoder_np1, decoder_np2
#                perf/bench_decoder on 1 and 2 ranks sharing the GPU: the Wan stage (C = 96, T = 4,
#                W = 104), strong scaling over global H = 120 (60 rows per rank on 2: the per-rank
#                band above), weak scaling at 60 rows per rank; the halo share of the stage
#   attention    perf/bench_attention on 1 rank: the mid block's attention at the decoder's latent
#                size (C 384, 60 x 104, one frame; its softmax is the team kernel on a device)
#   halo_staged, halo_aware
#                perf/bench_halo_device on 2 ranks, on device memory: KHALO_GPU_AWARE_MPI=0 (faces
#                staged through host buffers) and =1 (device buffers handed to MPI; only when
#                ompi_info reports CUDA support)
# then ctest (everything but the perf label, JUnit in OUTDIR/ctest-junit.xml; bench_halo's and
# bench_decoder's quick forms are in the perf label), perf (ctest -L perf, JUnit in
# OUTDIR/perf-junit.xml), bench_conv (build/perf/bench_conv --quick), gpu-after (nvidia-smi once
# more). Without a CUDA-enabled Kokkos (--no-gpu-check on a CPU machine) cudnn is skipped with a
# note and the decoder, attention and halo steps run their --quick forms on the host backend.
#
# Ranks share the GPU (Kokkos maps node-local ranks round-robin onto the visible devices).
# KHALO_GPU_AWARE_MPI is exported as 1 only when OpenMPI's ompi_info reports CUDA support, else 0;
# a value already in the environment is kept.
#
# OUTDIR then holds: summary.txt (always written: every step's status and seconds, test counts, failed
# tests), results.md (always written: the measurements as tables to paste into perf/RESULTS.md, with
# the targets conv >= 0.5x cuDNN and halo share of the stage < 5%; perf/gpu_results.py), steps.tsv,
# env.txt, nvidia-smi.txt, nvidia-smi-after.txt, build-info.txt, ctest-junit.xml, perf-junit.xml,
# bench_cudnn.json, decoder_np1.json, decoder_np2.json, halo_staged.json, halo_aware.json,
# bench_conv.json, logs/*.log (one per step) and logs/LastTest*.log (ctest's own).
# The exit status is 0 when every step passed, 1 when any failed or ran out of time, 2 on bad usage.
#
# Example (CUDA 13 needs /usr/local/cuda/bin on PATH; the script adds it when nvcc is not found):
#   Kokkos_ROOT=/opt/kokkos-cuda perf/gpu_check.sh /tmp/gpu-check
set -uo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)

usage() {
  sed -n '2,/^set -uo pipefail$/{/^set /d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
}

out=""
kokkos_root=${Kokkos_ROOT:-${KOKKOS_ROOT:-}}
arch=""
build_dir=""
jobs=$(nproc 2>/dev/null || echo 4)
budget=540
build_cap=420
skip_build=0
build_only=0
gpu_check=1

ctest_extra=()
bad_usage() {
  printf 'gpu_check.sh: %s (see --help)\n' "$*" >&2
  exit 2
}
need_value() {
  [[ $# -ge 2 && -n "$2" ]] || bad_usage "$1 needs a value"
}
while (($# > 0)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --kokkos-root)
      need_value "$@"
      kokkos_root=$2
      shift 2
      ;;
    --arch)
      need_value "$@"
      arch=$2
      shift 2
      ;;
    --build-dir)
      need_value "$@"
      build_dir=$2
      shift 2
      ;;
    --jobs)
      need_value "$@"
      jobs=$2
      shift 2
      ;;
    --budget)
      need_value "$@"
      budget=$2
      shift 2
      ;;
    --build-cap)
      need_value "$@"
      build_cap=$2
      shift 2
      ;;
    --skip-build)
      skip_build=1
      shift
      ;;
    --build-only)
      build_only=1
      shift
      ;;
    --no-gpu-check)
      gpu_check=0
      shift
      ;;
    --)
      shift
      ctest_extra=("$@")
      break
      ;;
    -*) bad_usage "unknown option: $1" ;;
    *)
      [[ -z "$out" ]] || bad_usage "one output folder only (got '$out' and '$1')"
      out=$1
      shift
      ;;
  esac
done
[[ -n "$out" ]] || bad_usage "give the output folder as the first argument"
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || bad_usage "--jobs takes a positive number, not '$jobs'"
[[ "$budget" =~ ^[1-9][0-9]*$ ]] || bad_usage "--budget takes seconds, not '$budget'"
[[ "$build_cap" =~ ^[1-9][0-9]*$ ]] || bad_usage "--build-cap takes seconds, not '$build_cap'"
[[ -z "$arch" || "$arch" =~ ^sm_[0-9]+[a-z]?$ ]] || bad_usage "--arch takes sm_NN, not '$arch'"

mkdir -p "$out/logs" || {
  printf 'gpu_check.sh: cannot create %s\n' "$out" >&2
  exit 2
}
out=$(cd "$out" && pwd)
build_dir=${build_dir:-$repo/build-gpu-check}
mkdir -p "$build_dir" && build_dir=$(cd "$build_dir" && pwd)

# ------------------------------------------------------------------------------------------------
# Steps, their records and the summary written on exit (perf/gpu_check_steps.sh).
# shellcheck source=perf/gpu_check_steps.sh
source "$script_dir/gpu_check_steps.sh"

# ------------------------------------------------------------------------------------------------
# The environment.

if [[ "$(id -u)" -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1
# Plain text in the logs and the JUnit files.
export GTEST_COLOR=no
# Debian's python3 where there is one (the tables need nothing beyond the standard library).
python=/usr/bin/python3
[[ -x $python ]] || python=python3

# nvcc_wrapper calls plain `nvcc`.
if ! command -v nvcc >/dev/null 2>&1; then
  for d in "${CUDA_HOME:-}" "${CUDA_PATH:-}" /usr/local/cuda; do
    if [[ -n "$d" && -x "$d/bin/nvcc" ]]; then
      export PATH="$d/bin:$PATH"
      break
    fi
  done
fi

gpu_name=""
gpu_cap=""
if command -v nvidia-smi >/dev/null 2>&1; then
  gpu_name=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n1)
  gpu_cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n1 | tr -d ' ')
fi
if [[ -z "$arch" ]]; then
  if [[ "$gpu_cap" =~ ^([0-9]+)\.([0-9]+)$ ]]; then
    arch="sm_${BASH_REMATCH[1]}${BASH_REMATCH[2]}"
  else
    arch=sm_90
    [[ $gpu_check -eq 1 ]] && warnings+=("nvidia-smi gave no compute capability: assuming $arch")
  fi
fi
export NVCC_WRAPPER_DEFAULT_ARCH=$arch

# The Kokkos install: its backends and GPU architecture, from its CMake package.
kokkos_devices=""
kokkos_arch=""
kokkos_cfg=""
if [[ -n "$kokkos_root" ]]; then
  for f in "$kokkos_root"/lib*/cmake/Kokkos/KokkosConfigCommon.cmake "$kokkos_root"/cmake/KokkosConfigCommon.cmake; do
    if [[ -f "$f" ]]; then
      kokkos_cfg=$f
      break
    fi
  done
fi
if [[ -n "$kokkos_cfg" ]]; then
  kokkos_devices=$(sed -n 's/^set(Kokkos_DEVICES \(.*\))$/\1/p' "$kokkos_cfg" | head -n1)
  kokkos_arch=$(sed -n 's/^set(Kokkos_ARCH \(.*\))$/\1/p' "$kokkos_cfg" | head -n1)
  kokkos_cuda_arch=$(sed -n 's/^ *set(Kokkos_CUDA_ARCHITECTURES \([0-9]*\))$/\1/p' "$kokkos_cfg" | head -n1)
fi
has_cuda=0
[[ ";$kokkos_devices;" == *";CUDA;"* ]] && has_cuda=1

# Whether the MPI library can take device pointers (halo_aware runs only then).
mpi_cuda=0
if command -v ompi_info >/dev/null 2>&1 &&
  ompi_info --parsable --all 2>/dev/null | grep -q '^mca:mpi:base:param:mpi_built_with_cuda_support:value:true$'; then
  mpi_cuda=1
fi
if [[ -z "${KHALO_GPU_AWARE_MPI:-}" ]]; then
  KHALO_GPU_AWARE_MPI=$mpi_cuda
fi
export KHALO_GPU_AWARE_MPI

cxx=""
if ((has_cuda)); then
  cxx=$kokkos_root/bin/nvcc_wrapper
fi

{
  printf 'date: %s\nhost: %s\nrepo: %s\nbuild dir: %s\njobs: %s\nbudget: %ss\n' "$(date -u +%FT%TZ)" \
    "$(uname -n)" "$repo" "$build_dir" "$jobs" "$budget"
  printf 'cpus: %s x %s\n' "$(nproc)" "$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | xargs)"
  printf 'Kokkos_ROOT: %s\nKokkos devices: %s\nKokkos arch: %s (CUDA %s)\n' "$kokkos_root" "$kokkos_devices" \
    "$kokkos_arch" "${kokkos_cuda_arch:-}"
  printf 'GPU: %s (compute capability %s) -> %s\n' "${gpu_name:-none}" "${gpu_cap:-?}" "$arch"
  printf 'KHALO_GPU_AWARE_MPI=%s (MPI CUDA support from ompi_info: %s)\n' "$KHALO_GPU_AWARE_MPI" \
    "$([[ $mpi_cuda -eq 1 ]] && echo yes || echo no)"
  printf 'CUDA_VISIBLE_DEVICES=%s\n' "${CUDA_VISIBLE_DEVICES-<unset>}"
  printf '\n'
  command -v nvcc >/dev/null 2>&1 && nvcc --version
  cmake --version | head -n1
  mpirun --version 2>&1 | head -n1
  "${cxx:-${CXX:-c++}}" --version 2>&1 | head -n3
} >"$out/env.txt" 2>&1

# ------------------------------------------------------------------------------------------------
# 1. The GPU.

if ((gpu_check)); then
  if command -v nvidia-smi >/dev/null 2>&1; then
    run_step gpu 30 bash -c 'nvidia-smi && echo && nvidia-smi -q' && cp "${logs[-1]}" "$out/nvidia-smi.txt"
  else
    notrun_step gpu "nvidia-smi not found (use --no-gpu-check on a machine without a GPU)"
  fi
  if ((has_cuda == 0)); then
    notrun_step kokkos "no CUDA-enabled Kokkos at '${kokkos_root:-<unset>}' (devices: ${kokkos_devices:-none found});" \
      "give --kokkos-root or Kokkos_ROOT"
  elif [[ -n "${kokkos_cuda_arch:-}" && "sm_$kokkos_cuda_arch" != "$arch" ]]; then
    warnings+=("Kokkos was built for sm_$kokkos_cuda_arch, the GPU is $arch: kernels may not load")
  fi
else
  skip_step gpu "--no-gpu-check"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || true
  fi
fi

# ------------------------------------------------------------------------------------------------
# 2. Configure and build.

generator=""
if ((skip_build)); then
  skip_step configure "--skip-build"
  skip_step build "--skip-build"
  [[ -f "$build_dir/CMakeCache.txt" ]] || notes+=("--skip-build, but $build_dir holds no build")
elif [[ -z "$kokkos_root" ]]; then
  notrun_step configure "no Kokkos: give --kokkos-root or set Kokkos_ROOT"
  notrun_step build "not configured"
else
  configure=(cmake -S "$repo" -B "$build_dir" -DCMAKE_BUILD_TYPE=Release "-DKokkos_ROOT=$kokkos_root"
    -DKHALO_ENABLE_TESTS=ON -DKHALO_ENABLE_PERF=ON -DKHALO_ENABLE_EXAMPLES=ON)
  [[ -n "$cxx" ]] && configure+=("-DCMAKE_CXX_COMPILER=$cxx")
  if run_step configure 120 "${configure[@]}"; then
    generator=$(sed -n 's/^CMAKE_GENERATOR:INTERNAL=//p' "$build_dir/CMakeCache.txt")
    keep_going=(-k)
    [[ "$generator" == Ninja* ]] && keep_going=(-k 0)
    # Everything, plus the header objects that ctest's headers_self_contained would otherwise
    # compile one by one. Keep going past errors: the log then lists all of them.
    run_step build "$build_cap" cmake --build "$build_dir" -j "$jobs" --target all khalo_headers_self_contained \
      -- "${keep_going[@]}"
    # The compiler's warnings (the build is not -Werror here: a warning must not cost the run).
    grep -E '(^|[^A-Za-z_])warning( #[0-9-]+-D)?:' "${logs[-1]}" >"$out/build-warnings.txt"
    if [[ -s "$out/build-warnings.txt" ]]; then
      warnings+=("the build printed $(wc -l <"$out/build-warnings.txt") warning line(s): build-warnings.txt")
    fi
  else
    notrun_step build "configure failed"
  fi
fi

exe() { # the path of a built executable under the build directory, or nothing
  if [[ -x "$build_dir/$1" ]]; then
    printf '%s\n' "$build_dir/$1"
  fi
}

if ((build_only)); then
  notes+=("--build-only: nothing was run")
  exit 0
fi

# ------------------------------------------------------------------------------------------------
# 3. What was built, from the program itself.

decode=$(exe src/apps/khalo-decode)
if [[ -n "$decode" ]]; then
  # stdout only: a backend's warnings on stderr stay in the log.
  # shellcheck disable=SC2016 # expanded by the inner bash
  run_step info 60 bash -c 'set -o pipefail; "$1" --info | tee "$2"' info "$decode" "$out/build-info.txt"
else
  notrun_step info "khalo-decode was not built"
fi

# nvcc lambdas that several source files made can call a null pointer (CONTRIBUTING, Kernels).
mapfile -t executables < <(find "$build_dir" -path '*/CMakeFiles' -prune -o -type f -perm -u+x -print |
  while read -r f; do head -c 4 "$f" | grep -q ELF && printf '%s\n' "$f"; done)
if ((has_cuda == 0)); then
  skip_step lambdas "CUDA only: no nvcc lambdas without a CUDA-enabled Kokkos"
elif ((${#executables[@]} == 0)); then
  notrun_step lambdas "no executables in $build_dir"
else
  run_step lambdas 60 "$python" "$script_dir/cuda_lambda_check.py" "${executables[@]}"
fi

# ------------------------------------------------------------------------------------------------
# 4. The measurements: the convolutions beside cuDNN, the decoder stage on 1 and 2 ranks, the halo
# exchange on device memory. On a host backend (--no-gpu-check) the last two run their quick forms.

mpirun=(mpirun --bind-to none)
bench_cudnn=$(exe perf/bench_cudnn)
if ((has_cuda == 0)); then
  skip_step cudnn "CUDA only: no CUDA-enabled Kokkos (devices: ${kokkos_devices:-none found}), so no cuDNN comparison"
elif [[ -z "$bench_cudnn" ]]; then
  notrun_step cudnn "$build_dir/perf/bench_cudnn was not built (is cuDNN installed? see logs of configure)"
else
  run_step cudnn 120 "$bench_cudnn" --json "$out/bench_cudnn.json"
fi

bench_decoder=$(exe perf/bench_decoder)
decoder_args=(--channels 96 --frames 4 --height 120 --width 104 --rows-per-rank 60 --reps 5)
if ((has_cuda == 0)); then
  decoder_args=(--quick)
  notes+=("decoder_np1, decoder_np2, attention, halo_staged, halo_aware: their --quick forms (no CUDA backend)")
fi
for n in 1 2; do
  if [[ -n "$bench_decoder" ]]; then
    run_step "decoder_np$n" 90 "${mpirun[@]}" -np "$n" "$bench_decoder" "${decoder_args[@]}" \
      --json "$out/decoder_np$n.json"
  else
    notrun_step "decoder_np$n" "$build_dir/perf/bench_decoder was not built"
  fi
done

# The mid block's attention at the decoder's latent size (C 384, 60 x 104, one frame): on a device
# its softmax is the team kernel (perf/RESULTS.md, "GPU fitness"), never timed on a GPU before.
bench_attention=$(exe perf/bench_attention)
attention_args=(--channels 384 --height 60 --width 104 --frames 1 --reps 5)
((has_cuda)) || attention_args=(--quick)
if [[ -n "$bench_attention" ]]; then
  run_step attention 90 "${mpirun[@]}" -np 1 "$bench_attention" "${attention_args[@]}" --json "$out/attention.json"
else
  notrun_step attention "$build_dir/perf/bench_attention was not built"
fi

bench_halo_device=$(exe perf/bench_halo_device)
halo_args=()
((has_cuda)) || halo_args=(--quick)
if [[ -n "$bench_halo_device" ]]; then
  run_step halo_staged 60 env KHALO_GPU_AWARE_MPI=0 "${mpirun[@]}" -np 2 "$bench_halo_device" "${halo_args[@]}" \
    --json "$out/halo_staged.json"
  if ((mpi_cuda)); then
    run_step halo_aware 60 env KHALO_GPU_AWARE_MPI=1 "${mpirun[@]}" -np 2 "$bench_halo_device" "${halo_args[@]}" \
      --json "$out/halo_aware.json"
  else
    skip_step halo_aware "ompi_info reports no CUDA support: device buffers cannot go to MPI directly"
  fi
else
  notrun_step halo_staged "$build_dir/perf/bench_halo_device was not built"
  notrun_step halo_aware "$build_dir/perf/bench_halo_device was not built"
fi

# ------------------------------------------------------------------------------------------------
# 5. The test suite, then the benchmarks' quick forms.

junit_ok=1
ctest_minor=$(ctest --version | sed -n 's/^ctest version 3\.\([0-9]*\).*/\1/p')
if [[ -n "$ctest_minor" && "$ctest_minor" -lt 21 ]]; then
  junit_ok=0
  warnings+=("ctest older than 3.21: no JUnit output")
fi
run_ctest() { # name cap junit-file ctest-args...
  local name=$1 cap=$2 junit=$3
  shift 3
  local left=$((deadline - SECONDS))
  local limit=$((cap < left ? cap : left))
  # ctest stops its own tests 20 s before the step's limit, so that it still writes its reports.
  local stop
  stop=$(date -d "@$(($(date +%s) + (limit > 40 ? limit - 20 : limit)))" +%T)
  local args=(ctest --test-dir "$build_dir" --output-on-failure --stop-time "$stop" "$@")
  ((junit_ok)) && args+=(--output-junit "$junit")
  run_step "$name" "$cap" "${args[@]}"
  local rc=$?
  ctest_logs+=("${logs[-1]}")
  return "$rc"
}

if [[ -f "$build_dir/CTestTestfile.cmake" ]]; then
  run_ctest ctest 330 "$out/ctest-junit.xml" -LE perf -j "$jobs" --timeout 300 "${ctest_extra[@]}"
  cp "$build_dir/Testing/Temporary/LastTest.log" "$out/logs/LastTest.ctest.log" 2>/dev/null
  run_ctest perf 90 "$out/perf-junit.xml" -L perf
  cp "$build_dir/Testing/Temporary/LastTest.log" "$out/logs/LastTest.perf.log" 2>/dev/null
else
  notrun_step ctest "no build in $build_dir"
  notrun_step perf "no build in $build_dir"
fi

bench_conv=$(exe perf/bench_conv)
if [[ -n "$bench_conv" ]]; then
  run_step bench_conv 90 "$bench_conv" --quick --json "$out/bench_conv.json"
else
  skip_step bench_conv "$build_dir/perf/bench_conv was not built"
fi

if ((gpu_check)) && command -v nvidia-smi >/dev/null 2>&1; then
  run_step gpu-after 30 nvidia-smi && cp "${logs[-1]}" "$out/nvidia-smi-after.txt"
fi
exit 0
