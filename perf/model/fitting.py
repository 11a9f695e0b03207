"""Fitting the model of halo_model.py to what was measured here: alpha and beta from the
ping-pong, khalo's copy cost from 2-rank bench_halo runs, and the core sharing of more ranks than
cores from chain.c; and reading those measurements and the fit back (issue #17 part 4)."""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import exchange  # noqa: E402
from exchange import EAGER, Copy, Link, Sharing, chain_works, phase_work  # noqa: E402


def load_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip().startswith("{")]


def fit_alpha_beta(points):
    """Least squares on relative error: minimise sum ((alpha + n / beta - t) / t)^2."""
    n = np.array([p[0] for p in points], float)
    t = np.array([p[1] for p in points], float)
    A = np.stack([np.ones_like(n), n], axis=1) / t[:, None]
    (a, inv_b), *_ = np.linalg.lstsq(A, np.ones_like(t), rcond=None)
    a = max(a, 0.0)
    return a, 1.0 / inv_b


def fit_knee(points, lo):
    """alpha and beta up to a knee K, beta_beyond past it (the Link's knee): for each K among
    the measured sizes (at least 4 of them below it and 2 past it), alpha and beta on the
    sizes lo..K (fit_alpha_beta), then beta_beyond on the sizes past K with the line's value at
    K held, both by least squares on relative error; the K whose fit has the least sum of
    squared relative errors over every point. None if there are too few sizes."""
    pts = sorted(p for p in points if p[0] >= lo)
    best = None
    for i in range(3, len(pts) - 2):
        K = pts[i][0]
        a, b = fit_alpha_beta(pts[:i + 1])
        n = np.array([p[0] for p in pts[i + 1:]], float)
        t = np.array([p[1] for p in pts[i + 1:]], float)
        u, r = (n - K) / t, 1 - (a + K / b) / t  # minimise sum (u x - r)^2, x = 1 / beta_beyond
        x = float(u @ r / (u @ u))
        if x <= 0:
            continue
        k = dict(alpha_s=a, beta_Bps=b, knee_bytes=K, beta_beyond_Bps=1.0 / x)
        err = sum((entry_time(k, m) / tm - 1) ** 2 for m, tm in pts)
        if best is None or err < best[0]:
            best = (err, k)
    return best[1] if best else None


def entry_time(e, n):
    """One message of n bytes by a fit entry (a line, or a line with a knee)."""
    return Link("", e["alpha_s"], e["beta_Bps"], knee=e.get("knee_bytes"), beta_beyond=e.get("beta_beyond_Bps")).time(1, n)


def link_of(name, e, eager, sm):
    """The Link of a fit entry (large messages) and its eager entry (small)."""
    return Link(name, e["alpha_s"], e["beta_Bps"], eager, sm["alpha_s"], sm["beta_Bps"], e.get("knee_bytes"),
                e.get("beta_beyond_Bps"))


def model_link_of(fd, name):
    """fit.json's link: its "model_link" names the entries."""
    ml = fd["model_link"]
    return link_of(name, fd[ml["large"]], ml["eager_bytes"], fd[ml["small"]])


def bench_records(paths):
    out = []
    for p in paths:
        with open(p) as f:
            recs = json.load(f)
        for r in recs:
            r["_file"] = os.path.relpath(os.path.abspath(p), HERE)  # e.g. data/halo_np2.json
        out.extend(recs)
    return [r for r in out if r["case"].startswith("wan_")]


def case_shape(r):
    _, C, D, rows, W = r["shape"]
    return C, D, rows - 2, W  # the bench's shape has the two ghost rows


def use_in_place_run(args, bench_paths):
    """Set the model's in-place threshold: --in-place-run-bytes, else the one recorded with the
    measured data (measure.sh's khalo.json), else the source tree's kDefaultInPlaceMinRunBytes."""
    recorded = exchange.data_in_place_run(bench_paths) if bench_paths else None
    v = args.in_place_run_bytes or recorded or exchange.header_in_place_run()
    exchange.set_in_place_run(v)
    src = "--in-place-run-bytes" if args.in_place_run_bytes else ("khalo.json of the data" if recorded else
                                                                  "kDefaultInPlaceMinRunBytes in the tree")
    print(f"in-place threshold: {v} bytes per run ({src})")
    return v


