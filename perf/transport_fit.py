#!/usr/bin/env python3
"""Fits the cost model of khalo's transport choice (include/khalo/detail/halo/transport.hpp) to a
`transport_sweep --json` run, and says how often the fitted model picks the faster way.

    /usr/bin/python3 perf/transport_fit.py perf/results/transport.json [--max-face BYTES]

Model (seconds for an exchange of a face of r runs and b bytes; least squares on the medians,
relative error):
  pack      r * pack_run + b * pack_byte
  datatype  r * dt_run + b * dt_byte + max(0, b - dt_pipeline) * dt_beyond
  in_place  r * message + b * in_place_byte     (one MPI message per run)
dt_pipeline is scanned over a grid; the rest is linear.
"""

import argparse
import json

import numpy as np


def lstsq(columns, y):
    a = np.array(columns, dtype=float).T / y[:, None]  # relative error: divide rows by y
    coef, *_ = np.linalg.lstsq(a, np.ones_like(y), rcond=None)
    return coef


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("json")
    p.add_argument("--max-face", type=float, default=800e3, help="fit faces up to this many bytes")
    args = p.parse_args()
    recs = [r for r in json.load(open(args.json)) if r["face_bytes"] <= args.max_face]
    r = np.array([x["runs"] for x in recs], dtype=float)
    b = np.array([x["face_bytes"] for x in recs], dtype=float)
    t = {w: np.array([x[w + "_s"] for x in recs]) for w in ("pack", "datatype", "in_place", "raw")}

    pack = lstsq([r, b], t["pack"])
    best = None
    for pipe in np.arange(64e3, 1024e3, 16e3):
        c = lstsq([r, np.minimum(b, pipe), np.maximum(0.0, b - pipe)], t["datatype"])
        err = np.median(np.abs((c[0] * r + c[1] * np.minimum(b, pipe) + c[2] * np.maximum(0, b - pipe)) / t["datatype"] - 1))
        if best is None or err < best[0]:
            best = (err, pipe, c)
    _, pipe, dt = best
    # In place is eligible for runs of 16 KiB or more only (shorter ones go packed or by
    # datatype, kDefaultInPlaceMinRunBytes): fitted there.
    eligible = np.array([x["run_bytes"] >= 16384 for x in recs])
    inplace = lstsq([r[eligible], b[eligible]], t["in_place"][eligible])

    model = {
        "pack": pack[0] * r + pack[1] * b,
        "datatype": dt[0] * r + dt[1] * np.minimum(b, pipe) + dt[2] * np.maximum(0, b - pipe),
        "in_place": inplace[0] * r + inplace[1] * b,
    }
    print(f"{len(recs)} faces up to {args.max_face / 1e3:.0f} kB from {args.json}")
    print(f"pack:     {pack[0] * 1e9:7.1f} ns/run + {pack[1] * 1e9:.4f} ns/B")
    print(f"datatype: {dt[0] * 1e9:7.1f} ns/run + {dt[1] * 1e9:.4f} ns/B up to {pipe / 1024:.0f} KiB, "
          f"{dt[2] * 1e9:.4f} ns/B beyond")
    print(f"in place: {inplace[0] * 1e9:7.1f} ns/message + {inplace[1] * 1e9:.4f} ns/B")
    for w in model:
        e = np.abs(model[w] / t[w] - 1)
        if w == "in_place":
            e = e[eligible]
        print(f"  {w:9s} error median {np.median(e) * 100:4.0f}%, max {np.max(e) * 100:4.0f}%")
    # The choice: packed or datatype (always possible), in place too where runs >= 16 KiB.
    ways = ["pack", "datatype", "in_place"]
    right, lost = 0, []
    for i in range(len(recs)):
        allowed = ways if recs[i]["run_bytes"] >= 16384 else ways[:2]
        pick = min(allowed, key=lambda w: model[w][i])
        fastest = min(allowed, key=lambda w: t[w][i])
        right += pick == fastest
        lost.append(t[pick][i] / t[fastest][i] - 1)
    print(f"the model picks the fastest way in {right} of {len(recs)} faces; "
          f"time lost by its picks: median {np.median(lost) * 100:.0f}%, max {np.max(lost) * 100:.0f}%")


if __name__ == "__main__":
    main()
