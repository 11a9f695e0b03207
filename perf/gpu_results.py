#!/usr/bin/env python3
"""Tables from one perf/gpu_check.sh run, to paste into perf/RESULTS.md.

Reads what the run left in OUTDIR (env.txt, steps.tsv, summary.txt, bench_cudnn.json,
decoder_np1.json, decoder_np2.json, attention.json, halo_staged.json, halo_aware.json) and writes
OUTDIR/results.md: the convolutions beside cuDNN, the decoder stage on 1 and 2 ranks with its
halo share, the halo exchange on device memory, the suite's counts, and the targets (conv >=
0.5x cuDNN, halo share of the stage < 5%) as this run measured them. Missing files give a line
saying so. Standard library only.

    perf/gpu_results.py OUTDIR
"""
import json
import os
import re
import sys

CONV_TARGET = 0.5
HALO_TARGET = 0.05


def load(out, name):
    path = os.path.join(out, name)
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def text(out, name):
    try:
        with open(os.path.join(out, name)) as f:
            return f.read()
    except OSError:
        return ""


def field(env, key):
    m = re.search(r"^%s: (.*)$" % re.escape(key), env, re.M)
    return m.group(1).strip() if m else "?"


def ms(s):
    return "%.3f" % (s * 1e3) if isinstance(s, (int, float)) else "-"


def num(x, fmt="%.1f"):
    return fmt % x if isinstance(x, (int, float)) else "-"


