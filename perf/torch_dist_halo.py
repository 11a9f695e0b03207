#!/usr/bin/env python3
"""The seed's halo exchange (torch.distributed over gloo, then torch.cat) beside khalo's, same data.

    mpirun --oversubscribe -np 2 python3 perf/torch_dist_halo.py [--shape 1,384,4,60,104] [--rounds 25]
                                                               [--reps 20] [--seed-rows channels_last|nchw]
                                                               [--quick] [--json FILE]

(khalo's Python module must be importable: PYTHONPATH=<build>/python, docs/python.md §7.)

The global activation (N, C, T, H, W) float32 in channels_last_3d, rows (H) split over the ranks as
khalo.row_decomposition splits them, one ghost row per side, zeros where there is no neighbour.
Row r, channel c, frame t, column x holds a distinct small integer (exact in float32), so that a
ghost row taken from the wrong row, frame or channel shows.

  seed   the seed's approach with its layout fix: every rank holds its band without ghost rows;
         per exchange it copies its first and last rows out (only toward a neighbour that exists),
         sends them to its neighbours and receives theirs with torch.distributed isend/irecv (gloo
         over TCP on this host), then torch.cat([low, band, high], dim=3): a new channels_last_3d
         tensor each time, as PyTorch returns. --seed-rows says in which format the rows travel
         (channels_last, the default: no transpose anywhere; nchw: .contiguous() rows, turned into
         channels_last_3d before the cat). The receive buffers and the zero rows of an open side
         are allocated once (as perf/halo_bench/concat.hpp's seed_fixed does): this favours the seed.
  khalo  khalo.Halo.exchange on the band with its ghost rows (the same values), in place.

Before timing, both results are compared with the rows they must hold (the neighbours' edge rows,
zeros at an open side) and with each other; any difference fails the run on every rank. Each
exchange is timed between MPI barriers (MPI.Wtime around one exchange, the slowest rank's time);
the two schemes run in alternating blocks (order swapped every round, so a change in the shared
machine's speed hits both); reported: median, percentiles, seed / khalo, and for the seed the
slowest rank's time in each of its three parts (edge copies, gloo, cat), measured inside the same
timed calls.
"""

import argparse
import json
import platform
import socket
import sys
import time

import numpy as np
from mpi4py import MPI

try:
    import khalo
except ImportError as e:  # the module lives in a build directory: say where to look
    sys.stderr.write("torch_dist_halo: cannot import khalo (%s); build the target khalo_python and run with "
                     "PYTHONPATH=<build>/python\n" % e)
    sys.exit(2)

import torch  # after khalo, as in bench_python_halo.py
import torch.distributed as dist
from machine_info import cpu_info
from slowest_rank import time_slowest

CL = torch.channels_last_3d
H_DIM = 3


def load_average():
    try:
        with open("/proc/loadavg") as f:
            return [float(v) for v in f.read().split()[:3]]
    except OSError:
        return None


def utc_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def free_port(comm):
    """A TCP port free on this host (rank 0 asks the kernel for one), the same on every rank."""
    port = None
    if comm.rank == 0:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    return comm.bcast(port, root=0)


def global_values(shape, rows):
    """Rows [rows[0], rows[1]) of the global array in channels_last_3d: integers below 2^24 (exact in
    float32), distinct while the array has at most 2^24 elements."""
    n, c, t, h, w = shape
    b, e = rows
    idx = torch.arange(b, e, dtype=torch.int64).reshape(1, 1, 1, e - b, 1) * w
    idx = idx + torch.arange(w, dtype=torch.int64).reshape(1, 1, 1, 1, w)
    idx = idx + torch.arange(t, dtype=torch.int64).reshape(1, 1, t, 1, 1) * (h * w)
    idx = idx + torch.arange(c, dtype=torch.int64).reshape(1, c, 1, 1, 1) * (t * h * w)
    idx = idx + torch.arange(n, dtype=torch.int64).reshape(n, 1, 1, 1, 1) * (c * t * h * w)
    return (idx % (1 << 24)).to(torch.float32).contiguous(memory_format=CL)


# gloo (torch 1.13) sends and receives only tensors contiguous in the default format; a
# channels_last_3d tensor of shape (N, C, T, H, W) is exactly that through this permutation.
TO_NTHWC = (0, 2, 3, 4, 1)


