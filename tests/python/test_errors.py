"""Errors come back as Python exceptions on every rank, the same on all of them (no rank hangs)."""

import os
import tempfile

import numpy as np
import pytest
from mpi4py import MPI

import khalo
from oracle import global_array, local_band, same_error_everywhere

comm = MPI.COMM_WORLD
P = comm.size
needs_two = pytest.mark.skipif(P < 2, reason="needs 2 or more ranks")


def raised(call):
    try:
        call()
    except Exception as e:  # noqa: BLE001 - what each rank raised is the point
        return e
    return None


def band(shape, spec, dtype=np.float32):
    dec = khalo.row_decomposition(comm, shape)
    return dec, local_band(dec, spec, global_array(shape, dtype), "C")


def test_a_split_dimension_of_extent_zero_is_a_value_error_everywhere():
    kind, what = same_error_everywhere(comm, raised(lambda: khalo.row_decomposition(comm, (1, 2, 0, 4))))
    assert kind == "ValueError" and "khalo::Decomposition" in what and "extent 0" in what


def test_a_band_thinner_than_reflect_needs_is_a_value_error_everywhere():
    spec = khalo.HaloSpec(1, khalo.Boundary.reflect)
    dec, x = band((1, 2, P, 3), spec)  # one row per rank; reflect at an open side needs two
    kind, what = same_error_everywhere(comm, raised(lambda: khalo.Halo(dec, spec, x)))
    assert kind == "ValueError" and "khalo::" in what


@needs_two
def test_ranks_that_disagree_on_widths_get_the_same_value_error():
    spec = khalo.HaloSpec(1 + comm.rank % 2)
    dec, x = band((1, 2, 4 * P, 3), spec)
    kind, what = same_error_everywhere(comm, raised(lambda: khalo.Halo(dec, spec, x)))
    assert kind == "ValueError" and "disagree" in what


@needs_two
def test_ranks_that_disagree_on_the_dtype_get_the_same_value_error():
    spec = khalo.HaloSpec(1)
    dec, x = band((1, 2, 2 * P, 3), spec, np.float64 if comm.rank == 0 else np.float32)
    kind, what = same_error_everywhere(comm, raised(lambda: khalo.Halo(dec, spec, x)))
    assert kind == "ValueError"


def test_a_bad_array_on_one_rank_is_a_value_error_on_every_rank():
    # Rank 0 alone passes a read-only array: the check is collective, so the others do not wait.
    spec = khalo.HaloSpec(1)
    dec, x = band((1, 2, 2 * P, 3), spec)
    if comm.rank == 0:
        x.flags.writeable = False
    kind, what = same_error_everywhere(comm, raised(lambda: khalo.Halo(dec, spec, x)))
    assert kind == "ValueError" and what == "khalo.Halo: the array is read-only; ghost layers are written in place"


def test_a_missing_file_is_a_khalo_io_error_everywhere():
    missing = os.path.join(tempfile.gettempdir(), "khalo-no-such-file-%d.h5" % os.getpid())
    missing = comm.bcast(missing)
    error = raised(lambda: khalo.compare(missing, missing, comm))
    assert isinstance(error, khalo.IOError) and isinstance(error, OSError), repr(error)
    kind, what = same_error_everywhere(comm, error)
    assert kind == "IOError" and "khalo-no-such-file" in what


def test_a_communicator_must_come_from_mpi4py():
    with pytest.raises(TypeError, match="mpi4py.MPI.Comm"):
        khalo.row_decomposition(42, (2, 2))
