#!/usr/bin/python3
"""Tables and plots of the halo and decoder benchmarks, from perf/results/*.json.

Prints the summary tables (and writes them as Markdown to --summary); draws
PNG plots beside the JSON when matplotlib is installed (Debian's
python3-matplotlib), and says so and skips them when it is not.

    perf/plot.py [--results DIR] [--summary FILE] [--no-plots]
"""
import argparse
import glob
import json
import os
import sys

SCHEMES = ["khalo", "khalo_split", "naive", "seed_fixed", "mpi_datatype", "raw_mpi"]
TARGET_VS_RAW = 1.25  # khalo within 1.25x of raw MPI, messages >= 64 KiB, 2 ranks
TARGET_VS_NAIVE = 3.0  # channels-last: >= 3x faster than naive
TARGET_VS_SEED = 1.5  # channels-last: >= 1.5x faster than the fixed seed


def load(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)


class Out:
    """Prints to stdout and collects the same lines as Markdown."""

    def __init__(self):
        self.md = []

    def table(self, title, header, rows, note=None):
        print("\n" + title)
        widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
                  for i, h in enumerate(header)]
        print("  ".join(str(h).rjust(w) for h, w in zip(header, widths)))
        for r in rows:
            print("  ".join(str(c).rjust(w) for c, w in zip(r, widths)))
        if note:
            print(note)
        self.md += ["", "### " + title, "", "| " + " | ".join(header) + " |",
                    "|" + "|".join(" --- " for _ in header) + "|"]
        self.md += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
        if note:
            self.md += ["", note]


def halo_tables(out, halo):
    cases = []
    by = {}
    for r in halo:
        key = (r["case"], r["layout"], r["ranks"])
        if key not in by:
            cases.append(key)
        by.setdefault(key, {})[r["scheme"]] = r
    rows, met = [], {"raw": [0, 0], "naive": [0, 0], "seed": [0, 0]}
    for key in cases:
        s = by[key]
        if not all(k in s for k in SCHEMES):
            continue
        t = {k: s[k]["median_s"] for k in SCHEMES}
        msg = s["khalo"]["message_bytes"]
        vs_raw = t["khalo"] / t["raw_mpi"]
        rows.append([key[0], key[1], key[2], "%.0f" % (msg / 1024)] +
                    ["%.3f" % (t[k] * 1e3) for k in SCHEMES] +
                    ["%.2f" % vs_raw, "%.2f" % (t["naive"] / t["khalo"]), "%.2f" % (t["seed_fixed"] / t["khalo"]),
                     "%.2f" % (t["mpi_datatype"] / t["khalo"])])
        if key[2] == 2 and msg >= 64 * 1024:
            met["raw"][1] += 1
            met["raw"][0] += vs_raw <= TARGET_VS_RAW
        if key[2] == 2 and key[1] == "channels_last_3d":
            met["naive"][1] += 1
            met["naive"][0] += t["naive"] / t["khalo"] >= TARGET_VS_NAIVE
            met["seed"][1] += 1
            met["seed"][0] += t["seed_fixed"] / t["khalo"] >= TARGET_VS_SEED
    note = ("Targets on 2 ranks: khalo <= %.2fx raw MPI for messages >= 64 KiB: met in %d of %d cases; "
            "channels-last >= %.0fx faster than naive: %d of %d; >= %.1fx faster than seed_fixed: %d of %d." %
            (TARGET_VS_RAW, met["raw"][0], met["raw"][1], TARGET_VS_NAIVE, met["naive"][0], met["naive"][1],
             TARGET_VS_SEED, met["seed"][0], met["seed"][1]))
    out.table("Halo exchange: median ms per exchange (slowest rank); ratios of medians",
              ["case", "layout", "ranks", "msg KiB"] + [k + " ms" for k in SCHEMES] +
              ["khalo/raw", "naive/khalo", "seed/khalo", "datatype/khalo"], rows, note)
    prow = []
    for key in cases:
        k = by[key].get("khalo")
        if not k or "profile" not in k:
            continue
        p = k["profile"]
        ms = lambda k: "%.3f" % (p[k] * 1e3) if k in p else "-"
        prow.append([key[0], key[1], key[2], ms("exchange_s"), ms("pack_s"), ms("unpack_s"), ms("fill_s"),
                     ms("mpi_wait_s"), ms("mpi_post_s"), ms("rest_s"), ms("row_copy_pack_s"),
                     ms("periodic_plain_loop_s"),
                     "%.2f" % (k["bytes"] / p["pack_s"] * 1e-9) if p["pack_s"] > 0 else "-"])
    out.table("Where khalo's exchange time goes (ms per exchange, slowest rank; Kokkos Tools kernel timers, PMPI)",
              ["case", "layout", "ranks", "exchange", "pack", "unpack or direct read", "boundary fill", "MPI_Waitall",
               "MPI_Isend/Irecv", "rest", "row-wise copy of the faces",
               "one-rank periodic copies, plain loop", "pack GB/s"], prow)


