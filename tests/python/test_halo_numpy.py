"""khalo.Halo on NumPy arrays, against the single-rank oracle (oracle.py), at any rank count."""

import numpy as np
import pytest
from mpi4py import MPI

import khalo
from oracle import assert_all, expected_band, global_array, local_band

comm = MPI.COMM_WORLD
P = comm.size

DTYPES = [np.float32, np.float64, np.int32, np.int64]
# C order, Fortran order, channels-last (N D H W C) and a non-dense view (every other element).
ORDERS = ["C", "F", (0, 2, 3, 4, 1), "strided"]
BOUNDARIES = list(khalo.Boundary.__members__.values())


def rows_case(dtype, order, boundary, rows_per_rank=2):
    # An odd number of rows: the bands differ by one (the first ranks get the extra row).
    shape = (2, 3, 2, rows_per_rank * P + 1, 5)
    dec = khalo.row_decomposition(comm, shape, periodic=boundary == khalo.Boundary.periodic)
    spec = khalo.HaloSpec(1, boundary)
    glob = global_array(shape, dtype)
    return dec, spec, glob, local_band(dec, spec, glob, order)


@pytest.mark.parametrize("boundary", BOUNDARIES, ids=lambda b: b.name)
@pytest.mark.parametrize("order", ORDERS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_rows_equal_the_oracle(dtype, order, boundary):
    dec, spec, glob, x = rows_case(dtype, order, boundary)
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob)), "ghost rows equal the oracle")


@pytest.mark.parametrize("order", ["C", "F", "strided"], ids=str)
def test_no_copy_ghosts_land_in_the_callers_memory(order):
    dec, spec, glob, x = rows_case(np.float32, order, khalo.Boundary.replicate)
    address, strides = x.ctypes.data, x.strides
    before = x.copy()
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    assert_all(comm, x.ctypes.data == address and x.strides == strides, "same memory, same strides")
    # Every rank has at least one ghost row to fill (replicate fills open sides too): the caller's
    # array itself changed, exactly where the oracle says.
    want = expected_band(dec, spec, glob)
    assert_all(comm, not np.array_equal(before, x), "the caller's array changed")
    assert_all(comm, np.array_equal(x, want), "ghost rows equal the oracle")
    if order == "strided":
        # The wider array that x views holds the ghost rows: nothing went through a temporary.
        assert_all(comm, np.array_equal(x.base[..., ::2], want), "the viewed array holds the ghost rows")


@pytest.mark.parametrize("rank", [1, 2, 3, 4, 5])
def test_any_rank_widths_and_split_dimension(rank):
    # Split dimension 0, 2 low and 1 high ghost layers; replicate so that open sides are checked too.
    shape = [3 * P + 2] + [3, 2, 4, 2][: rank - 1]
    grid = khalo.ProcessGrid(comm, [P])
    dec = khalo.Decomposition(grid, shape, [0])
    spec = khalo.HaloSpec().set(0, 2, 1, khalo.Boundary.replicate)
    glob = global_array(shape, np.float64)
    x = local_band(dec, spec, glob, "C")
    khalo.Halo(dec, spec, x).exchange(x)
    assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob)), f"rank-{rank} array")


@pytest.mark.parametrize("order", ["C", "F", (0, 2, 3, 1)], ids=str)
def test_two_split_dimensions_fill_edges_and_corners(order):
    # A 2-D grid over H and W, different policies per dimension: corners come from the dimension
    # exchanged last (docs/halo.md §3), which sequential numpy.pad reproduces.
    shape = (1, 2, 3 * P + 1, 7)
    grid = khalo.ProcessGrid(comm, [0, 0])
    dec = khalo.Decomposition(grid, shape, [2, 3])
    spec = khalo.HaloSpec().set(2, 1, 2, khalo.Boundary.reflect).set(3, 2, 1, khalo.Boundary.zero)
    glob = global_array(shape, np.int64)
    x = local_band(dec, spec, glob, order)
    khalo.Halo(dec, spec, x).exchange(x)
    assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob)), "edges and corners")


