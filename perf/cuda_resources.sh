#!/usr/bin/env bash
# GPU fitness of khalo's kernels from the compiler: registers, spills, stack and shared memory per
# kernel, as ptxas reports them (-Xptxas -v) when khalo is built against a CUDA-enabled Kokkos.
# Needs no GPU. Writes perf/results/cuda_resources.txt (or OUT).
#
# Usage: perf/cuda_resources.sh KOKKOS_CUDA_ROOT [OUT]
#   KOKKOS_CUDA_ROOT   an installed Kokkos 4.x with CUDA (its bin/nvcc_wrapper is the compiler)
#   OUT                the report (default: perf/results/cuda_resources.txt)
# Environment: KHALO_CUDA_BUILD_DIR (default: /tmp/khalo-cuda-resources), KHALO_JOBS (default: nproc),
#   NVCC_WRAPPER_DEFAULT_ARCH (default: sm_90; CUDA 13 has no sm_70, nvcc_wrapper's own default),
#   KHALO_CUDA_REPORT_ONLY=1 (write the report from the last build's log, building nothing).
#
# Targets (the spill limit is what the project asks of every khalo kernel): 0 bytes spilled in
# every khalo kernel; convolution kernels at most 128 registers per thread; no nvcc lambda made in
# more than one translation unit of an executable (perf/cuda_lambda_check.py: such a lambda can
# call a null pointer on the host).
set -euo pipefail
script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$script_dir/.." && pwd)
if [[ $# -lt 1 || "$1" == -h || "$1" == --help ]]; then
  sed -n '2,14s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
  exit $(($# < 1 ? 2 : 0))
fi
kokkos=$(cd "$1" && pwd)
out=${2:-$repo/perf/results/cuda_resources.txt}
build=${KHALO_CUDA_BUILD_DIR:-/tmp/khalo-cuda-resources}
jobs=${KHALO_JOBS:-$(nproc)}
export NVCC_WRAPPER_DEFAULT_ARCH=${NVCC_WRAPPER_DEFAULT_ARCH:-sm_90}
command -v nvcc >/dev/null || export PATH=/usr/local/cuda/bin:$PATH
wrapper=$kokkos/bin/nvcc_wrapper
[[ -x "$wrapper" ]] || { echo "error: no $wrapper: is $kokkos a CUDA-enabled Kokkos?" >&2; exit 2; }

# The targets that instantiate every kernel: the library (decoder stage: conv, pointwise, halo)
# and the tests of the block kernels, the halo, the conv, the pointwise layers, the stage and the
# attention kernels.
targets=(khalo test_block test_halo test_conv test_pointwise test_decoder test_attention_kernel)
if [[ "${KHALO_CUDA_REPORT_ONLY:-0}" != 1 ]]; then
cmake -S "$repo" -B "$build" -DCMAKE_BUILD_TYPE=Release -DKokkos_ROOT="$kokkos" \
  -DCMAKE_CXX_COMPILER="$wrapper" -DCMAKE_CXX_FLAGS="-Xptxas=-v" \
  -DKHALO_ENABLE_TESTS=ON -DKHALO_ENABLE_PERF=OFF -DKHALO_ENABLE_EXAMPLES=OFF >"$build.configure.log" 2>&1 ||
  { tail -n 30 "$build.configure.log" >&2; exit 1; }
# Every object is rebuilt so that ptxas speaks for every kernel.
cmake --build "$build" --target clean >/dev/null 2>&1 || true
cmake --build "$build" -j "$jobs" --target "${targets[@]}" >"$build.build.log" 2>&1 ||
  { grep -E "error|warning" "$build.build.log" | head -n 40 >&2; exit 1; }
fi

python3 - "$build.build.log" "$out" "$kokkos" "$repo" <<'PY'
import re, subprocess, sys, datetime, os
log, out, kokkos, repo = sys.argv[1:5]
entries = {}
current = None
for line in open(log, errors="replace"):
    m = re.search(r"Compiling entry function '([^']+)' for '(sm_\d+)'", line)
    if m:
        current = m.group(1); entries.setdefault(current, {"arch": m.group(2)}); continue
    m = re.search(r"Function properties for (\S+)", line)
    if m:
        current = m.group(1); entries.setdefault(current, {}); continue
    if current is None:
        continue
    m = re.search(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads", line)
    if m:
        entries[current].update(stack=int(m.group(1)), spill_st=int(m.group(2)), spill_ld=int(m.group(3)))
    m = re.search(r"Used (\d+) registers", line)
    if m:
        entries[current]["regs"] = int(m.group(1))
        sm = re.search(r"(\d+) bytes smem", line)
        entries[current]["smem"] = int(sm.group(1)) if sm else 0
names = list(entries)
dem = subprocess.run(["c++filt"], input="\n".join(names), capture_output=True, text=True).stdout.split("\n")
rows = []
for mangled, pretty in zip(names, dem):
    e = entries[mangled]
    if "regs" not in e or "khalo" not in pretty:
        continue
    # The kernel's functor: the first khalo name inside ParallelFor<...> (a functor type, or the
    # function whose lambda it is).
    body = pretty[pretty.find("ParallelFor<"):] if "ParallelFor<" in pretty else pretty
    m = re.search(r"khalo::(?:[A-Za-z_0-9]+::)*[A-Za-z_0-9]+", body)
    home = m.group(0) if m else "khalo"
    kind = "team" if "TeamPolicy" in pretty else ("range" if "RangePolicy" in pretty else
           ("mdrange" if "MDRange" in pretty else "other"))
    m = re.search(r"float|double", pretty)
    rows.append((home, kind, m.group(0) if m else "", e.get("regs", 0), e.get("spill_st", 0), e.get("spill_ld", 0),
                 e.get("stack", 0), e.get("smem", 0)))
# One line per distinct (home, kind, type, resources).
rows = sorted(set(rows))
conv_regs_ok = all(r[3] <= 128 for r in rows if "conv" in r[0].lower())
spills = sum(r[4] + r[5] for r in rows)
# Parallelism of the team convolution on the Wan stage's per-rank band (1, 96, 4, 60, 104): teams x
# threads per team (one per register tile), from its tile constants (nn/detail/conv_device.hpp).
shape = re.search(r"WB = (\d+), CB = (\d+), CI = (\d+), TW = (\d+), TC = (\d+)",
                  open(os.path.join(repo, "include/khalo/nn/detail/conv_device.hpp")).read())
WB, CB, CI, TW, TC = (int(g) for g in shape.groups())
teams = 1 * 4 * 60 * -(-96 // CB) * -(-104 // WB)
threads = teams * (WB // TW) * (CB // TC)
with open(out, "w") as f:
    f.write("# khalo kernels as ptxas sees them (-Xptxas -v), one line per distinct kernel shape\n")
    f.write(f"# generated by perf/cuda_resources.sh on {datetime.date.today()}, Kokkos at {kokkos}\n")
    f.write("# targets: 0 bytes spilled in every khalo kernel; conv kernels <= 128 registers per thread\n")
    f.write(f"# result: {len(rows)} kernels, {spills} bytes of spill stores+loads in all; "
            f"conv kernels within 128 registers: {'yes' if conv_regs_ok else 'NO'}\n")
    f.write(f"# team conv on the Wan stage's per-rank band (1, 96, 4, 60, 104): {teams} teams x "
            f"{(WB // TW) * (CB // TC)} threads = {threads} threads per launch (target >= 65536: "
            f"{'yes' if threads >= 65536 else 'NO'}); tile {WB} columns x {CB} channels, {TW}x{TC} "
            f"accumulators per thread\n")
    f.write(f"{'regs':>5} {'spill_st':>8} {'spill_ld':>8} {'stack':>6} {'smem':>6}  {'policy':<6} {'type':<6} kernel\n")
    for home, kind, t, regs, st, ld, stack, smem in rows:
        f.write(f"{regs:>5} {st:>8} {ld:>8} {stack:>6} {smem:>6}  {kind:<6} {t:<6} {home}\n")
print(open(out).read())
PY

# nvcc lambdas that several translation units made: each can crash (perf/cuda_lambda_check.py).
exes=()
for t in "${targets[@]}"; do
  [[ -x "$build/tests/$t" ]] && exes+=("$build/tests/$t")
done
lambda_rc=0
lambdas=$(python3 "$script_dir/cuda_lambda_check.py" "${exes[@]}") || lambda_rc=$?
{
  printf '# nvcc extended lambdas made in more than one translation unit (target: none): %s\n' \
    "$([[ $lambda_rc -eq 0 ]] && echo none || echo 'SOME, below')"
  printf '%s\n' "$lambdas" | sed 's/^/#   /'
} >>"$out"
tail -n "$(($(wc -l <<<"$lambdas") + 1))" "$out"