# The halo engine's targets (issue #17), on 2 ranks.
TARGET_CHANNELS_LAST = 1.25  # channels-last Wan faces of 64 KiB or more: khalo within 1.25x of raw MPI
TARGET_CONTIGUOUS = 3.0  # contiguous Wan faces: at least as fast as MPI datatypes, within 3x of raw MPI
TARGET_GRID = 2.5  # the 128^3 grid: within 2.5x of raw MPI
TARGET_VS_TORCH = 50.0  # beside the seed's gloo + torch.cat exchange
TARGET_IO = 0.5  # snapshot write and read: at least half a plain write() + fsync()'s bandwidth


def how_sent(record):
    """How khalo sent the faces of a case, from the first rank's HaloStats counters."""
    s = record.get("stats_per_exchange", [{}])[0]
    for key, name in (("mapped_sends", "mapped"), ("direct_sends", "direct"), ("shared_sends", "shared"),
                      ("datatype_sends", "datatype")):
        if s.get(key, 0) > 0:
            return name
    return "packed" if s.get("bytes_packed", 0) > 0 else "in place"


def target_tables(out, halo, node_shared, io, torch_dist):
    """One table of the halo engine's targets from one run, and a line per target: met in how many."""
    def by_case(records):
        by = {}
        for r in records:
            if r["ranks"] == 2:
                by.setdefault((r["case"], r["layout"]), {})[r["scheme"]] = r
        return by
    plain, nsf = by_case(halo), by_case(node_shared)
    rows, met = [], {}

    def count(name, ok):
        m = met.setdefault(name, [0, 0])
        m[0] += bool(ok)
        m[1] += 1

    for key, s in plain.items():
        if not all(k in s for k in ("khalo", "mpi_datatype", "raw_mpi")):
            continue
        t = {k: s[k]["median_s"] for k in ("khalo", "mpi_datatype", "raw_mpi")}
        vs_raw, dt = t["khalo"] / t["raw_mpi"], t["mpi_datatype"] / t["khalo"]
        row = [key[0], key[1], "%.0f" % (s["khalo"]["message_bytes"] / 1024), how_sent(s["khalo"]),
               "%.0f" % s["khalo"].get("line_latency_ns", float("nan")),
               "%.3f" % (t["khalo"] * 1e3), "%.3f" % (t["mpi_datatype"] * 1e3), "%.3f" % (t["raw_mpi"] * 1e3),
               "%.2f" % vs_raw, "%.2f" % dt]
        if key[1] == "channels_last_3d" and s["khalo"]["message_bytes"] >= 64 * 1024:
            count("channels-last within %.2fx of raw" % TARGET_CHANNELS_LAST, vs_raw <= TARGET_CHANNELS_LAST)
        elif key[1] == "contiguous":
            count("contiguous, packed: within %.0fx of raw" % TARGET_CONTIGUOUS, vs_raw <= TARGET_CONTIGUOUS)
            count("contiguous, packed: at least as fast as datatypes", dt >= 1.0)
        elif key[0].startswith("hpc_"):
            count("128^3 grid within %.1fx of raw" % TARGET_GRID, vs_raw <= TARGET_GRID)
        n = nsf.get(key, {})
        if key[1] == "contiguous" and all(k in n for k in ("khalo", "mpi_datatype", "raw_mpi")):
            tn = {k: n[k]["median_s"] for k in ("khalo", "mpi_datatype", "raw_mpi")}
            vs_raw_n, dt_n = tn["khalo"] / tn["raw_mpi"], tn["mpi_datatype"] / tn["khalo"]
            row += ["%.0f" % n["khalo"].get("line_latency_ns", float("nan")), how_sent(n["khalo"]),
                    "%.3f" % (tn["khalo"] * 1e3), "%.2f" % vs_raw_n, "%.2f" % dt_n]
            count("contiguous, node-shared fields: within %.0fx of raw" % TARGET_CONTIGUOUS,
                  vs_raw_n <= TARGET_CONTIGUOUS)
            count("contiguous, node-shared fields: at least as fast as datatypes", dt_n >= 1.0)
        else:
            row += ["-"] * 5
        rows.append(row)
    if not rows:
        return
    lines = ["%s: %d of %d" % (name, m[0], m[1]) for name, m in met.items()]
    if torch_dist and "schemes" in torch_dist:
        x = torch_dist["schemes"]["seed"]["median_ms"] / torch_dist["schemes"]["khalo"]["median_ms"]
        lines.append("beside the seed's gloo + torch.cat: %.1fx faster (target %.0fx): %s" %
                     (x, TARGET_VS_TORCH, "met" if x >= TARGET_VS_TORCH else "missed"))
    for r in io:
        w, rd = r["plain_write_median_s"] / r["write_median_s"], r["plain_write_median_s"] / r["read_median_s"]
        lines.append("snapshots on %d rank(s): write %.2fx, read %.2fx the bandwidth of a plain write() + fsync() "
                     "(target %.1fx): %s" % (r["ranks"], w, rd, TARGET_IO,
                                             "met" if min(w, rd) >= TARGET_IO else "missed"))
    out.table("The halo engine's targets on 2 ranks (issue #17): medians, one run; line ns: a cache line's "
              "one-way time between the ranks as the case ran (near under ~150, far above)",
              ["case", "layout", "KiB", "khalo sends", "line ns", "khalo ms", "datatype ms", "raw ms", "khalo/raw",
               "datatype/khalo", "node-shared fields: line ns", "khalo sends", "khalo ms", "khalo/raw", "datatype/khalo"],
              rows, "Met: " + "; ".join(lines) + ".")


