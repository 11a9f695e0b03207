"""perf/model predicts khalo's exchange time from how each face travels (in place, MPI derived
datatype or packed). Its rule (perf/model/exchange.py: transport) mirrors the plan's
(detail/halo/transport.hpp) and reads the plan's constants from the header; this checks the two
against the engine's counters on faces that fall on each side of both thresholds, so that a change
to the plan's choice cannot leave the model predicting another transport. The model describes MPI's
transports (ranks on different nodes): the Halo here runs without node-shared memory."""

import os
import sys

import numpy as np
import pytest
from mpi4py import MPI

import khalo
from oracle import assert_all, empty_in_order

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "perf", "model"))
import exchange  # noqa: E402

comm = MPI.COMM_WORLD
P = comm.size

# (layout, C, D, W): Wan-like row faces of one frame row each.
FACES = [
    ("channels_last_3d", 96, 4, 104),  # 4 runs of 39 KiB: in place
    ("channels_last_3d", 48, 2, 104),  # 2 runs of 19.5 KiB, just above the in-place threshold
    ("channels_last_3d", 32, 2, 104),  # 2 runs of 13 KiB, just below it
    ("contiguous", 96, 4, 104),  # 384 runs of 416 B, 156 KiB: a datatype beats a pack
    ("contiguous", 96, 4, 208),  # 384 runs of 832 B, 312 KiB: past the crossover, packed
    ("contiguous", 1, 1, 4096),  # one run of 16 KiB: in place
    ("contiguous", 4, 2, 16),  # 8 runs, 512 B: eager, packed
]
ORDER = {"channels_last_3d": (0, 2, 3, 4, 1), "contiguous": "C"}


def engine_transport(stats):
    if stats["datatype_sends"]:
        return "datatype"
    return "packed" if stats["bytes_packed"] else "in_place"


@pytest.mark.skipif(P < 2, reason="a face needs a neighbour")
@pytest.mark.parametrize("layout,C,D,W", FACES, ids=lambda v: str(v))
def test_model_sends_each_face_as_the_plan(layout, C, D, W):
    rows = 3
    dec = khalo.row_decomposition(comm, (1, C, D, rows * P, W))
    spec = khalo.HaloSpec(1, khalo.Boundary.zero)
    spec.shared_memory = False
    x = empty_in_order((1, C, D, rows + 2, W), np.float32, ORDER[layout])
    x[...] = 0
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    got = engine_transport(halo.stats)
    nbytes, runs, run_bytes = exchange.face(layout, C, D, rows, W, "h")
    want = exchange.transport(runs, run_bytes, nbytes)
    assert_all(comm, got == want, f"{layout} C={C} D={D} W={W}: the plan sends it {got}, the model {want}")


def test_model_reads_the_plans_constants():
    # The model's in-place threshold is the one HaloSpec starts with.
    assert exchange.IN_PLACE_RUN == khalo.HaloSpec(1, khalo.Boundary.zero).in_place_min_run_bytes