def table(header, rows):
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: perf/gpu_results.py OUTDIR")
    out = sys.argv[1]
    env, summary = text(out, "env.txt"), text(out, "summary.txt")
    gpu = field(env, "GPU")
    first = summary.splitlines()[:4]
    md = ["# khalo GPU check: results", ""]
    md += ["Run: `perf/gpu_check.sh` on %s, %s." % (field(env, "host"), field(env, "date")),
           "GPU: %s. CPU: %s. Kokkos: %s (%s)." % (gpu, field(env, "cpus"), field(env, "Kokkos_ROOT"),
                                                   field(env, "Kokkos devices")),
           (re.search(r"^KHALO_GPU_AWARE_MPI=.*$", env, re.M) or re.match(".*", "KHALO_GPU_AWARE_MPI=?")).group(0) + ".",
           ""]
    md += ["    " + line for line in first] + [""]
    on_gpu = "CUDA" in field(env, "Kokkos devices") and not gpu.startswith("none")

    # ---- The suite.
    counts = re.findall(r"^(logs/\S+): (.*)$", summary, re.M)
    if counts:
        md += ["## Test suite", ""] + ["- %s: %s" % (log, c) for log, c in counts] + [""]

    # ---- Convolutions beside cuDNN.
    md += ["## Convolutions beside cuDNN (`perf/bench_cudnn`, float32, device memory)", ""]
    cudnn = load(out, "bench_cudnn.json")
    conv_verdicts = []
    if not cudnn:
        md += ["Not measured: no bench_cudnn.json (CUDA only; see the cudnn step's log).", ""]
    else:
        r0 = cudnn[0]
        md += ["Input (1, %d, %d, %d, %d) plus what padding needs; time = median wall time of one call, "
               "fenced; khalo/cuDNN = cuDNN's time over khalo's (> 1: khalo faster). cuDNN FMA = "
               "`CUDNN_FMA_MATH` (strict float32, the target's baseline); default math may use TF32 "
               "tensor cores. The upsampler's cuDNN time includes a separate nearest-2x kernel (khalo "
               "fuses it). Error: max |khalo - cuDNN FMA| / max |cuDNN FMA|." % (r0["C"], r0["T"], r0["H"], r0["W"]),
               ""]
        rows = []
        for r in cudnn:
            ratio = r.get("khalo_over_cudnn")
            if isinstance(ratio, (int, float)):
                conv_verdicts.append((r["layout"], r["conv"], ratio))
            rows.append([r["layout"], r["conv"], r["Cout"], ms(r["khalo_s"]), num(r["khalo_gflops"]), r["khalo_kernel"],
                         ms(r.get("cudnn_s")), num(r.get("cudnn_gflops")), r.get("cudnn_algo", "-"),
                         ("**%.2f**" % ratio) if isinstance(ratio, (int, float)) else "-",
                         ms(r.get("cudnn_default_math_s")), num(r.get("khalo_over_cudnn_default_math"), "%.2f"),
                         num(r.get("cudnn_max_rel_error"), "%.1e"), "ok" if r.get("ok") else "**WRONG**"])
        md += table(["layout", "conv", "Cout", "khalo ms", "GFLOP/s", "khalo kernel", "cuDNN FMA ms", "GFLOP/s",
                     "cuDNN algo", "khalo/cuDNN", "cuDNN default math ms", "khalo/default", "max rel error",
                     "output"], rows) + [""]

    # ---- Decoder stage.
    md += ["## Decoder stage (`perf/bench_decoder`, 1 and 2 ranks on one GPU)", ""]
    stage = {}
    for n in (1, 2):
        for r in load(out, "decoder_np%d.json" % n) or []:
            if r.get("layer") == "total":
                stage[(r["layout"], r["scaling"], r["ranks"])] = r
    halo_verdicts = []
    if not stage:
        md += ["Not measured: no decoder_np1.json / decoder_np2.json.", ""]
    else:
        rows = []
        for (layout, scaling, ranks), r in sorted(stage.items()):
            one = stage.get((layout, "strong", 1))
            speed = one["median_s"] / r["median_s"] if one and scaling == "strong" else None
            rows.append([layout, scaling, ranks, "(%s)" % ", ".join(str(x) for x in r["shape"]), r.get("backend", "?"),
                         ms(r["median_s"]), num(r["gflops"]), num(speed, "%.2f"),
                         num(100 * r["halo_fraction"], "%.2f%%") if "halo_fraction" in r else "-",
                         ms(r.get("halo_s")), ms(r.get("halo_max_s"))])
            if ranks == 2 and scaling == "strong" and "halo_fraction" in r:
                halo_verdicts.append((layout, r["halo_fraction"], r["shape"], r.get("backend", "?")))
        md += ["Stage time = slowest rank, median; shape = the rank's band (strong: global); halo share = "
               "the critical rank's time in Halo::start + HaloExchange::wait over the stage time.", ""]
        md += table(["layout", "scaling", "ranks", "shape", "backend", "stage ms", "GFLOP/s", "t(1)/t(P)",
                     "halo share", "halo ms", "halo ms with waiting"], rows) + [""]

    # ---- Attention.
    md += ["## Mid-block attention (`perf/bench_attention`, 1 rank)", ""]
    att = load(out, "attention.json")
    if not att:
        md += ["Not measured: no attention.json.", ""]
    else:
        md += table(["C", "frame", "format", "ms", "GFLOP/s"],
                    [[r["channels"], "%d x %d" % (r["height"], r["width"]), r["format"], ms(r["median_s"]),
                      num(r["gflops"])] for r in att]) + [""]

    # ---- Halo exchange on device memory.
    md += ["## Halo exchange on device memory (`perf/bench_halo_device`, 2 ranks on one GPU)", ""]
    rows = []
    for mode, name in (("staged (KHALO_GPU_AWARE_MPI=0)", "halo_staged.json"),
                       ("device-resident (KHALO_GPU_AWARE_MPI=1)", "halo_aware.json")):
        recs = load(out, name)
        if recs is None:
            rows.append([mode, "not measured", "-", "-", "-", "-", "-", "-"])
            continue
        for r in recs:
            rows.append([mode, r["case"], r["layout"], r["memory_space"], ms(r["khalo_s"]), ms(r["khalo_split_s"]),
                         num(r["gbps"], "%.2f"), "ok" if r["wrong_ghosts"] == 0 else "**WRONG**"])
    md += table(["MPI path", "case (per rank)", "layout", "memory", "khalo ms", "split ms", "GB/s", "ghosts"],
                rows) + [""]

    # ---- Targets.
    md += ["## Targets", ""]
    where = "measured on %s" % gpu if on_gpu else "NOT a GPU measurement (no CUDA backend in this run)"
    if conv_verdicts:
        met = [v for v in conv_verdicts if v[2] >= CONV_TARGET]
        worst = min(conv_verdicts, key=lambda v: v[2])
        md.append("- conv >= %.1fx cuDNN (FMA math), per conv and layout: %s, met in %d of %d (narrowest: %s %s, %.2fx); %s"
                  % (CONV_TARGET, "met" if len(met) == len(conv_verdicts) else "NOT met", len(met),
                     len(conv_verdicts), worst[0], worst[1], worst[2], where))
    else:
        md.append("- conv >= %.1fx cuDNN: not measured in this run" % CONV_TARGET)
    if halo_verdicts:
        for layout, frac, shape, backend in halo_verdicts:
            tiny = shape[1] < 96  # bench_decoder --quick: C = 8
            verdict = ("no verdict: a --quick tiny stage" if tiny else
                       "met" if frac < HALO_TARGET else "NOT met")
            md.append("- halo share of the stage < %d%% (2 ranks, strong, global %s, %s): %.2f%%, %s; %s"
                      % (100 * HALO_TARGET, "x".join(str(x) for x in shape), layout, 100 * frac, verdict,
                         "measured on %s" % gpu if backend == "Cuda" else
                         "NOT a GPU measurement (backend %s)" % backend))
    else:
        md.append("- halo share of the stage < %d%%: not measured in this run" % (100 * HALO_TARGET))
    md.append("")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
