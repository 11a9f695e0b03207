#!/usr/bin/python3
"""What users would pick instead: PyTorch's CPU conv3d (oneDNN, Debian's
python3-torch) on the decoder's shapes, timed like perf/bench_conv: median of
repetitions after a warm-up, GFLOP/s = 2 * MACs / time, an explicit thread count.

    perf/torch_baseline.py [--threads N] [--quick] [--json FILE]
"""
import argparse
import json
import time

import torch
import torch.nn.functional as F


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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json")
    a = p.parse_args()
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