def fit(args):
    pp = load_jsonl(args.pingpong)
    use_in_place_run(args, args.bench)
    res = {"cpu": args.cpu, "source": {"pingpong": os.path.relpath(args.pingpong, HERE),
                                       "bench": [os.path.relpath(b, HERE) for b in args.bench]}}
    # Three fits per mode and statistic: every size (8 B .. 64 MiB, as asked), the eager
    # regime (< 4 KiB), and the single-copy regime from 4 KiB up to --max-bytes (default
    # 2 MiB: every halo message of the validation and of the Wan stage lies in 512 B .. 2 MiB;
    # above 4 MiB this machine's transfers degrade, see README).
    ranges = {"all": (0, 1 << 62), "eager": (0, EAGER - 1), "cma": (EAGER, args.max_bytes)}
    for mode in ("exchange", "pingpong", "exchange_cold"):
        for stat in ("median_s", "p10_s"):
            allpts = [(p["bytes"], p[stat]) for p in pp if p["mode"] == mode]
            if not allpts:  # exchange_cold: measured from 2026-12-03 on (not used by the model: the
                continue    # bound of a link whose bytes come from memory, README.md)
            for rname, (lo, hi) in ranges.items():
                pts = [x for x in allpts if lo <= x[0] <= hi]
                a, b = fit_alpha_beta(pts)
                res[f"{mode}_{stat[:-2]}_{rname}"] = {"alpha_s": a, "beta_Bps": b}
            # The single-copy regime with a knee, over the same sizes as "cma".
            kn = fit_knee([x for x in allpts if x[0] <= args.max_bytes], EAGER)
            if kn:
                res[f"{mode}_{stat[:-2]}_knee"] = kn
            for rname in list(ranges) + ["knee"]:
                e = res.get(f"{mode}_{stat[:-2]}_{rname}")
                if e is None:
                    continue
                lo, hi = ranges["cma" if rname == "knee" else rname]
                pts = [x for x in allpts if lo <= x[0] <= hi]
                e["range_bytes"] = [min(x[0] for x in pts), max(x[0] for x in pts)]
                e["residuals"] = [{"bytes": n, "measured_s": t, "model_s": entry_time(e, n),
                                   "error": entry_time(e, n) / t - 1} for n, t in allpts]
    pst = "p10" if args.stat != "median_s" else "median"
    res["model_link"] = {"large": f"exchange_{pst}_{args.link}", "small": f"exchange_{pst}_eager", "eager_bytes": EAGER}
    link = model_link_of(res, "smp")
    # The copy cost: khalo's packed 2-rank times minus the alpha-beta part, against the (runs,
    # bytes) copied; the datatype cost: the mpi_datatype scheme's 2-rank times (a datatype for
    # every face) minus the latency, against its runs and bytes. khalo's own datatype faces are
    # not fitted on: they check the datatype cost.
    # khalo's fixed overhead per exchange is fitted with its copy cost, on every face it packs or
    # sends in place (those have nothing to copy: they fix the overhead).
    copy_fit = fit_copy(args.bench, args.stat, "khalo", lambda w: (
        w["copy_runs"], w["copy_bytes"], link.time(w["messages"], w["bytes"])) if w["transport"] != "datatype" else None,
        overhead=True)
    fitted_copy = Copy(copy_fit["delta_s_per_run"], copy_fit["gamma_Bps"])
    dt_fit = fit_copy(args.bench, args.stat, "mpi_datatype", lambda w: (
        w["datatype_runs"], w["datatype_bytes"], w["messages"] * link.alpha + fitted_copy.time(w["copy_runs"],
                                                                                              w["copy_bytes"])))
    res["copy"], res["datatype"] = copy_fit, dt_fit
    res["bench_stat"] = args.stat
    res["in_place_run_bytes"] = exchange.IN_PLACE_RUN
    if os.path.exists(args.out):  # keep the sharing fit (fit-sharing) of an earlier run
        with open(args.out) as f:
            old = json.load(f)
        for k in ("sharing", "node"):
            if k in old:
                res[k] = old[k]
    with open(args.out, "w") as f:
        json.dump(res, f, indent=1)
    for k, e in res.items():
        if isinstance(e, dict) and "alpha_s" in e:
            errs = [abs(r["error"]) for r in e["residuals"] if e["range_bytes"][0] <= r["bytes"] <= e["range_bytes"][1]]
            knee = (f", past {e['knee_bytes']} B {e['beta_beyond_Bps'] / 1e9:.2f} GB/s" if "knee_bytes" in e else "")
            print(f"{k:28s} alpha = {e['alpha_s'] * 1e6:7.3f} us, beta = {e['beta_Bps'] / 1e9:7.2f} GB/s{knee}, "
                  f"{e['range_bytes'][0]}..{e['range_bytes'][1]} B: median |error| {np.median(errs) * 100:.0f}%, "
                  f"max {max(errs) * 100:.0f}%")
    for name, c in (("copy", copy_fit), ("datatype", dt_fit)):
        print(f"{name}: delta = {c['delta_s_per_run'] * 1e9:.1f} ns per run, gamma = {c['gamma_Bps'] / 1e9:.2f} GB/s, "
              f"overhead {c['overhead_s'] * 1e6:.2f} us per exchange, "
              f"fitted on {len(c['fitted_on'])} cases, dropped {c['dropped']} -> {args.out}")


