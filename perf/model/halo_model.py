#!/usr/bin/python3
"""A latency-bandwidth (alpha-beta) model of khalo's halo exchange, with a per-run copy cost
for packing, unpacking and open-side fills, fitted on this machine and extrapolated to
fabrics from their published figures (issue #17 part 4). Python 3 standard library + numpy.

  halo_model.py fit          [--pingpong F.jsonl] [--bench F.json ...]   -> fit.json
  halo_model.py fit-sharing  [--chain F.jsonl]      (ranks sharing cores) -> fit.json["sharing"]
  halo_model.py fit-node     [--bench F.json ...]   (node-shared faces)   -> fit.json["node"]
  halo_model.py fit-mapped   [--bench F.json ...]   (mapped faces)        -> fit.json["mapped"]
  halo_model.py validate     [--bench F.json ...]                        -> validation.json
  halo_model.py predict                                               -> predictions.json
  halo_model.py layers        (the decoder's exchanges, layer by layer, per latent frame)

Every time is seconds; every size bytes. What each number is (measured here / published /
assumed) is said where it is defined and in README.md.
"""
import argparse
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import exchange  # noqa: E402
from exchange import F32, exchange_time_smp, phase_work  # noqa: E402
from fitting import (bench_records, case_shape, fills_of, fit, fit_mapped, fit_node, fit_sharing,  # noqa: E402
                     load_fit, load_local_copies, load_sharing, use_in_place_run)
from wan_layers import wan21_layers  # noqa: E402
from scaling import decoder_prediction, scenarios, stage_prediction  # noqa: E402

ISSUE_RANKS = (8, 64, 512)  # issue #17's rank counts: predictions.json's 'stage' and 'decoder'
SWEEP_RANKS = [2, 4, 8, 16, 32, 60, 64, 128, 256, 512]  # predictions.json's 'sweep' (the plot)


# ----------------------------------------------------------------------------- validation

def on_node(r):
    """Whether khalo's node-local transports were on in a bench_halo record (records from before
    the option had none)."""
    return bool(r.get("shared_memory", False))


def mapped(r):
    """Whether khalo's Views lay in node-shared arenas in a bench_halo record (--node-shared-fields)."""
    return bool(r.get("node_shared_fields", False))


def measured_transport(r):
    """How rank 0 of a khalo bench_halo record sent its face, from its HaloStats: 'direct',
    'mapped', 'shared', 'datatype', 'packed' or 'in_place'; None for records without counters."""
    st = (r.get("stats_per_exchange") or [None])[0]
    if not st:
        return None
    if st.get("direct_sends"):
        return "direct"
    if st.get("mapped_sends"):
        return "mapped"
    if st.get("shared_sends"):
        return "shared"
    if st.get("datatype_sends"):
        return "datatype"
    return "packed" if st.get("bytes_packed") else "in_place"


