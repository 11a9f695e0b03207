#!/usr/bin/python3
"""perf/decoder_model.sh's table: reads what it left in --results (khalo-decode's stderr on 1
and 2 ranks, kp_regions' lines in it, torch_decoder.py's JSON on 1 and 2 threads) and writes
decoder_model.json and decoder_model.md there, and prints the table.

  khalo's attention share: the per-layer events named decoder.mid_block.attentions.0 (each the
      max over ranks) over the decode seconds; its gather seconds are the summary line's.
  khalo's halo share: measured, the time inside khalo::Halo::start and khalo::Halo::wait
      (kp_regions), the larger rank's, over the decode seconds. The exchange overlaps the
      interior rows' convolution; what start and wait still take is what it did not hide, plus
      packing, unpacking, and waiting for a slower neighbour (imbalance counts here too): an
      upper bound of the halo's cost.
"""
import argparse
import json
import os
import re

ATTN = "decoder.mid_block.attentions.0"
EVENT = re.compile(r"^  (\S+)\s+chunk (\d+)\s+([\d.]+) ms\s+([\d.]+) GFLOP/s\s*(.*)$")
SUMMARY = re.compile(r"^khalo-decode: (\d+) ranks, (\S+), (\(.*?\)) -> (\(.*?\)), ([\d.]+) s decode \(([\d.]+) s total\), "
                     r"([\d.]+) GFLOP/s, halo ([\d.]+) MB sent, attention gather ([\d.]+) MB in ([\d.]+) s, "
                     r"peak memory per rank (\d+) MiB \(smallest (\d+) MiB\)")
REGION = re.compile(r"^kp_regions: rank (\d+) region (\S+) calls (\d+) seconds ([\d.]+)$")


def block_of(layer):
    """khalo's layer name -> the reference's block (torch_decoder.py's names)."""
    m = re.match(r"(.*\.resnets\.\d+)\.(conv1|conv2|conv_shortcut)$", layer) or re.match(
        r"(.*\.upsamplers\.0)\..*$", layer)
    return m.group(1) if m else layer


