#!/usr/bin/python3
"""The halo model's predictions as a plot (issue #17): predictions.json -> a PNG.

    /usr/bin/python3 perf/model/plot_predictions.py [--predictions F.json] [--out F.png]

Reads the 'sweep' of `halo_model.py predict` (2 .. 512 ranks; the 8, 64 and 512 of the issue
among them) and draws, one column per machine scenario:
  1. the whole decoder's halo share, halo + Allgatherv share and exposed share (khalo's overlap),
     row split (P x 1) against row x column split, with the row split's impossible counts
     (more ranks than the latent's 60 rows) marked;
  2. the whole decoder's time per clip against the ideal (time at 2 ranks x 2 / P);
  3. the stage's halo share and exposed share (weak scaling: a fixed band per rank).
matplotlib (Debian's python3-matplotlib) is needed; without it the script says so and exits 2.
Nothing is computed here: every number comes from predictions.json.
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.normpath(os.path.join(HERE, "..", "results", "halo_model_prediction.png"))
ISSUE_RANKS = (8, 64, 512)
SPLITS = {"row": ("row split (P x 1)", "-", "o"), "rowcol": ("row x column split (best grid)", "--", "s")}
SHARES = [("halo_share", "halo", "tab:blue"), ("comm_share", "halo + Allgatherv", "tab:orange"),
          ("comm_share_overlapped", "exposed with overlap (halo left over + Allgatherv)", "tab:green")]
STAGE_SHARES = [("share", "halo", "tab:blue"), ("share_overlapped", "exposed with overlap", "tab:green")]
TITLES = {"cpu-1core-per-rank": "CPU: 1 core per rank, 90 GFLOP/s",
          "gpu-50TF": "GPU: 50 TFLOP/s per GPU", "gpu-200TF": "GPU: 200 TFLOP/s per GPU"}


def series(recs, scenario, split, key):
    pts = [(r["ranks"], r[key]) for r in recs
           if r["scenario"] == scenario and r["split"] == split and r.get("feasible", True)]
    return [p for p, _ in pts], [v for _, v in pts]


def style_x(ax, ranks, row_limit, shade=True):
    ax.set_xscale("log", base=2)
    ticks = [p for p in ranks if p != row_limit]
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"$\\mathbf{{{p}}}$" if p in ISSUE_RANKS else str(p) for p in ticks])
    ax.minorticks_off()
    ax.set_xlim(min(ranks) / 1.25, max(ranks) * 1.25)
    if shade:  # the whole decoder: no row split past the latent's rows
        ax.axvline(row_limit, color="0.4", lw=0.8, ls=":")
        ax.axvspan(row_limit, max(ranks) * 1.25, color="0.92", zorder=0)
    ax.grid(True, which="major", color="0.85", lw=0.5)


def mark_impossible(ax, recs, scenario, y):
    bad = [r["ranks"] for r in recs if r["scenario"] == scenario and r["split"] == "row" and not r["feasible"]]
    if bad:
        ax.scatter(bad, [y] * len(bad), marker="x", color="tab:red", s=40, zorder=5, clip_on=False)


def plot_shares(ax, recs, scenario, shares):
    """One line per split and share (in %) of scenario's records; returns the highest point."""
    top = 0.0
    for split, (_, ls, mk) in SPLITS.items():
        for key, _, color in shares:
            x, y = series(recs, scenario, split, key)
            y = [100 * v for v in y]
            top = max(top, *y)
            ax.plot(x, y, ls=ls, marker=mk, ms=3.5, color=color, lw=1.4)
    return top