def stats_tables(out, halo_sets):
    """khalo's HaloStats of one exchange per rank, for the first case of each layout."""
    rows = []
    for halo in halo_sets:
        seen = set()
        for r in halo:
            if r["scheme"] != "khalo" or "stats_per_exchange" not in r or r["layout"] in seen:
                continue
            seen.add(r["layout"])
            for s in r["stats_per_exchange"]:
                rows.append([r["case"], r["layout"], r["ranks"], s["rank"],
                             "yes" if s["low_neighbour"] else "open", "yes" if s["high_neighbour"] else "open",
                             s["messages"], s["bytes_sent"], s["bytes_packed"], s["faces_packed"],
                             r.get("allocations_while_timed", "-")])
    if rows:
        out.table("khalo's HaloStats per exchange, per rank (an open side: no message, no packed byte)",
                  ["case", "layout", "ranks", "rank", "low side", "high side", "messages", "bytes sent",
                   "bytes packed", "faces packed", "allocations while timed"], rows)


def decoder_tables(out, dec, torch_dec):
    if not dec:
        return
    groups = {}
    for r in dec:
        groups.setdefault((r["layout"], r["scaling"]), []).append(r)
    rows = []
    totals = {}
    for (layout, scaling), rs in groups.items():
        totals[(layout, scaling)] = {r["ranks"]: r for r in rs if r["layer"] == "total"}
    order = {"strong": 0, "independent": 1, "weak": 2}
    for (layout, scaling) in sorted(groups, key=lambda k: (k[0], order.get(k[1], 3))):
        # strong and independent both compare with the strong 1-rank stage; weak with weak's
        base = totals[(layout, "weak" if scaling == "weak" else "strong")].get(1)
        for p in sorted(totals[(layout, scaling)]):
            r = totals[(layout, scaling)][p]
            tr = [x for x in torch_dec if x["layer"] == "total" and x["layout"] == layout and
                  x["scaling"] == scaling and x["threads"] == p]
            speed = base["median_s"] / r["median_s"] if base else float("nan")
            ind = totals.get((layout, "independent"), {}).get(p)
            bound = base["median_s"] / ind["median_s"] if (scaling == "strong" and ind and base) else None
            rows.append([layout, scaling, p, "x".join(str(v) for v in r["shape"]), "%.1f" % (r["median_s"] * 1e3),
                         "%.1f" % r["gflops"], "%.2f" % speed, "%.2f" % bound if bound else "-",
                         "%.2f%%" % (100 * r["halo_fraction"]), "%.1f" % (r["halo_s"] * 1e3),
                         "%.1f" % (r["halo_max_s"] * 1e3) if "halo_max_s" in r else "-",
                         "%.0f%%" % (100 * r["compute_imbalance"]) if "compute_imbalance" in r else "-",
                         "%.1f" % (tr[0]["median_s"] * 1e3) if tr else "-",
                         "%.1f" % tr[0]["gflops"] if tr else "-",
                         "%.2f" % (tr[0]["median_s"] / r["median_s"]) if tr else "-"])
    out.table("Decoder stage: total per rank count (khalo P ranks x 1 thread; PyTorch P threads)",
              ["layout", "scaling", "P", "input", "khalo ms", "GFLOP/s", "t(1)/t(P)", "machine bound",
               "halo share", "halo ms", "halo ms with waiting", "compute imbalance", "torch ms", "torch GFLOP/s",
               "torch/khalo"], rows,
              "strong: the same global input on P ranks, t(1)/t(P) is the speed-up; weak: the same rows per rank, "
              "t(1)/t(P) is the efficiency (1 is ideal); independent: every rank decodes its band of the strong "
              "input alone (no halo, no messages), all at once, so t(1)/t(P) there is what this machine gives P "
              "processes: the bound for the strong speed-up (column machine bound). 'input' is the global input, "
              "rank 0's band for independent. halo: time inside Halo::start + wait of the critical rank (the one "
              "whose own kernels take longest), its share of the stage; with waiting: the most any rank spends there, "
              "waiting for a slower neighbour included; compute imbalance: slowest / fastest rank's kernels - 1. "
              "P = 4 runs oversubscribed on 2 cores (for information).")
    lrows = []
    for (layout, scaling), rs in sorted(groups.items()):
        if scaling != "strong":
            continue
        for p in (1, 2):
            for r in rs:
                if r["ranks"] != p or r["layer"] == "total":
                    continue
                tr = [x for x in torch_dec if x["layer"] == r["layer"] and x["layout"] == layout and
                      x["scaling"] == scaling and x["threads"] == p]
                lrows.append([layout, p, r["layer"], "%.1f" % (r["median_s"] * 1e3), "%.1f" % r["gflops"],
                              "%.1f" % (tr[0]["median_s"] * 1e3) if tr else "-",
                              "%.1f" % tr[0]["gflops"] if tr else "-"])
    out.table("Decoder stage per layer, strong scaling (khalo P ranks; PyTorch P threads)",
              ["layout", "P", "layer", "khalo ms", "khalo GFLOP/s", "torch ms", "torch GFLOP/s"], lrows)


