#!/usr/bin/env bash
# khalo's one check: from a fresh clone on Debian 12 to green.
#
# Usage: scripts/test.sh [--help]
#
# Steps (each announced with "==> ..."; the first failure stops the run):
#   1. install missing Debian packages        (scripts/deps.sh; root or sudo)
#   2. check formatting                       (clang-format-14 with the repo's .clang-format)
#   3. configure and build, Release, -Werror  ($KHALO_BUILD_DIR, default build/), with the
#      Python module (src/python)
#   4. build the API reference                (the docs target: Doxygen, warnings are errors)
#   5. run the tests                          (ctest; the Python module's under label python)
#   6. run the MPI core through srun on a one-node Slurm cluster started on this machine
#      (scripts/slurm.sh; installs Slurm when missing, skipped where it cannot be installed)
#   7. install into a temporary prefix, then build and run examples/downstream against it, and
#      run examples/python/conv3d_halo.py with the installed Python module
#   8. build and test with ASan + UBSan at -O2 -g1 ($KHALO_ASAN_BUILD_DIR, default build-asan/;
#      C++ only: an instrumented extension does not load into python3)
#
# Environment:
#   KHALO_BUILD_DIR=DIR         Release build directory (default: build)
#   KHALO_ASAN_BUILD_DIR=DIR    sanitizer build directory (default: build-asan)
#   KHALO_SKIP_SANITIZERS=1     skip step 8 (quick local runs; CI runs it)
#   KHALO_SKIP_SLURM=1          skip step 6
#   KHALO_SKIP_DEPS=1           skip step 1 (dependencies installed some other way; step 6 then
#                               runs only if Slurm is already installed, step 4 only if doxygen
#                               is, and the Python module is built only if pybind11 and mpi4py are)
#   KHALO_JOBS=N                build parallelism (default: nproc)
# Relative directories are taken from the repository root.
set -euo pipefail

usage() {
  sed -n '2,32s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
}

for arg in "$@"; do
  case "$arg" in
    -h | --help)
      usage
      exit 0
      ;;
    *)
      printf 'error: unknown argument: %s\n\n' "$arg" >&2
      usage >&2
      exit 2
      ;;
  esac
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

build_dir=${KHALO_BUILD_DIR:-build}
asan_dir=${KHALO_ASAN_BUILD_DIR:-build-asan}
jobs=${KHALO_JOBS:-$(nproc)}

# Temporary install prefix and downstream build, removed however the script ends.
tmp_root=""
cleanup() {
  if [[ -n "$tmp_root" && -d "$tmp_root" ]]; then
    rm -rf -- "$tmp_root"
  fi
}
trap cleanup EXIT

# Per-step timing, printed as each step ends and in the summary.
run_start=$SECONDS
step_start=$SECONDS
step_name=""
timings=()
step() {
  end_step
  step_name=$1
  step_start=$SECONDS
  khalo_step "$step_name"
}
end_step() {
  if [[ -n "$step_name" ]]; then
    local took=$((SECONDS - step_start))
    timings+=("$(printf '%5ds  %s' "$took" "$step_name")")
    khalo_note "(${took}s)"
    step_name=""
  fi
}
on_error() {
  local rc=$?
  if [[ -n "$step_name" ]]; then
    printf '==> FAILED: %s (exit %d)\n' "$step_name" "$rc" >&2
  fi
}
trap on_error ERR