class SeedExchange:
    """The seed's exchange: edge rows out, gloo isend/irecv, torch.cat into a new tensor.

    rows="channels_last": the edge rows are copied out in channels_last_3d and go to gloo through
    their NTHWC view, so every input of torch.cat is in the band's format (concat.hpp's seed_fixed).
    rows="nchw": the edge rows are copied out with .contiguous() (NCDHW, what gloo takes as they
    are) and the received rows turned into channels_last_3d before torch.cat.
    """

    def __init__(self, band, low, high, rows):
        self.band, self.low, self.high, self.rows = band, low, high, rows
        n, c, t, _, w = band.shape
        fmt = CL if rows == "channels_last" else torch.contiguous_format
        # Allocated once: the rows received (or the zeros of an open side).
        self.recv_low = torch.zeros((n, c, t, 1, w)).contiguous(memory_format=fmt)
        self.recv_high = torch.zeros((n, c, t, 1, w)).contiguous(memory_format=fmt)
        self.parts = [0.0, 0.0, 0.0]  # this call's edge copies, gloo, cat (s)

    def wire(self, row):
        return row.permute(*TO_NTHWC) if self.rows == "channels_last" else row

    def edge(self, row):
        return row.contiguous(memory_format=CL) if self.rows == "channels_last" else row.contiguous()

    def __call__(self):
        t0 = MPI.Wtime()
        band = self.band
        sends = []
        if self.low is not None:
            sends.append((self.edge(band[:, :, :, :1, :]), self.low))
        if self.high is not None:
            sends.append((self.edge(band[:, :, :, -1:, :]), self.high))
        t1 = MPI.Wtime()
        reqs = []
        # Tag 1: a row travelling to the higher rank; tag 2: to the lower one.
        if self.low is not None:
            reqs.append(dist.irecv(self.wire(self.recv_low), src=self.low, tag=1))
        if self.high is not None:
            reqs.append(dist.irecv(self.wire(self.recv_high), src=self.high, tag=2))
        for row, peer in sends:
            reqs.append(dist.isend(self.wire(row), dst=peer, tag=2 if peer == self.low else 1))
        for r in reqs:
            r.wait()
        t2 = MPI.Wtime()
        low, high = self.recv_low, self.recv_high
        if self.rows != "channels_last":
            low, high = low.contiguous(memory_format=CL), high.contiguous(memory_format=CL)
        out = torch.cat([low, band, high], dim=H_DIM)
        t3 = MPI.Wtime()
        self.parts = [t1 - t0, t2 - t1, t3 - t2]
        return out


def summary(samples_s):
    a = np.asarray(samples_s) * 1e3
    return {
        "median_ms": float(np.median(a)),
        "p10_ms": float(np.percentile(a, 10)),
        "p25_ms": float(np.percentile(a, 25)),
        "p75_ms": float(np.percentile(a, 75)),
        "p90_ms": float(np.percentile(a, 90)),
        "min_ms": float(a.min()),
        "samples": int(a.size),
    }