def plot(pred, out, plt):
    sw = pred.get("sweep")
    if not sw:
        sys.exit("predictions.json has no 'sweep': run `/usr/bin/python3 perf/model/halo_model.py predict` first")
    ranks, dec, stage = sw["ranks"], sw["decoder"], sw["stage"]
    H = pred["latent"][3]
    scen = list(pred["scenarios"])
    fig, axes = plt.subplots(3, len(scen), figsize=(4.6 * len(scen), 11), squeeze=False)
    for j, s in enumerate(scen):
        # 1. the whole decoder's shares
        ax = axes[0, j]
        ax.set_ylim(0, plot_shares(ax, dec, s, SHARES) * 1.12)
        mark_impossible(ax, dec, s, 0)
        style_x(ax, ranks, H)
        ax.set_title(TITLES.get(s, s), fontsize=10)
        if j == 0:
            ax.set_ylabel("whole decoder:\nshare of its time (%)")
        # 2. the whole decoder's time per clip
        ax = axes[1, j]
        for split, (_, ls, mk) in SPLITS.items():
            x, _ = series(dec, s, split, "halo_s")
            rec = [r for r in dec if r["scenario"] == s and r["split"] == split and r["feasible"]]
            ax.plot(x, [r["halo_s"] + r["allgather_s"] + r["compute_s"] for r in rec], ls=ls, marker=mk, ms=3.5,
                    color="black", lw=1.4)
            ax.plot(x, [r["compute_s"] for r in rec], ls=ls, color="0.6", lw=1.0)
        r0 = next(r for r in dec if r["scenario"] == s and r["split"] == "row" and r["ranks"] == min(ranks))
        t0 = r0["halo_s"] + r0["allgather_s"] + r0["compute_s"]
        ax.plot(ranks, [t0 * min(ranks) / p for p in ranks], color="tab:purple", lw=0.8, ls="-.")
        ax.set_yscale("log")
        lo = min(r["compute_s"] for r in dec if r["scenario"] == s and r["feasible"])
        mark_impossible(ax, dec, s, lo / 1.6)
        ax.set_ylim(lo / 2, t0 * 1.6)
        style_x(ax, ranks, H)
        if j == 0:
            ax.set_ylabel("whole decoder:\ntime per clip (s)")
        # 3. the stage's shares (weak scaling)
        ax = axes[2, j]
        ax.set_ylim(0, plot_shares(ax, stage, s, STAGE_SHARES) * 1.15)
        style_x(ax, ranks, H, shade=False)  # a band per rank: no row limit
        if all(r["share_overlapped"] == 0 for r in stage if r["scenario"] == s):
            ax.text(0.5, 0.04, "exposed with overlap: 0 everywhere",
                    transform=ax.transAxes, ha="center", fontsize=7.5, color="tab:green")
        ax.set_xlabel("ranks (log scale; issue #17's in bold)")
        if j == 0:
            ax.set_ylabel("stage, (1, 96, 4, 60, 104) per rank:\nhalo share (%)")
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch
    handles = [Line2D([], [], color="0.2", ls=ls, marker=mk, ms=4, label=lab) for lab, ls, mk in SPLITS.values()]
    handles += [Line2D([], [], color=c, lw=2, label=lab) for _, lab, c in SHARES]
    handles += [Line2D([], [], color="black", lw=1.4, label="time per clip: halo + Allgatherv + compute, "
                                                           "nothing overlapped"),
                Line2D([], [], color="0.6", lw=1.0, label="compute alone"),
                Line2D([], [], color="tab:purple", lw=0.8, ls="-.", label=f"ideal (row split at {min(ranks)} ranks "
                                                                          "x 2 / P)"),
                Line2D([], [], color="tab:red", marker="x", ls="", label=f"row split impossible (> {H} ranks)"),
                Patch(color="0.92", label=f"shaded: past {H} ranks only row x column splits ({H} latent rows)")]
    fig.legend(handles=handles, loc="lower center", ncol=3, fontsize=8, frameon=False)
    lat = "x".join(str(v) for v in pred["latent"])
    fig.suptitle(f"khalo halo model (issue #17): Wan 2.1 decoder, latent {lat}, strong scaling (rows 1-2); "
                 f"the stage, weak scaling (row 3).\nPredicted, not measured: CPU link and copies fitted on a "
                 f"2-vCPU guest; NVLink 4 / NDR published; GPU throughput and {pred['gpu_launch_s'] * 1e6:g} us "
                 f"pack launches assumed (perf/model/README.md)", fontsize=9.5)
    fig.tight_layout(rect=(0, 0.075, 1, 0.96))
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=80)
    print(f"wrote {out} ({os.path.getsize(out) // 1024} KiB)")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictions", default=os.path.join(HERE, "predictions.json"))
    ap.add_argument("--out", default=DEFAULT_OUT)
    a = ap.parse_args()
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (apt-get install python3-matplotlib)", file=sys.stderr)
        return 2
    with open(a.predictions) as f:
        plot(json.load(f), a.out, plt)
    return 0


if __name__ == "__main__":
    sys.exit(main())