def fills_of(r):
    """Whether the record's exchanges filled the open sides (bench_halo's --fill-every-exchange;
    records from before the option always did)."""
    return r.get("fill_every_exchange", True)


def fit_copy(bench_paths, stat, scheme, part, overhead=False, on_node=False, mapped=False):
    """delta (s per run) and gamma (bytes/s) of a Copy, and with `overhead` a fixed time per
    exchange, fitted on the 2-rank records of `scheme`: part(phase_work) gives (runs, bytes, the
    rest of the model's time) for a record, or None to leave it out. Least squares on relative
    error, then once more without the points the first fit misses by more than 50% (a run that
    lost its core to another process for a scheduler tick: this machine is shared; README lists
    them)."""
    rows_A, rhs, used = [], [], []
    for r in bench_records(bench_paths):
        if r["ranks"] != 2 or r["scheme"] != scheme:
            continue
        C, D, rows, W = case_shape(r)
        how = "datatype" if scheme == "mpi_datatype" else "khalo"
        got = part(phase_work(r["layout"], C, D, rows, W, "h", 1, how, fills=fills_of(r), datatypes=True,
                              on_node=on_node, mapped=mapped))
        if got is None or (got[1] == 0 and not overhead):
            continue
        n_runs, n_bytes, other = got
        t = r[stat]
        rows_A.append([n_runs / t, n_bytes / t] + ([1.0 / t] if overhead else []))
        rhs.append((t - other) / t)
        used.append(f'{r["_file"]}:{r["case"]}:{r["layout"]}')
    if not rows_A:
        raise SystemExit(f"no 2-rank {scheme} record to fit a copy cost on")
    A, y = np.array(rows_A), np.array(rhs)
    keep = np.ones(len(y), bool)
    for _ in range(2):
        x = np.linalg.lstsq(A[keep], y[keep], rcond=None)[0]
        if x[0] < 0:  # no per-run cost visible: without it
            cols = [1] + ([2] if overhead else [])
            x = np.zeros(A.shape[1])
            x[cols] = np.linalg.lstsq(A[keep][:, cols], y[keep], rcond=None)[0]
        x = np.maximum(x, 0.0)
        pred = A @ x  # (model - the rest) / t
        rel = (pred + (1 - y)) - 1  # model / measured - 1
        keep = np.abs(rel) <= 0.5
    delta, inv_gamma = x[0], x[1]
    return {"delta_s_per_run": float(delta), "gamma_Bps": float(1.0 / inv_gamma),
            "overhead_s": float(x[2]) if overhead else 0.0,
            "fitted_on": [u for u, k in zip(used, keep) if k], "dropped": [u for u, k in zip(used, keep) if not k]}


