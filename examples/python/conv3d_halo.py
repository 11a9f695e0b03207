#!/usr/bin/env python3
"""A PyTorch convolution split over MPI ranks by rows, with its H padding supplied by khalo.

Each rank holds a band of rows of a channels-last activation (N, C, T, H, W), with one ghost row
on each side inside the tensor itself. khalo fills the ghost rows in place from the neighbouring
ranks (zeros on the open outer sides, a convolution's own zero padding), so torch's conv3d pads
only T and W and the ghost rows serve as the H padding. The bands' outputs, gathered on rank 0, equal
one process's conv3d on the whole tensor bit for bit (with PyTorch's native convolution; see
main()).

    mpirun -np 2 python3 examples/python/conv3d_halo.py [--shape 1,96,4,60,104] [--cout 96]

Run from a build tree with PYTHONPATH=<build>/python, or with khalo installed. Exit code 0 when the
outputs are equal, 1 when not, 77 when PyTorch is not installed.
"""

import argparse
import sys

import numpy as np
from mpi4py import MPI

import khalo

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("conv3d_halo: needs PyTorch (Debian: python3-torch)", file=sys.stderr)
    sys.exit(77)  # the test suite's "skipped"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", default="1,96,4,60,104", help="global N,C,T,H,W (default: the Wan decoder's)")
    parser.add_argument("--cout", type=int, default=96, help="output channels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    comm = MPI.COMM_WORLD
    torch.set_num_threads(1)  # one core per rank
    # oneDNN chooses its convolution algorithm by shape: on (1, 96, 4, 60, 104) it takes the whole
    # tensor (padding 1) and a band (padding (1, 0, 1)) down different paths that round differently
    # (1e-5 apart). PyTorch's native convolution sums in the same order for both, so the comparison
    # below is of the halo, not of two algorithms.
    torch.backends.mkldnn.enabled = False
    shape = tuple(int(s) for s in args.shape.split(","))
    n, c, t, h, w = shape

    # Every rank makes the same global activation and weights from the seed; each keeps its rows.
    gen = torch.Generator().manual_seed(args.seed)
    x = torch.randn(shape, generator=gen).to(memory_format=torch.channels_last_3d)
    weight = torch.randn((args.cout, c, 3, 3, 3), generator=gen) / (27 * c) ** 0.5
    bias = torch.randn((args.cout,), generator=gen)

    dec = khalo.row_decomposition(comm, shape)
    begin, end = dec.owned(3)
    band = torch.empty((n, c, t, end - begin + 2, w)).to(memory_format=torch.channels_last_3d)
    band[:, :, :, 1:-1, :] = x[:, :, :, begin:end, :]

    halo = khalo.Halo(dec, khalo.HaloSpec(1, khalo.Boundary.zero), band)
    address = band.data_ptr()
    halo.exchange(band)  # ghost rows filled in place: neighbours' rows inside, zeros outside
    assert band.data_ptr() == address and band.is_contiguous(memory_format=torch.channels_last_3d)

    # Padding in T and W only: the ghost rows are the H padding. Output rows = owned rows.
    y_band = F.conv3d(band, weight, bias, padding=(1, 0, 1))

    bands = comm.gather(np.ascontiguousarray(y_band.numpy()), root=0)
    ok = True
    if comm.rank == 0:
        y_dist = torch.from_numpy(np.concatenate(bands, axis=3))
        y_ref = F.conv3d(x, weight, bias, padding=1)
        ok = torch.equal(y_dist, y_ref.contiguous())
        diff = (y_dist - y_ref).abs().max().item()
        print(
            f"conv3d_halo: {comm.size} rank(s), input {shape} channels_last_3d, output {tuple(y_ref.shape)}: "
            + ("equal bit for bit to one process's conv3d" if ok else f"DIFFERENT (max |diff| {diff:g})")
        )
    return 0 if comm.bcast(ok, root=0) else 1


if __name__ == "__main__":
    sys.exit(main())