def parse_khalo(path):
    r = {"layers": {}, "blocks": {}, "kernels": {}, "regions": {}}
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            m = EVENT.match(line)
            if m:
                name, sec = m.group(1), float(m.group(3)) * 1e-3
                r["layers"][name] = r["layers"].get(name, 0.0) + sec
                b = block_of(name)
                r["blocks"][b] = r["blocks"].get(b, 0.0) + sec
                if m.group(5):
                    r["kernels"][name] = m.group(5)
                continue
            m = SUMMARY.match(line)
            if m:
                r.update(ranks=int(m.group(1)), layout=m.group(2), shape=m.group(3), output_shape=m.group(4),
                         seconds=float(m.group(5)), total_seconds=float(m.group(6)), gflops=float(m.group(7)),
                         halo_mb=float(m.group(8)), gather_mb=float(m.group(9)), gather_s=float(m.group(10)),
                         peak_mib=float(m.group(11)), peak_mib_smallest=float(m.group(12)))
                continue
            m = REGION.match(line)
            if m:
                r["regions"].setdefault(m.group(2), {})[int(m.group(1))] = float(m.group(4))
    if "seconds" not in r:
        raise SystemExit("decoder_model_report.py: no summary line in %s" % path)
    r["frames"] = int(r["output_shape"].strip("()").split(",")[2])
    r["flops"] = r["gflops"] * 1e9 * r["seconds"]
    r["attention_s"] = r["layers"].get(ATTN, 0.0)
    halo = {}
    for reg in ("khalo::Halo::start", "khalo::Halo::wait"):
        for rank, s in r["regions"].get(reg, {}).items():
            halo[rank] = halo.get(rank, 0.0) + s
    r["halo_s"] = max(halo.values()) if halo else None
    return r


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", required=True)
    p.add_argument("--cpu", default="")
    a = p.parse_args()
    path = lambda name: os.path.join(a.results, name)
    k = {n: parse_khalo(path("decoder_model_khalo_np%d.log" % n)) for n in (1, 2)}
    t = {}
    for n in (1, 2):
        with open(path("decoder_model_torch_t%d.json" % n)) as f:
            t[n] = json.load(f)[0]
    loads = {}
    if os.path.exists(path("decoder_model_loads.txt")):
        with open(path("decoder_model_loads.txt")) as f:
            for line in f:
                w = line.split()
                loads[w[0]] = {"at": w[1], "loadavg": [float(v) for v in w[2:5]]}
    flop_diff = abs(k[1]["flops"] - t[1]["flops"]) / t[1]["flops"]

    rows = []
    for n in (1, 2):
        r = k[n]
        rows.append({"who": "khalo", "units": n, "seconds": r["seconds"], "seconds_per_frame": r["seconds"] / r["frames"],
                     "gflops": r["gflops"], "peak_mib": r["peak_mib"], "attention_s": r["attention_s"],
                     "attention_share": r["attention_s"] / r["seconds"], "gather_s": r["gather_s"],
                     "gather_mb": r["gather_mb"], "halo_mb": r["halo_mb"], "halo_s": r["halo_s"],
                     "halo_share": None if r["halo_s"] is None else r["halo_s"] / r["seconds"],
                     "load": loads.get("khalo_np%d" % n)})
    for n in (1, 2):
        r = t[n]
        rows.append({"who": "torch", "units": n, "seconds": r["seconds"], "seconds_per_frame": r["seconds_per_frame"],
                     "gflops": r["gflops"], "peak_mib": r["peak_rss_bytes"] / 1048576.0,
                     "attention_s": r["attention_s"], "attention_share": r["attention_share"],
                     "warmup_seconds": [w["seconds"] for w in r["runs"] if w["warmup"]],
                     "conv3d_input_formats": r["conv3d_input_formats"], "load": loads.get("torch_t%d" % n)})
    speedups = {"khalo_1_rank_vs_torch_1_thread": t[1]["seconds"] / k[1]["seconds"],
                "khalo_2_ranks_vs_torch_2_threads": t[2]["seconds"] / k[2]["seconds"],
                "khalo_2_ranks_vs_1_rank": k[1]["seconds"] / k[2]["seconds"],
                "torch_2_threads_vs_1_thread": t[1]["seconds"] / t[2]["seconds"]}
    blocks = []
    for b in t[1]["blocks"]:
        blocks.append({"block": b, "khalo_np1_s": k[1]["blocks"].get(b), "torch_t1_s": t[1]["blocks"][b],
                       "khalo_np2_s": k[2]["blocks"].get(b), "torch_t2_s": t[2]["blocks"].get(b)})
    out = {"cpu": a.cpu, "latent_shape": t[1]["shape"], "output_shape": t[1]["output_shape"],
           "base_dim": t[1]["base_dim"], "torch": t[1]["torch"], "flops": k[1]["flops"],
           "flops_torch": t[1]["flops"], "flops_relative_difference": flop_diff, "rows": rows,
           "speedups": speedups, "blocks": blocks, "khalo_kernels": k[1]["kernels"]}
    with open(path("decoder_model.json"), "w") as f:
        json.dump(out, f, indent=1)

    pct = lambda v: "-" if v is None else "%.1f%%" % (100 * v)
    md = ["Latent %s -> output %s, base dim %d, float32, %.2f TFLOP (khalo's count; PyTorch's count differs by "
          "%.2g); %s." % (tuple(t[1]["shape"]), tuple(t[1]["output_shape"]), t[1]["base_dim"], k[1]["flops"] * 1e-12,
                          flop_diff, a.cpu or "CPU not given"), "",
          "| run | load (1 min) | decode s | s per output frame | GFLOP/s | peak memory per rank (MiB) | attention share"
          " (gather s) | halo MB sent | halo share (measured) |",
          "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        name = ("khalo, %d rank%s" % (r["units"], "s" if r["units"] > 1 else "") if r["who"] == "khalo"
                else "PyTorch, %d thread%s" % (r["units"], "s" if r["units"] > 1 else ""))
        load = "-" if not r["load"] else "%.1f" % r["load"]["loadavg"][0]
        if r["who"] == "khalo":
            att = "%s (%.3f)" % (pct(r["attention_share"]), r["gather_s"])
            halo_mb, halo = "%.1f" % r["halo_mb"], pct(r["halo_share"]) if r["units"] > 1 else "-"
        else:
            att, halo_mb, halo = pct(r["attention_share"]), "-", "-"
        md.append("| %s | %s | %.2f | %.3f | %.1f | %.0f | %s | %s | %s |" % (
            name, load, r["seconds"], r["seconds_per_frame"], r["gflops"], r["peak_mib"], att, halo_mb, halo))
    md += ["", "Speedups (time ratios): khalo 1 rank / PyTorch 1 thread **%.2fx**; khalo 2 ranks / PyTorch 2 threads "
           "**%.2fx**; khalo 2 ranks / 1 rank **%.2fx** (PyTorch 2 threads / 1: %.2fx)." % (
               speedups["khalo_1_rank_vs_torch_1_thread"], speedups["khalo_2_ranks_vs_torch_2_threads"],
               speedups["khalo_2_ranks_vs_1_rank"], speedups["torch_2_threads_vs_1_thread"]), "",
           "| block | khalo 1 rank s | PyTorch 1 thread s | khalo / PyTorch time | khalo 2 ranks s | PyTorch 2 threads s |",
           "| --- | --- | --- | --- | --- | --- |"]
    f3 = lambda v: "-" if v is None else "%.3f" % v
    for b in blocks:
        ratio = "-" if not b["khalo_np1_s"] else "%.2f" % (b["khalo_np1_s"] / b["torch_t1_s"])
        md.append("| %s | %s | %s | %s | %s | %s |" % (b["block"], f3(b["khalo_np1_s"]), f3(b["torch_t1_s"]), ratio,
                                                       f3(b["khalo_np2_s"]), f3(b["torch_t2_s"])))
    text = "\n".join(md) + "\n"
    with open(path("decoder_model.md"), "w") as f:
        f.write(text)
    print(text, end="")


if __name__ == "__main__":
    main()
