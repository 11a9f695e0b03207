#!/usr/bin/env python3
"""The Python module's exchange time against the same exchange timed in C++ (perf/RESULTS.md, "Python").

    mpirun -np 2 python3 perf/bench_python_halo.py [--shape 1,96,4,60,104] [--rounds 20] [--reps 50]
                                                  [--memory-format channels_last_3d|contiguous]
                                                  [--arena] [--quick] [--json FILE]

One plan, one array: the decoder's activation (N, C, T, H, W) channels_last_3d float32 (or
PyTorch's default, contiguous), rows split over the ranks, one ghost row per side, zero boundary;
with --arena the tensor lies in a khalo.NodeSharedArena, whose faces a neighbour on the node
copies straight out of it (docs/halo.md §7). Three ways to call the same blocking
exchange, each rep timed the same way (barrier; MPI.Wtime around one exchange; the slowest rank's
time):
  cxx    - Halo._time_exchanges: the loop runs in C++ (khalo::Halo::exchange, as a C++ caller does);
  numpy  - halo.exchange(array) from Python on a NumPy array;
  torch  - halo.exchange(tensor) from Python on the torch tensor (through tensor.numpy(), no copy).
The three run in alternating blocks of --reps (rounds interleave, so drift in a shared machine's
speed hits all three alike); reported: median, 10th and 90th percentile, and numpy/cxx, torch/cxx.
Before timing, the ghost rows are checked against the neighbours' rows.
"""

import argparse
import json
import platform
import sys

import numpy as np
from mpi4py import MPI

import khalo
from machine_info import cpu_model
from slowest_rank import time_slowest


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="1,96,4,60,104", help="global N,C,T,H,W")
    parser.add_argument("--rounds", type=int, default=20, help="rounds of the three schemes")
    parser.add_argument("--reps", type=int, default=50, help="timed exchanges per scheme and round")
    parser.add_argument("--warmup", type=int, default=20, help="untimed exchanges per scheme first")
    parser.add_argument("--memory-format", default="channels_last_3d", choices=["channels_last_3d", "contiguous"])
    parser.add_argument("--arena", action="store_true", help="the tensor from a khalo.NodeSharedArena")
    parser.add_argument("--quick", action="store_true", help="a tiny shape, few repetitions (a smoke test)")
    parser.add_argument("--json", help="write the results here (rank 0)")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.rounds, args.reps, args.warmup = "1,8,2,12,16", 2, 5, 2

    import torch  # after khalo and mpi4py: torch is only one of the three callers

    torch.set_num_threads(1)
    comm = MPI.COMM_WORLD
    shape = tuple(int(s) for s in args.shape.split(","))
    n, c, t, h, w = shape
    dec = khalo.row_decomposition(comm, shape)
    begin, end = dec.owned(3)
    local = (n, c, t, end - begin + 2, w)
    if args.arena:
        arena = khalo.NodeSharedArena(4 * int(np.prod(local)) + 64)
        tensor = arena.zeros(local, torch.float32, args.memory_format)
    else:
        fmt = torch.channels_last_3d if args.memory_format == "channels_last_3d" else torch.contiguous_format
        tensor = torch.zeros(local).to(memory_format=fmt)
    values = torch.arange(begin * w, end * w, dtype=torch.float32).reshape(1, 1, 1, end - begin, w)
    tensor[:, :, :, 1:-1, :] = values  # row r of the global array holds r * W ... r * W + W - 1
    array = tensor.numpy()  # the same memory
    halo = khalo.Halo(dec, khalo.HaloSpec(1), tensor)

    # Correctness first: the ghost rows hold the neighbours' edge rows (zeros at the open sides).
    halo.exchange(tensor)
    want_top = (begin - 1) * w + np.arange(w) if begin > 0 else np.zeros(w)
    want_bottom = end * w + np.arange(w) if end < h else np.zeros(w)
    ok = np.array_equal(array[0, 0, 0, 0], want_top) and np.array_equal(array[0, 0, 0, -1], want_bottom)
    if not all(comm.allgather(ok)):
        print("bench_python_halo: FAILED: wrong ghost rows", file=sys.stderr)
        return 1

    def timed_python(x, reps):
        return time_slowest(comm, lambda: halo.exchange(x), reps)

    schemes = {
        "cxx": lambda reps: np.array(halo._time_exchanges(array, reps)),
        "numpy": lambda reps: timed_python(array, reps),
        "torch": lambda reps: timed_python(tensor, reps),
    }
    for run in schemes.values():
        run(args.warmup)
    before = halo.stats
    samples = {name: [] for name in schemes}
    for _ in range(args.rounds):
        for name, run in schemes.items():
            samples[name].append(run(args.reps))

    after = halo.stats
    timed = {k: after[k] - before[k] for k in ("faces_packed", "shared_sends", "mapped_sends", "direct_sends")}
    result = {
        "shape": list(shape),
        "memory_format": args.memory_format,
        "arena": args.arena,
        "sends_while_timed": timed,  # this rank's (rank 0's in the file)
        "dtype": "float32",
        "ranks": comm.size,
        "exchanges_per_scheme": args.rounds * args.reps,
        "cpu": cpu_model(),
        "build": khalo.build_info(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "schemes": {},
    }
    for name, parts in samples.items():
        all_t = np.concatenate(parts) * 1e3
        result["schemes"][name] = {
            "median_ms": float(np.median(all_t)),
            "p10_ms": float(np.percentile(all_t, 10)),
            "p90_ms": float(np.percentile(all_t, 90)),
        }
    cxx = result["schemes"]["cxx"]["median_ms"]
    for name in ("numpy", "torch"):
        result["schemes"][name]["ratio_to_cxx"] = result["schemes"][name]["median_ms"] / cxx
    if comm.rank == 0:
        where = ", in a NodeSharedArena" if args.arena else ""
        print(f"bench_python_halo: {comm.size} ranks, {shape} {args.memory_format} float32{where}, "
              f"{result['exchanges_per_scheme']} exchanges per scheme; {result['cpu']}")
        print(f"  rank 0 while timed: {timed}")
        print(f"  {result['build']}; torch {result['torch']}")
        for name, r in result["schemes"].items():
            ratio = f"  {r['ratio_to_cxx']:.3f}x cxx" if "ratio_to_cxx" in r else ""
            print(f"  {name:6s} median {r['median_ms']:.4f} ms  (p10 {r['p10_ms']:.4f}, p90 {r['p90_ms']:.4f}){ratio}")
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