def load_fit(path):
    with open(path) as f:
        fd = json.load(f)
    link = model_link_of(fd, "smp (fitted here)")
    copy = Copy(fd["copy"]["delta_s_per_run"], fd["copy"]["gamma_Bps"], fd["copy"].get("overhead_s", 0.0))
    dt = fd.get("datatype")  # absent in fits from before the datatype transport
    return fd, link, copy, (Copy(dt["delta_s_per_run"], dt["gamma_Bps"]) if dt else None)


def load_local_copies(fd):
    """The copy costs (Copy) of khalo's node-local faces that are fitted, by transport: 'shared'
    (fit-node, fit.json["node"]) and 'mapped' (fit-mapped, fit.json["mapped"])."""
    return {how: Copy(fd[key]["delta_s_per_run"], fd[key]["gamma_Bps"])
            for how, key in (("shared", "node"), ("mapped", "mapped")) if key in fd}


def fit_local(args, how, key, what):
    """The copy cost of khalo's node-local faces sent `how` ('shared' or 'mapped'), fitted on the
    2-rank records of args.bench as `fit` fits the copy cost toward MPI: the time minus khalo's
    fixed overhead and the two empty messages, against the runs and bytes copied; into
    fit.json[key]."""
    fd, link, copy, _ = load_fit(args.fit)
    use_in_place_run(args, args.bench)
    local = fit_copy(args.bench, args.stat or fd.get("bench_stat", "q1_s"), "khalo", lambda w: (
        w["copy_runs"], w["copy_bytes"], copy.overhead + w["signal_waits"] * link.time(1, 0))
        if w["transport"] == how else None, on_node=True, mapped=how == "mapped")
    local["source"] = [os.path.relpath(b, HERE) for b in args.bench]
    fd[key] = local
    with open(args.fit, "w") as f:
        json.dump(fd, f, indent=1)
    print(f"{what}: delta = {local['delta_s_per_run'] * 1e9:.1f} ns per run, "
          f"gamma = {local['gamma_Bps'] / 1e9:.2f} GB/s (toward MPI: {copy.gamma / 1e9:.2f}), fitted on "
          f"{len(local['fitted_on'])} cases, dropped {local['dropped']} -> {args.fit}")


def fit_node(args):
    """The copy cost of a face through the node-shared buffer (a streamed pack into it, the
    peer's unpack from it), fitted on the 2-rank records measured with khalo's node-local
    transports on (measure.sh's node2 step). Direct reads are not fitted: the link's
    single-copy bandwidth prices them."""
    fit_local(args, "shared", "node", "node-shared faces")


def fit_mapped(args):
    """The copy cost of a mapped face (the receiver's one copy out of the sender's View in a
    khalo::NodeSharedArena), fitted on the 2-rank records measured with node-shared fields
    (measure.sh's mapped2 step)."""
    fit_local(args, "mapped", "mapped", "mapped faces")