def plots(res, halo, dec, torch_dec):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("\n(matplotlib is not installed: no plots; apt-get install python3-matplotlib)")
        return []
    written = []
    if halo:
        layouts = [l for l in ("contiguous", "channels_last_3d", "layout_right") if any(r["layout"] == l for r in halo)]
        fig, axes = plt.subplots(len(layouts), 1, figsize=(12, 3.6 * len(layouts)), squeeze=False)
        for ax, layout in zip(axes[:, 0], layouts):
            rs = [r for r in halo if r["layout"] == layout and r["ranks"] == 2] or \
                 [r for r in halo if r["layout"] == layout]
            cases = list(dict.fromkeys(r["case"] for r in rs))
            width = 0.8 / len(SCHEMES)
            for i, s in enumerate(SCHEMES):
                ys = [next((r["median_s"] * 1e3 for r in rs if r["case"] == c and r["scheme"] == s), 0) for c in cases]
                ax.bar([x + i * width for x in range(len(cases))], ys, width, label=s)
            ax.set_xticks([x + 0.4 - width / 2 for x in range(len(cases))])
            ax.set_xticklabels([c.replace("wan_", "").replace("hpc_", "") for c in cases], fontsize=8)
            ax.set_yscale("log")
            ax.set_ylabel("ms per exchange")
            ax.set_title("halo exchange, %s, %d ranks (median, slowest rank)" % (layout, rs[0]["ranks"]))
            ax.legend(fontsize=7, ncol=3)
        fig.tight_layout()
        path = os.path.join(res, "halo_times.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
        fig, ax = plt.subplots(figsize=(10, 4))
        for color, (layout, mark) in enumerate((("contiguous", "o"), ("channels_last_3d", "s"), ("layout_right", "^"))):
            for scheme in ("khalo", "mpi_datatype"):
                pts = []
                for r in halo:
                    if r["layout"] != layout or r["scheme"] != scheme or r["ranks"] != 2:
                        continue
                    raw = next(x for x in halo if x["case"] == r["case"] and x["layout"] == layout and
                               x["ranks"] == r["ranks"] and x["scheme"] == "raw_mpi")
                    pts.append((r["message_bytes"] / 1024, r["median_s"] / raw["median_s"]))
                if pts:
                    ax.scatter(*zip(*pts), marker=mark, label="%s, %s" % (scheme, layout), edgecolors="C%d" % color,
                               facecolors="none" if scheme == "mpi_datatype" else "C%d" % color)
        ax.axhline(TARGET_VS_RAW, color="k", ls="--", lw=1, label="target 1.25x")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("largest message (KiB)")
        ax.set_ylabel("time / raw MPI time")
        ax.set_title("halo exchange against the limit (2 ranks)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(res, "halo_vs_raw.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    if dec:
        layouts = list(dict.fromkeys(r["layout"] for r in dec))
        fig, axes = plt.subplots(1, len(layouts), figsize=(6 * len(layouts), 4), squeeze=False)
        for ax, layout in zip(axes[0], layouts):
            labels, ys, colors = [], [], []
            for p in sorted({r["ranks"] for r in dec}):
                r = [x for x in dec if x["layout"] == layout and x["scaling"] == "strong" and x["ranks"] == p and
                     x["layer"] == "total"]
                if r:
                    labels.append("khalo\n%d rank%s" % (p, "s" if p > 1 else ""))
                    ys.append(r[0]["median_s"] * 1e3)
                    colors.append("tab:blue")
            for p in sorted({r["ranks"] for r in dec}):
                r = [x for x in dec if x["layout"] == layout and x["scaling"] == "independent" and
                     x["ranks"] == p and x["layer"] == "total"]
                if r:
                    labels.append("%d bands\nalone" % p)
                    ys.append(r[0]["median_s"] * 1e3)
                    colors.append("tab:gray")
            for t in sorted({r["threads"] for r in torch_dec}):
                r = [x for x in torch_dec if x["layout"] == layout and x["scaling"] == "strong" and
                     x["threads"] == t and x["layer"] == "total"]
                if r:
                    labels.append("torch\n%d thread%s" % (t, "s" if t > 1 else ""))
                    ys.append(r[0]["median_s"] * 1e3)
                    colors.append("tab:orange")
            ax.bar(range(len(ys)), ys, color=colors)
            ax.set_xticks(range(len(ys)))
            ax.set_xticklabels(labels, fontsize=8)
            ax.set_ylabel("ms per stage")
            shape = next(x["shape"] for x in dec if x["scaling"] == "strong")
            ax.set_title("decoder stage, %s, input %s (strong scaling; gray: the machine's bound)" %
                         (layout, "x".join(map(str, shape))), fontsize=8)
        fig.tight_layout()
        path = os.path.join(res, "decoder_scaling.png")
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    for p in written:
        print("wrote", p)
    return written


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=os.path.join(here, "results"))
    ap.add_argument("--summary", help="write the tables as Markdown here (default: RESULTS/summary.md)")
    ap.add_argument("--no-plots", action="store_true")
    a = ap.parse_args()
    res = a.results
    halo = load(os.path.join(res, "halo.json"))
    dec = []
    for path in sorted(glob.glob(os.path.join(res, "decoder_np*.json"))):
        dec += load(path)
    torch_dec = load(os.path.join(res, "torch_decoder.json"))
    out = Out()
    context = next((r for r in halo + dec if "cpu" in r), None)
    if context:
        out.md += ["Machine and build: %s; %s." % (context["cpu"], context["build"])]
    if halo:
        halo_tables(out, halo)
        target_tables(out, halo, load(os.path.join(res, "halo_node_shared_fields.json")),
                      load(os.path.join(res, "io.json")), load(os.path.join(res, "torch_dist_halo.json")))
    stats_tables(out, [halo, load(os.path.join(res, "halo_np3.json"))])
    decoder_tables(out, dec, torch_dec)
    written = [] if a.no_plots else plots(res, halo, dec, torch_dec)
    for p in written:
        out.md += ["", "![%s](%s)" % (os.path.basename(p), os.path.basename(p))]
    summary = a.summary or os.path.join(res, "summary.md")
    with open(summary, "w") as f:
        f.write("# perf summary (generated by perf/plot.py from perf/results/*.json)\n\n" + "\n".join(out.md) + "\n")
    print("\nwrote", summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