def run(args, comm):
    shape = tuple(int(s) for s in args.shape.split(","))
    if len(shape) != 5:
        raise ValueError("--shape takes N,C,T,H,W")
    n, c, t, h, w = shape
    torch.set_num_threads(1)

    dec = khalo.row_decomposition(comm, shape)
    begin, end = dec.owned(H_DIM)
    bands = comm.allgather((begin, end))
    low = next((r for r, (b, e) in enumerate(bands) if e == begin and e > b), None) if begin > 0 else None
    high = next((r for r, (b, e) in enumerate(bands) if b == end and e > b), None) if end < h else None

    port = free_port(comm)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=comm.rank,
                            world_size=comm.size)

    # The same data both ways: the seed's unpadded band, khalo's band with a ghost row each side.
    band = global_values(shape, (begin, end))
    padded = torch.full((n, c, t, end - begin + 2, w), -1.0).contiguous(memory_format=CL)
    padded[:, :, :, 1:-1, :] = band
    halo = khalo.Halo(dec, khalo.HaloSpec(1, khalo.Boundary.zero), padded)
    seed = SeedExchange(band, low, high, args.seed_rows)

    # Correctness first: the rows each side must hold, on every rank, both ways.
    row_shape = (n, c, t, 1, w)
    want_low = global_values(shape, (begin - 1, begin)) if low is not None else torch.zeros(row_shape)
    want_high = global_values(shape, (end, end + 1)) if high is not None else torch.zeros(row_shape)
    want = torch.cat([want_low.contiguous(memory_format=CL), band, want_high.contiguous(memory_format=CL)],
                     dim=H_DIM)
    out = seed()
    halo.exchange(padded)
    problems = []
    if not out.is_contiguous(memory_format=CL):
        problems.append("seed: torch.cat returned strides %s, not channels_last_3d" % (out.stride(),))
    if not padded.is_contiguous(memory_format=CL):
        problems.append("khalo: the tensor is no longer channels_last_3d")
    for name, got in (("seed", out), ("khalo", padded)):
        if tuple(got.shape) != tuple(want.shape):
            problems.append("%s: shape %s, expected %s" % (name, tuple(got.shape), tuple(want.shape)))
            continue
        for side, i in (("low", 0), ("high", -1)):
            if not torch.equal(got[:, :, :, i, :], want[:, :, :, i, :]):
                problems.append("%s: wrong %s ghost row" % (name, side))
        if not torch.equal(got[:, :, :, 1:-1, :], band):
            problems.append("%s: the band's own rows changed" % name)
    if not problems and not torch.equal(out, padded):
        problems.append("seed and khalo differ")
    all_problems = comm.allgather(problems)
    if any(all_problems):
        if comm.rank == 0:
            for r, p in enumerate(all_problems):
                for line in p:
                    sys.stderr.write("torch_dist_halo: FAILED: rank %d: %s\n" % (r, line))
        return 1
    del out

    seed_parts = []  # per timed seed call: the slowest rank's edge copies, gloo, cat

    def timed_seed(reps, keep):
        times = np.empty(reps)
        parts = np.empty((reps, 3))
        for i in range(reps):
            comm.Barrier()
            t0 = MPI.Wtime()
            out = seed()
            times[i] = MPI.Wtime() - t0
            parts[i] = seed.parts
            del out
        comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
        comm.Allreduce(MPI.IN_PLACE, parts, op=MPI.MAX)
        if keep:
            seed_parts.append(parts)
        return times

    def timed_khalo(reps, keep):
        return time_slowest(comm, lambda: halo.exchange(padded), reps)

    schemes = {"seed": timed_seed, "khalo": timed_khalo}
    load_before = load_average()
    started = utc_now()
    for fn in schemes.values():
        fn(args.warmup, False)
    samples = {name: [] for name in schemes}
    order = list(schemes)
    for _ in range(args.rounds):
        for name in order:
            samples[name].append(schemes[name](args.reps, True))
        order.reverse()
    load_after = load_average()

    # The run ends together: rank 0 holds gloo's TCP store.
    comm.Barrier()
    dist.destroy_process_group()

    row_bytes = n * c * t * w * 4
    result = {
        "benchmark": "torch_dist_halo",
        "shape": list(shape),
        "memory_format": "channels_last_3d",
        "seed_rows": args.seed_rows,
        "dtype": "float32",
        "ranks": comm.size,
        "rows_per_rank": [e - b for b, e in bands],
        "message_bytes": row_bytes,
        "rounds": args.rounds,
        "reps_per_block": args.reps,
        "warmup": args.warmup,
        "cpu": cpu_info(),
        "load_average_before": load_before,
        "load_average_after": load_after,
        "started_utc": started,
        "finished_utc": utc_now(),
        "khalo_build": khalo.build_info(),
        "torch": torch.__version__,
        "mpi": MPI.Get_library_version().split(",")[0].strip(),
        "python": platform.python_version(),
        "schemes": {name: summary(np.concatenate(parts)) for name, parts in samples.items()},
    }
    parts = np.concatenate(seed_parts)
    result["seed_parts"] = {name: summary(parts[:, i]) for i, name in enumerate(("edge_copies", "gloo", "cat"))}
    ratio = result["schemes"]["seed"]["median_ms"] / result["schemes"]["khalo"]["median_ms"]
    result["seed_over_khalo"] = ratio
    result["target_ratio"] = 50.0
    result["target_met"] = bool(ratio >= 50.0)

    if comm.rank == 0:
        cpu = result["cpu"]
        print("torch_dist_halo: %d ranks, %s channels_last_3d float32, %d exchanges per scheme; %s (family %s, "
              "model %s); load %s -> %s; %s" % (comm.size, shape, args.rounds * args.reps, cpu["model_name"],
                                              cpu["family"], cpu["model"], load_before, load_after, started))
        print("  %s; torch %s; seed rows %s" % (result["khalo_build"], result["torch"], args.seed_rows))
        for name, r in result["schemes"].items():
            print("  %-6s median %9.4f ms  (p10 %.4f, p90 %.4f)" % (name, r["median_ms"], r["p10_ms"], r["p90_ms"]))
        p = result["seed_parts"]
        print("  seed's parts, medians: edge copies %.4f ms, gloo %.4f ms, cat %.4f ms"
              % (p["edge_copies"]["median_ms"], p["gloo"]["median_ms"], p["cat"]["median_ms"]))
        print("  seed / khalo = %.1f (target >= 50: %s)" % (ratio, "met" if result["target_met"] else "NOT met"))
        if args.json:
            with open(args.json, "w") as f:
                json.dump(result, f, indent=1)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="1,384,4,60,104", help="global N,C,T,H,W")
    parser.add_argument("--rounds", type=int, default=25, help="rounds; each runs a block of both schemes")
    parser.add_argument("--reps", type=int, default=20, help="timed exchanges per scheme and round")
    parser.add_argument("--warmup", type=int, default=10, help="untimed exchanges per scheme first")
    parser.add_argument("--seed-rows", choices=("channels_last", "nchw"), default="channels_last",
                        help="the format of the seed's edge rows on the wire (see SeedExchange)")
    parser.add_argument("--quick", action="store_true", help="a tiny shape, few repetitions (a smoke test)")
    parser.add_argument("--json", help="write the results here (rank 0)")
    args = parser.parse_args()
    if args.quick:
        args.shape, args.rounds, args.reps, args.warmup = "1,8,2,12,16", 2, 5, 2
    comm = MPI.COMM_WORLD
    try:
        return run(args, comm)
    except Exception:  # one rank alone: end the job rather than leave the others in a barrier
        import traceback

        traceback.print_exc()
        sys.stderr.flush()
        comm.Abort(2)


if __name__ == "__main__":
    sys.exit(main())