def validate(args):
    fd, link, copy, datatype = load_fit(args.fit)
    use_in_place_run(args, args.bench)
    sharing = load_sharing(fd, args.cores, args.sharing)
    stat = fd.get("bench_stat", "median_s")
    rows, mismatches = [], []
    for r in bench_records(args.bench):
        if r["scheme"] not in ("khalo", "raw_mpi"):
            continue
        C, D, rows_per_rank, W = case_shape(r)
        scheme = "raw" if r["scheme"] == "raw_mpi" else "khalo"
        pred = exchange_time_smp(r["layout"], C, D, rows_per_rank, W, r["ranks"], args.cores, link, copy, scheme,
                                 sharing, datatype, fills_of(r), on_node(r), load_local_copies(fd), mapped(r))
        # The model must send each face as khalo's plan did (a face of rank 0: one neighbour).
        model_how = phase_work(r["layout"], C, D, rows_per_rank, W, "h", 1, scheme, datatypes=datatype is not None,
                               on_node=on_node(r), mapped=mapped(r))
        how = measured_transport(r) if scheme == "khalo" else "raw"
        if how is not None and how != model_how["transport"]:
            mismatches.append(f'{r["_file"]}:{r["case"]}:{r["layout"]}: khalo {how}, model {model_how["transport"]}')
        fitted_on = (fd["copy"]["fitted_on"] + fd.get("node", {}).get("fitted_on", []) +  # fit, fit-node,
                     fd.get("mapped", {}).get("fitted_on", []))  # fit-mapped
        in_fit = scheme == "khalo" and r["ranks"] == 2 and any(
            u.startswith(r["_file"] + ":" + r["case"] + ":" + r["layout"]) for u in fitted_on)
        key = r["_file"] + ":" + r["case"] + ":" + r["layout"]
        dropped = scheme == "khalo" and r["ranks"] == 2 and key in fd["copy"].get("dropped", [])
        # The same case and layout at other rank counts, when the 2-rank copy fit dropped it.
        like_dropped = scheme == "khalo" and any(u.split(":", 1)[1] == r["case"] + ":" + r["layout"]
                                                 for u in fd["copy"].get("dropped", []))
        rows.append({"file": r["_file"], "case": r["case"], "layout": r["layout"], "ranks": r["ranks"],
                     "case_dropped_at_2_ranks": like_dropped,
                     "scheme": r["scheme"], "transport": how, "measured_s": r["median_s"], "fitted_stat_s": r[stat], "q1_s": r.get("q1_s"),
                     "q3_s": r.get("q3_s"), "model_s": pred, "error": pred / r[stat] - 1,
                     "error_vs_median": pred / r["median_s"] - 1, "in_fit": in_fit,
                     "dropped_from_fit": dropped})
    summary = {}
    for key in sorted({(x["ranks"], x["scheme"]) for x in rows}):
        sel = [x for x in rows if (x["ranks"], x["scheme"]) == key]
        for tag, pick in (("out_of_fit", [x for x in sel if not x["in_fit"] and not x["dropped_from_fit"]]),
                          ("in_fit", [x for x in sel if x["in_fit"]]),
                          ("dropped_from_fit", [x for x in sel if x["dropped_from_fit"]])):
            if not pick:
                continue
            if tag == "out_of_fit" and key[1] == "khalo" and any(x["case_dropped_at_2_ranks"] for x in pick):
                kept = [x for x in pick if not x["case_dropped_at_2_ranks"]]
                for sub, sp in (("out_of_fit, cases the 2-rank fit kept", kept),
                                ("out_of_fit, cases the 2-rank fit dropped",
                                 [x for x in pick if x["case_dropped_at_2_ranks"]])):
                    if sp:
                        e = [abs(x["error"]) for x in sp]
                        em = [abs(x["error_vs_median"]) for x in sp]
                        summary[f"{key[1]} np{key[0]} {sub}"] = {
                            "cases": len(e), "median_abs_error": float(np.median(e)), "max_abs_error": float(max(e)),
                            "median_abs_error_vs_median": float(np.median(em)),
                            "max_abs_error_vs_median": float(max(em))}
            e = [abs(x["error"]) for x in pick]
            em = [abs(x["error_vs_median"]) for x in pick]
            summary[f"{key[1]} np{key[0]} {tag}"] = {
                "cases": len(e), "median_abs_error": float(np.median(e)), "max_abs_error": float(max(e)),
                "median_abs_error_vs_median": float(np.median(em)), "max_abs_error_vs_median": float(max(em))}
    with open(args.out, "w") as f:
        json.dump({"cores": args.cores, "stat": stat, "sharing": args.sharing, "sharing_params": vars(sharing),
                   "in_place_run_bytes": exchange.IN_PLACE_RUN, "bench": [os.path.relpath(b, HERE) for b in args.bench],
                   "rows": rows, "summary": summary, "transport_mismatches": mismatches}, f, indent=1)
    print(f"| ranks | scheme | case | layout | measured {stat[:-2]} ms | measured median ms | model ms | "
          f"error vs {stat[:-2]} | error vs median |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for x in rows:
        print(f'| {x["ranks"]} | {x["scheme"]} | {x["case"][4:]} | {x["layout"]} | {x["fitted_stat_s"] * 1e3:.3f} | '
              f'{x["measured_s"] * 1e3:.3f} | {x["model_s"] * 1e3:.3f} | {x["error"] * 100:+.0f}%'
              f'{" (fit)" if x["in_fit"] else (" (dropped)" if x["dropped_from_fit"] else "")} | '
              f'{x["error_vs_median"] * 100:+.0f}% |')
    print(f"transports: the model sends {'every face as khalo did' if not mismatches else 'these faces otherwise:'}")
    for m in mismatches:
        print(f"  {m}")
    for k, v in summary.items():
        print(f'{k}: {v["cases"]} cases, median |error| {v["median_abs_error"] * 100:.0f}% '
              f'(max {v["max_abs_error"] * 100:.0f}%) vs {stat[:-2]}; {v["median_abs_error_vs_median"] * 100:.0f}% '
              f'(max {v["max_abs_error_vs_median"] * 100:.0f}%) vs median')


def predict(args):
    fd, link, copy, datatype = load_fit(args.fit)
    use_in_place_run(args, [])
    H, W, T = 60, 104, 21
    layers = wan21_layers()
    res = {"fit": os.path.basename(args.fit), "cpu_gflops": args.cpu_gflops, "latent": [1, 16, T, H, W],
           "layers": layers, "scenarios": {}, "stage": [], "decoder": []}
    ms = scenarios(link, copy, args.cpu_gflops, args.gpu_launch_us * 1e-6, datatype)
    res["gpu_launch_s"] = args.gpu_launch_us * 1e-6
    for name, m in ms.items():
        res["scenarios"][name] = {"note": m["note"], "intra": vars(m["intra"]), "inter": vars(m["inter"]),
                                  "copy": vars(m["copy"]), "datatype": vars(m["datatype"]) if m["datatype"] else None,
                                  "flops": m["flops"]}
    layout = "channels_last_3d"
    for name, m in ms.items():
        for P in ISSUE_RANKS:
            for split in ("row", "rowcol"):
                res["stage"].append(dict(scenario=name, **stage_prediction(m, P, split, layout)))
    for name, m in ms.items():
        for P in ISSUE_RANKS:
            for split in ("row", "rowcol"):
                res["decoder"].append(dict(scenario=name, **decoder_prediction(m, P, split, H, W, T, layout, layers)))
    # The same at more rank counts, for the plot (plot_predictions.py): where the row split runs
    # out of latent rows (60) and where its share stops falling. Totals only, no per-layer costs.
    sweep = {"ranks": SWEEP_RANKS, "stage": [], "decoder": []}
    for name, m in ms.items():
        for P in SWEEP_RANKS:
            for split in ("row", "rowcol"):
                sweep["stage"].append(dict(scenario=name, split=split, **stage_prediction(m, P, split, layout)))
                d = decoder_prediction(m, P, split, H, W, T, layout, layers)
                d.pop("per_frame", None)
                sweep["decoder"].append(dict(scenario=name, **d))
    res["sweep"] = sweep
    # Cross-check with RESULTS.md's measured stage (2 ranks, global (1, 96, 4, 64, 64), 32 rows
    # per rank, 6 exchanges): the model's exchange time on this machine's fitted link.
    here = {}
    for lay in ("channels_last_3d", "contiguous"):
        t = 6 * exchange_time_smp(lay, 96, 4, 32, 64, 2, 2, link, copy, datatype=datatype)
        here[lay] = t
    res["stage_check_here"] = {"case": "2 ranks, (1, 96, 4, 64, 64) global, 6 exchanges", "model_halo_s": here,
                               "measured_RESULTS_md": {"channels_last_3d": {"stage_ms": 341.5, "halo_ms": 1.5,
                                                                            "share": 0.0044},
                                                       "contiguous": {"stage_ms": 385.2, "halo_ms": 2.0,
                                                                      "share": 0.0051}}}
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    print("cross-check, the stage on 2 ranks here: model exchange time for 6 exchanges: " +
          ", ".join(f"{k} {v * 1e3:.3f} ms" for k, v in here.items()) +
          " (RESULTS.md, measured on another CPU: 1.5 and 2.0 ms inside start + wait, waiting included)")
    print("stage (per-rank band (1, 96, 4, 60, 104), 6 exchanges):")
    print("| scenario | ranks | grid | halo ms | compute ms | halo share | exposed share (overlap) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for x in res["stage"]:
        print(f'| {x["scenario"]} | {x["ranks"]} | {x["grid"][0]}x{x["grid"][1]} | {x["halo_s"] * 1e3:.3f} | '
              f'{x["compute_s"] * 1e3:.2f} | {x["share"] * 100:.2f}% | {x["share_overlapped"] * 100:.2f}% |')
    print("\nwhole decoder (latent (1, 16, 21, 60, 104) -> 81 x 480 x 832):")
    print("| scenario | ranks | split | grid | tile (latent) | halo ms | Allgatherv ms | compute ms | halo share | "
          "halo + Allgatherv share | exposed share (overlap) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for x in res["decoder"]:
        if not x["feasible"]:
            print(f'| {x["scenario"]} | {x["ranks"]} | row | - | - | - | - | - | impossible: {x["why"]} | - | - |')
            continue
        print(f'| {x["scenario"]} | {x["ranks"]} | {x["split"]} | {x["grid"][0]}x{x["grid"][1]} | '
              f'{x["rows_per_rank"]}x{x["cols_per_rank"]} | {x["halo_s"] * 1e3:.2f} | {x["allgather_s"] * 1e3:.2f} | '
              f'{x["compute_s"] * 1e3:.1f} | {x["halo_share"] * 100:.2f}% | {x["comm_share"] * 100:.2f}% | '
              f'{x["comm_share_overlapped"] * 100:.2f}% |')


def layers_table(args):
    """The enumeration: every layer of one latent frame, its exchange and message size."""
    use_in_place_run(args, [])
    H, W = 60, 104
    kern = {27: "3x3x3", 9: "3x3 (after nearest 2x)", 3: "(3,1,1)", 1: "1x1x1"}
    print("| layer | kernel | Cin -> Cout | level rows x cols | frames (k = 0 / k > 0) | halo exchange | "
          "row message per neighbour, k > 0, full width |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    n, b0, b1 = 0, 0, 0
    for l in wan21_layers():
        s = l["s"]
        if l["kind"] == "attention":
            print(f'| {l["name"]} | attention, Allgatherv of K and V | {l["cin"]} | {H}x{W} | 1 / 1 | - | '
                  f'{2 * l["cin"] * H * W * F32 / 2 ** 20:.1f} MiB gathered in all |')
            continue
        b = l["cin"] * l["f"] * W * s * F32
        if l["halo"]:
            n += 1
            b1 += b
            b0 += l["cin"] * l["f0"] * W * s * F32
        print(f'| {l["name"]} | {kern[l["taps"]]} | {l["cin"]} -> {l["cout"]} | {H * s}x{W * s} | {l["f0"]} / {l["f"]} '
              f'| {"yes" if l["halo"] else "no"} | {f"{b / 1024:.0f} KiB" if l["halo"] else "-"} |')
    print(f"\n{n} exchanges per latent frame; one neighbour's row messages add up to {b0 / 2 ** 20:.1f} MiB "
          f"(latent frame 0) and {b1 / 2 ** 20:.1f} MiB (every later one)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("fit", help="fit alpha, beta (ping-pong) and the copy cost (2-rank bench_halo)")
    f.add_argument("--pingpong", default=os.path.join(HERE, "data", "pingpong.jsonl"))
    f.add_argument("--bench", nargs="+", default=[os.path.join(HERE, "data", f) for f in ("halo_np2.json", "halo_quick_np2.json")])
    f.add_argument("--cpu", default="")
    f.add_argument("--stat", default="q1_s", choices=["q1_s", "median_s", "min_s"],
                   help="bench_halo statistic fitted (default: first quartile; the ping-pong's 10th "
                        "percentile with it, its median with median_s): interference only slows a run")
    f.add_argument("--max-bytes", type=int, default=2 << 20, help="upper end of the single-copy fit")
    f.add_argument("--link", default="knee", choices=["knee", "cma"],
                   help="the single-copy regime the model uses: one line with a knee (default), or one line")
    f.add_argument("--out", default=os.path.join(HERE, "fit.json"))
    fs = sub.add_parser("fit-sharing", help="fit the core-sharing parameters on chain.c's runs")
    fs.add_argument("--fit", default=os.path.join(HERE, "fit.json"))
    fs.add_argument("--chain", default=os.path.join(HERE, "data", "chain.jsonl"))
    fs.add_argument("--cores", type=int, default=os.cpu_count())
    fs.add_argument("--stat", default="q1_s", choices=["q1_s", "median_s", "p10_s", "min_s"])
    fs.add_argument("--modes", nargs="+", default=["raw", "packed"], choices=["raw", "packed"])
    def local_fit(name, what, subdir):  # fit-node, fit-mapped: a node-local copy cost on measure.sh's data
        q = sub.add_parser(name, help=f"fit the cost of {what} ({subdir}2 step's data, data/{subdir}/)")
        q.add_argument("--fit", default=os.path.join(HERE, "fit.json"))
        q.add_argument("--bench", nargs="+", default=[os.path.join(HERE, "data", subdir, f)
                                                      for f in ("halo_np2.json", "halo_quick_np2.json")])
        q.add_argument("--stat", default=None, choices=["q1_s", "median_s", "min_s"],
                       help="bench_halo statistic fitted (default: the one fit used)")
        return q

    fn = local_fit("fit-node", "faces through node-shared buffers", "node")
    fm = local_fit("fit-mapped", "mapped faces (fields in node-shared arenas)", "mapped")
    v = sub.add_parser("validate", help="model against measured bench_halo runs")
    v.add_argument("--fit", default=os.path.join(HERE, "fit.json"))
    v.add_argument("--bench", nargs="+", default=[os.path.join(HERE, "data", f"halo{q}_np{n}.json")
                                                  for q in ("", "_quick") for n in (2, 3, 4)])
    v.add_argument("--cores", type=int, default=os.cpu_count())
    v.add_argument("--out", default=os.path.join(HERE, "validation.json"))
    v.add_argument("--sharing", default="fitted", choices=["fitted", "busy", "floor"],
                   help="more ranks than cores: the fitted Sharing, or an ablation (load_sharing)")
    p = sub.add_parser("predict", help="the Wan decoder stage and whole decoder at 8, 64, 512 ranks")
    p.add_argument("--fit", default=os.path.join(HERE, "fit.json"))
    p.add_argument("--cpu-gflops", type=float, default=90.0)
    p.add_argument("--gpu-launch-us", type=float, default=5.0,
                   help="assumed cost of one GPU pack / unpack / fill kernel launch")
    p.add_argument("--out", default=os.path.join(HERE, "predictions.json"))
    la = sub.add_parser("layers", help="the per-layer enumeration of the decoder's exchanges")
    for q in (f, fn, fm, v, p, la):
        q.add_argument("--in-place-run-bytes", type=int, default=None,
                       help="khalo's in-place threshold (kDefaultInPlaceMinRunBytes); default: the one recorded "
                            "with the data (fit, validate), else the source tree's")
    a = ap.parse_args()
    {"fit": fit, "fit-sharing": fit_sharing, "fit-node": fit_node, "fit-mapped": fit_mapped, "validate": validate,
     "predict": predict, "layers": layers_table}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