# OpenMPI refuses to run as root without these; CI runs as root. Harmless otherwise.
if [[ "$(id -u)" -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
# Tests may use more ranks than cores (CI machines have 2).
export OMPI_MCA_rmaps_base_oversubscribe=1

# ---------------------------------------------------------------------------------------------
if [[ "${KHALO_SKIP_DEPS:-0}" == 1 ]]; then
  khalo_step "dependencies: skipped (KHALO_SKIP_DEPS=1)"
else
  step "dependencies (scripts/deps.sh)"
  scripts/deps.sh
fi

# ---------------------------------------------------------------------------------------------
# First: it takes a second, so a formatting slip fails the run before the long builds.
step "check formatting (clang-format-14)"
[[ -f .clang-format ]] || khalo_die "missing .clang-format in the repository root"
source_dirs=()
for d in include src tests perf examples; do
  if [[ -d "$d" ]]; then
    source_dirs+=("$d")
  fi
done
sources=()
if ((${#source_dirs[@]} > 0)); then
  # find, not git ls-files: minimal machines may have no git. Build trees are skipped.
  file_list=$(
    find "${source_dirs[@]}" \( -type d \( -name build -o -name 'build-*' \) -prune \) -o \
      -type f \( -name '*.hpp' -o -name '*.cpp' -o -name '*.h' -o -name '*.cc' \) -print |
      LC_ALL=C sort
  )
  if [[ -n "$file_list" ]]; then
    mapfile -t sources <<<"$file_list"
  fi
fi
khalo_note "${#sources[@]} files"
if ((${#sources[@]} > 0)); then
  clang-format-14 --style=file --dry-run --Werror "${sources[@]}"
fi

# ---------------------------------------------------------------------------------------------
step "configure Release build in $build_dir/"
# With the dependencies installed by step 1, the Python module must build; otherwise it is built
# when what it needs is there.
python_option=()
if [[ "${KHALO_SKIP_DEPS:-0}" != 1 ]]; then
  python_option=(-DKHALO_ENABLE_PYTHON=ON)
fi
cmake -S . -B "$build_dir" \
  -DCMAKE_BUILD_TYPE=Release \
  -DKHALO_WERROR=ON \
  -DKHALO_ENABLE_TESTS=ON \
  -DKHALO_ENABLE_EXAMPLES=ON \
  -DKHALO_ENABLE_PERF=ON \
  "${python_option[@]}"
cache_value() {
  sed -n "s/^$1:[A-Z]*=//p" "$build_dir/CMakeCache.txt"
}
if [[ "$(cache_value KHALO_ENABLE_PYTHON)" == ON ]]; then
  khalo_note "Python module: on ($(cache_value Python3_EXECUTABLE))"
else
  khalo_note "Python module: OFF (python3-dev, python3-pybind11 or python3-mpi4py missing)"
fi

step "build $build_dir/ (-j $jobs)"
cmake --build "$build_dir" -j "$jobs"

# ---------------------------------------------------------------------------------------------
if [[ "${KHALO_SKIP_DEPS:-0}" == 1 ]] && ! command -v doxygen >/dev/null 2>&1; then
  end_step
  khalo_step "API reference: SKIPPED (doxygen is not installed and KHALO_SKIP_DEPS=1)"
else
  step "build the API reference (docs target, Doxygen; warnings are errors)"
  cmake --build "$build_dir" --target docs
fi

# ---------------------------------------------------------------------------------------------
step "test $build_dir/ (ctest)"
# OpenMPI looks up this machine's name at every multi-rank launch; when it is unknown (a bare
# chroot or container without /etc/hosts) each mpirun waits several seconds for DNS.
host=$(uname -n)
if command -v getent >/dev/null 2>&1 && ! getent hosts "$host" >/dev/null 2>&1; then
  khalo_note "warning: host name '$host' does not resolve (missing from /etc/hosts?);" \
    "every multi-rank mpirun will wait ~5 s on DNS"
fi
ctest --test-dir "$build_dir" --output-on-failure --timeout 300

# ---------------------------------------------------------------------------------------------
# Users launch with srun, which starts ranks without mpirun (PMIx, no OMPI_* variables). The
# script says "SKIPPED" and succeeds where Slurm cannot be installed (no apt, no root or sudo).
step "srun on a one-node Slurm cluster (scripts/slurm.sh)"
scripts/slurm.sh run "$build_dir"

# ---------------------------------------------------------------------------------------------
step "install into a temporary prefix"
tmp_root=$(mktemp -d "${TMPDIR:-/tmp}/khalo-test.XXXXXX")
prefix=$tmp_root/prefix
cmake --install "$build_dir" --prefix "$prefix"

step "build examples/downstream against the installed khalo"
downstream_build=$tmp_root/downstream-build
cmake -S examples/downstream -B "$downstream_build" \
  -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix"
cmake --build "$downstream_build" -j "$jobs"

step "run khalo_downstream on 2 ranks"
downstream_exe=$downstream_build/khalo_downstream
if [[ ! -x "$downstream_exe" ]]; then
  khalo_die "examples/downstream did not produce $downstream_exe"
fi
timeout 120 mpirun -np 2 --oversubscribe "$downstream_exe"

if [[ "$(cache_value KHALO_ENABLE_PYTHON)" == ON ]]; then
  step "run examples/python/conv3d_halo.py on 2 ranks with the installed Python module"
  python_dir=$prefix/$(cache_value KHALO_PYTHON_INSTALL_DIR)
  [[ -n "$(compgen -G "$python_dir/khalo*.so")" ]] || khalo_die "no Python module installed in $python_dir"
  PYTHONPATH=$python_dir PYTHONDONTWRITEBYTECODE=1 timeout 120 mpirun -np 2 --oversubscribe -x PYTHONPATH \
    -x PYTHONDONTWRITEBYTECODE "$(cache_value Python3_EXECUTABLE)" examples/python/conv3d_halo.py \
    --shape 1,16,3,13,20 --cout 8
fi

# ---------------------------------------------------------------------------------------------
if [[ "${KHALO_SKIP_SANITIZERS:-0}" == 1 ]]; then
  end_step
  khalo_step "sanitizers: skipped (KHALO_SKIP_SANITIZERS=1)"
else
  # -O2: the sanitizers still see every access, and the suite runs many times faster than at -O0.
  # -g1: line tables only, which is all a sanitizer's report needs for file:line; full -g only
  # made the compiles and links slower (figures: the commit that chose -g1).
  step "configure ASan + UBSan build in $asan_dir/"
  cmake -S . -B "$asan_dir" \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" \
    -DKHALO_ENABLE_SANITIZERS=ON \
    -DKHALO_ENABLE_PYTHON=OFF \
    -DKHALO_ENABLE_TESTS=ON \
    -DKHALO_ENABLE_PERF=OFF \
    -DKHALO_ENABLE_EXAMPLES=OFF

  step "build $asan_dir/ (-j $jobs)"
  cmake --build "$asan_dir" -j "$jobs"

  step "test $asan_dir/ (ctest under ASan + UBSan)"
  # OpenMPI leaks by design: leak checking off, everything else fatal. headers_self_contained
  # only compiles (already checked in the Release build), so it is not repeated here.
  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir "$asan_dir" --output-on-failure --timeout 300 -E '^headers_self_contained$'
fi

# ---------------------------------------------------------------------------------------------
end_step
printf '\n'
printf '    %s\n' "${timings[@]}"
printf '    %5ds  %s\n' "$((SECONDS - run_start))" "total"
khalo_step "all checks passed"