def fit_sharing(args):
    """The two parameters of Sharing (exchange.py), fitted on chain.c's runs with more ranks
    than cores (the median over measure.sh's repeated runs of each point): y on a grid (0, 0.05, .. 1), h by least squares on relative error for each y,
    the pair with the smallest sum of squared relative errors. The link is fit.json's; the
    packed mode's memcpy (one run per face) costs bytes / gamma_memcpy, gamma_memcpy taken from
    the 2-rank chain (packed - raw = 2 copies of b bytes per neighbour), not from bench_halo."""
    fd, link, _, _ = load_fit(args.fit)
    st = args.stat
    runs = {}
    for p in load_jsonl(args.chain):
        runs.setdefault((p["ranks"], p["mode"], p["bytes"]), []).append(p[st])
    pts = [dict(ranks=k[0], mode=k[1], bytes=k[2], runs=len(v), **{st: float(np.median(v))}) for k, v in
           sorted(runs.items())]
    two = {(p["mode"], p["bytes"]): p[st] for p in pts if p["ranks"] == 2}
    g = [2 * b / (two[("packed", b)] - t) for (m, b), t in two.items()
         if m == "raw" and b >= EAGER and ("packed", b) in two and two[("packed", b)] > t]
    memcpy = Copy(0.0, float(np.median(g)))
    fitpts = [p for p in pts if p["ranks"] > args.cores and p["mode"] in args.modes]

    def works(p):
        return chain_works(p["ranks"], p["bytes"], link, memcpy if p["mode"] == "packed" else None)

    best = None
    for y in np.round(np.arange(0.0, 1.0001, 0.05), 2):
        base = np.array([Sharing(args.cores, y, 0.0).time(works(p)) for p in fitpts])
        t = np.array([p[st] for p in fitpts])
        n = np.array([p["ranks"] - args.cores for p in fitpts], float)
        h = max(0.0, float(np.sum((n / t) * (1 - base / t)) / np.sum((n / t) ** 2)))
        sse = float(np.sum(((base + n * h) / t - 1) ** 2))
        if best is None or sse < best[0]:
            best = (sse, float(y), h)
    _, y, h = best
    sh = Sharing(args.cores, y, h)
    rows = []
    for p in pts:
        m = sh.time(works(p)) if p["ranks"] > args.cores else max(works(p))
        rows.append(dict(ranks=p["ranks"], mode=p["mode"], bytes=p["bytes"], runs=p["runs"], measured_s=p[st], model_s=m,
                         error=m / p[st] - 1, in_fit=p in fitpts))
    summary = {}
    for P in sorted({r["ranks"] for r in rows}):
        for mode in ("raw", "packed"):
            e = [abs(r["error"]) for r in rows if r["ranks"] == P and r["mode"] == mode]
            if e:
                summary[f"np{P} {mode}"] = {"cases": len(e), "median_abs_error": float(np.median(e)),
                                            "max_abs_error": float(max(e))}
    with open(args.fit) as f:
        fd = json.load(f)
    fd["sharing"] = {"cores": args.cores, "yield_share": y, "handoff_s": h, "stat": st,
                     "memcpy_gamma_Bps": memcpy.gamma, "fitted_on": os.path.relpath(args.chain, HERE),
                     "modes": args.modes, "rows": rows, "summary": summary}
    with open(args.fit, "w") as f:
        json.dump(fd, f, indent=1)
    print(f"sharing on {args.cores} cores: yield share y = {y:.2f}, hand-off h = {h * 1e6:.2f} us per rank beyond "
          f"the cores (memcpy {memcpy.gamma / 1e9:.1f} GB/s from the 2-rank chain; fitted on {len(fitpts)} points, "
          f"{'+'.join(args.modes)}, {st[:-2]}) -> {args.fit}")
    print("| ranks | mode | KiB | measured ms | model ms | error |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f'| {r["ranks"]} | {r["mode"]} | {r["bytes"] / 1024:.1f} | {r["measured_s"] * 1e3:.3f} | '
              f'{r["model_s"] * 1e3:.3f} | {r["error"] * 100:+.0f}%{" (fit)" if r["in_fit"] else ""} |')
    for k, v in summary.items():
        print(f'{k}: {v["cases"]} sizes, median |error| {v["median_abs_error"] * 100:.0f}%, '
              f'max {v["max_abs_error"] * 100:.0f}%')


def load_sharing(fd, cores, mode):
    """The Sharing the model uses: fitted (fit-sharing), or the ablations: 'busy' (every rank
    keeps its share, y = 1, h = 0) and 'floor' (the former model: max(slowest rank, all ranks'
    work / cores))."""
    if mode == "fitted":
        if "sharing" not in fd:
            raise SystemExit("fit.json has no sharing fit: run halo_model.py fit-sharing first")
        s = fd["sharing"]
        return Sharing(cores, s["yield_share"], s["handoff_s"])
    if mode == "busy":
        return Sharing(cores, 1.0, 0.0)

    class Floor(Sharing):
        def time(self, works):
            return max(max(works), sum(works) / self.cores) if len(works) > self.cores else max(works)
    return Floor(cores)