def test_split_phase_start_then_wait():
    dec, spec, glob, x = rows_case(np.float32, (0, 2, 3, 4, 1), khalo.Boundary.zero)
    halo = khalo.Halo(dec, spec, x)
    pending = halo.start(x)
    assert_all(comm, pending.pending, "in flight")
    with pytest.raises(RuntimeError, match="already in flight"):
        halo.start(x)
    pending.wait()
    assert_all(comm, not pending.pending, "done")
    assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob)), "ghost rows after wait()")
    with pytest.raises(RuntimeError, match="nothing in flight"):
        pending.wait()


def test_the_handle_keeps_the_array_alive():
    dec, spec, glob, x = rows_case(np.float64, "C", khalo.Boundary.periodic)
    halo = khalo.Halo(dec, spec, x)
    base = x  # the same object: only the handle's reference is at stake below
    pending = halo.start(x)
    del x
    pending.wait()
    assert_all(comm, np.array_equal(base, expected_band(dec, spec, glob)), "ghost rows")


def test_repeated_exchanges_allocate_nothing_and_new_values_arrive():
    dec, spec, glob, x = rows_case(np.float32, "C", khalo.Boundary.zero)
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    allocations = halo.stats["allocations"]
    for step in range(1, 4):
        glob_step = glob * (step + 1)
        x[...] = local_band(dec, spec, glob_step, "C")
        halo.exchange(x)
        assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob_step)), f"step {step}")
    assert_all(comm, halo.stats["allocations"] == allocations, "no allocation after the first exchange")


@pytest.mark.parametrize("transport", list(khalo.Transport.__members__.values()), ids=lambda t: t.name)
def test_every_transport_fills_the_same_rows(transport):
    dec, spec, glob, x = rows_case(np.float64, "strided", khalo.Boundary.zero)
    spec.transport = transport
    assert spec.transport == transport
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    assert_all(comm, np.array_equal(x, expected_band(dec, spec, glob)), "ghost rows equal the oracle")
    stats = halo.stats
    neighbours = (dec.grid.coords[0] > 0) + (dec.grid.coords[0] < P - 1)
    if transport == khalo.Transport.datatype:
        # A strided face with one array: described to MPI, never packed.
        assert_all(comm, stats["datatype_sends"] == neighbours and stats["faces_packed"] == 0, "datatype sends")
    if transport == khalo.Transport.pack:
        assert_all(comm, stats["datatype_sends"] == 0 and stats["datatype_recvs"] == 0, "no datatype")


def test_a_second_array_of_the_same_shape_uses_the_plan():
    dec, spec, glob, x = rows_case(np.float32, "F", khalo.Boundary.zero)
    halo = khalo.Halo(dec, spec, x)
    y = local_band(dec, spec, glob * 3, "F")
    halo.exchange(y)
    assert_all(comm, np.array_equal(y, expected_band(dec, spec, glob * 3)), "the other array's ghosts")
    assert_all(comm, np.array_equal(x, local_band(dec, spec, glob, "F")), "the plan's first array untouched")


def test_exchange_refuses_another_dtype_and_copies():
    dec, spec, glob, x = rows_case(np.float32, "C", khalo.Boundary.zero)
    halo = khalo.Halo(dec, spec, x)
    with pytest.raises(ValueError, match="plan was made for float32, got float64"):
        halo.exchange(x.astype(np.float64))
    with pytest.raises(ValueError, match="read-only"):
        ro = x.copy()
        ro.flags.writeable = False
        halo.exchange(ro)
    with pytest.raises(ValueError, match="numpy.ndarray or a torch CPU tensor"):
        halo.exchange(x.tolist())
    with pytest.raises(ValueError, match="stride"):
        halo.exchange(x[:, :, :, ::-1])
