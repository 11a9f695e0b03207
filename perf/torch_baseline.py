#!/usr/bin/python3
"""What users would pick instead: PyTorch's CPU conv3d (oneDNN, Debian's
python3-torch) on the decoder's shapes, timed like perf/bench_conv: median of
repetitions after a warm-up, GFLOP/s = 2 * MACs / time, an explicit thread count.
With --decoder, the whole decoder stage instead (the Wan up-block of
tests/reference/wan_stage.py, whole clip), per layer and in total, on the shapes
and thread counts of perf/bench_decoder (its P ranks against P threads here).

    perf/torch_baseline.py [--threads N] [--quick] [--json FILE]
    perf/torch_baseline.py --decoder [--threads N ...] [--quick] [--json FILE]
"""
import argparse
import json
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_baseline.py: python3-torch is not installed (apt-get install python3-torch); skipped")
    sys.exit(77)  # ctest's "skipped"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))


def bench(c, t, h, w, layout, reps):
    x = torch.randn(1, c, t + 2, h + 2, w + 2)  # the causal front frames and the padding, as khalo's input
    if layout == "channels_last_3d":
        x = x.contiguous(memory_format=torch.channels_last_3d)
    weight = torch.randn(c, c, 3, 3, 3) * 0.05
    bias = torch.randn(c) * 0.05
    times = []
    with torch.no_grad():
        for r in range(reps + 1):
            t0 = time.perf_counter()
            F.conv3d(x, weight, bias)
            dt = time.perf_counter() - t0
            if r > 0:
                times.append(dt)
    times.sort()
    med = times[len(times) // 2]
    flops = 2.0 * c * c * 27 * t * h * w
    return {"bench": "torch_conv3d_3x3x3", "layout": layout, "C": c, "T": t, "H": h, "W": w, "median_s": med,
            "gflops": flops / med * 1e-9, "threads": torch.get_num_threads(), "torch": torch.__version__}


def stage_layers(x, params, mode, times):
    """The stage's forward (whole clip, no cache) cut into khalo's layers, each timed:
    resnets.i.conv1 = norm1, SiLU, conv1; resnets.i.conv2 = norm2, SiLU, conv2, + shortcut;
    upsamplers.0.resample.1 = nearest 2x and the 3x3 conv. The same ops as wan_stage.residual_block."""
    import wan_stage as ws

    def timed(name, fn, *args):
        t0 = time.perf_counter()
        y = fn(*args)
        times[name] = time.perf_counter() - t0
        return y

    for i in range(ws.num_resnets(params)):
        p = "resnets.%d." % i
        if p + "conv_shortcut.weight" in params:
            h = timed(p + "conv_shortcut", ws.causal_conv3d, x, params[p + "conv_shortcut.weight"],
                      params[p + "conv_shortcut.bias"], (0, 0, 0))
        else:
            h = x
        y = timed(p + "conv1", lambda v: ws.causal_conv3d(F.silu(ws.rms_norm(v, params[p + "norm1.gamma"])),
                                                          params[p + "conv1.weight"], params[p + "conv1.bias"],
                                                          (1, 1, 1)), x)
        x = timed(p + "conv2", lambda v: ws.causal_conv3d(F.silu(ws.rms_norm(v, params[p + "norm2.gamma"])),
                                                          params[p + "conv2.weight"], params[p + "conv2.bias"],
                                                          (1, 1, 1)) + h, y)
    if mode != "none":
        x = timed("upsamplers.0.resample.1", ws.resample_up, x, params, mode, None)
    return x


def layer_flops(name, c_in, c_out, t, h, w):
    """2 * MACs, counted as khalo's stage counts them."""
    if name.endswith("conv_shortcut"):
        return 2.0 * c_out * c_in * t * h * w
    if name.startswith("upsamplers"):
        return 2.0 * (c_out // 2) * c_out * 9 * t * 4 * h * w
    cin = c_in if name.endswith("0.conv1") else c_out
    return 2.0 * c_out * cin * 27 * t * h * w


def bench_decoder(c, t, h, w, num_res_blocks, upsample, layout, threads, scaling, reps, budget_s=6.0):
    import wan_stage as ws
    torch.set_num_threads(threads)
    params = ws.random_params(7, c, c, num_res_blocks, upsample)
    x = ws.random_input(11, (1, c, t, h, w))
    if layout == "channels_last_3d":
        x = x.contiguous(memory_format=torch.channels_last_3d)
        params = {k: v.contiguous(memory_format=torch.channels_last_3d) if v.dim() == 5 else v
                  for k, v in params.items()}
    per_layer, totals = {}, []
    with torch.no_grad():
        r, runs = 0, reps + 1
        while r < runs:
            times = {}
            t0 = time.perf_counter()
            stage_layers(x, params, upsample, times)
            dt = time.perf_counter() - t0
            r += 1
            if r == 1:  # warm-up; a slow shape (oneDNN's fallback path) gets fewer runs
                runs = 1 + max(1, min(reps, int(budget_s / dt)))
                continue
            totals.append(dt)
            for k, v in times.items():
                per_layer.setdefault(k, []).append(v)
    reps = len(totals)
    med = lambda v: sorted(v)[len(v) // 2]
    base = {"bench": "torch_decoder_stage", "layout": layout, "threads": threads, "scaling": scaling,
            "shape": [1, c, t, h, w], "in_dim": c, "out_dim": c, "num_res_blocks": num_res_blocks,
            "upsample": upsample, "reps": reps, "torch": torch.__version__}
    out, all_flops = [], 0.0
    for name, v in per_layer.items():
        fl = layer_flops(name, c, c, t, h, w)
        all_flops += fl
        out.append(dict(base, layer=name, median_s=med(v), flops=fl, gflops=fl / med(v) * 1e-9))
    out.append(dict(base, layer="total", median_s=med(totals), flops=all_flops,
                    gflops=all_flops / med(totals) * 1e-9))
    return out


def main_decoder(a):
    if a.quick:
        c, t, h, w, rows, nres, up, reps = 8, 2, 8, 8, 4, 0, "upsample2d", 1
    else:
        c, t, h, w, rows, nres, up, reps = a.channels, a.frames, a.height, a.width, a.rows_per_rank, 2, "none", 3
    results = []
    for layout in ("channels_last_3d", "contiguous"):
        for threads in a.threads_list:
            for scaling in ("strong", "weak"):
                hh = h if scaling == "strong" else rows * threads
                rs = bench_decoder(c, t, hh, w, nres, up, layout, threads, scaling, reps)
                print(f"\n== torch {torch.__version__}, {layout}, {scaling} scaling, {threads} thread(s), "
                      f"input (1,{c},{t},{hh},{w})")
                print(f"{'layer':28} {'median ms':>11} {'GFLOP/s':>10}")
                for r in rs:
                    print(f"{r['layer']:28} {r['median_s'] * 1e3:11.2f} {r['gflops']:10.1f}")
                results += rs
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json")
    p.add_argument("--decoder", action="store_true", help="time the decoder stage instead of conv3d alone")
    p.add_argument("--channels", type=int, default=96)
    p.add_argument("--frames", type=int, default=4)
    p.add_argument("--height", type=int, default=64, help="H of the strong-scaling shape")
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--rows-per-rank", type=int, default=32, help="H per thread of the weak-scaling shape")
    a = p.parse_args()
    a.threads_list = a.threads
    if a.decoder:
        return main_decoder(a)
    a.threads = a.threads[0]
    torch.set_num_threads(a.threads)  # it defaults to 1 here; say so explicitly
    shapes = [(16, 2, 8, 16)] if a.quick else [(96, 4, 32, 32), (96, 4, 64, 64), (192, 4, 32, 32), (192, 4, 64, 64),
                                               (384, 4, 32, 32), (384, 4, 64, 64)]
    results = []
    print(f"{'layout':18} {'C':>5} {'T':>3} {'H':>4} {'W':>4} {'median ms':>12} {'GFLOP/s':>10}")
    for layout in ("channels_last_3d", "contiguous"):
        for c, t, h, w in shapes:
            r = bench(c, t, h, w, layout, 2 if a.quick else 5)
            print(f"{layout:18} {c:5d} {t:3d} {h:4d} {w:4d} {r['median_s'] * 1e3:12.3f} {r['gflops']:10.2f}")
            results.append(r)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
