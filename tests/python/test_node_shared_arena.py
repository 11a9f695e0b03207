"""khalo.NodeSharedArena: zeroed arrays and tensors in node-shared memory, in the memory format asked
for, whose faces a neighbour on the node copies straight out of them (docs/halo.md §7)."""

import gc

import numpy as np
import pytest
from mpi4py import MPI

import khalo
from oracle import SENTINEL, assert_all, expected_band, global_array

comm = MPI.COMM_WORLD
P = comm.size


def dense_strides(shape, order, itemsize):
    """Strides in bytes of a dense array whose dimensions are stored in `order` (slowest first)."""
    strides, step = [0] * len(shape), itemsize
    for d in reversed(order):
        strides[d] = step
        step *= shape[d]
    return tuple(strides)


@pytest.mark.parametrize(
    "memory_format, order",
    [("contiguous", (0, 1, 2, 3, 4)), ("channels_last_3d", (0, 2, 3, 4, 1)), ("column_major", (4, 3, 2, 1, 0))],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32, np.int64], ids=lambda t: t.__name__)
def test_arrays_are_zeroed_aligned_and_in_their_format(memory_format, order, dtype):
    arena = khalo.NodeSharedArena(1 << 20)
    shape = (1, 5, 3, 7, 11)
    first = arena.zeros((3,), np.int8)  # leaves the arena's next offset unaligned
    x = arena.zeros(shape, dtype, memory_format)
    assert isinstance(x, np.ndarray) and x.dtype == dtype and x.shape == shape
    assert x.strides == dense_strides(shape, order, np.dtype(dtype).itemsize)
    assert x.ctypes.data % 64 == 0 and first.ctypes.data % 64 == 0
    assert not x.any()
    assert arena.used >= x.nbytes + 64 and arena.capacity >= 1 << 20


def test_an_array_keeps_its_arena_alive_and_owns_its_own_memory():
    arena = khalo.NodeSharedArena(1 << 16)
    a, b = arena.zeros((100,), np.float64), arena.zeros((100,), np.float64)
    del arena
    gc.collect()
    a[:] = 1.5
    b[:] = 2.5  # separate memory: a keeps its values
    assert (a == 1.5).all() and (b == 2.5).all()


def test_bad_requests_raise_value_error():
    arena = khalo.NodeSharedArena(4096)
    with pytest.raises(ValueError, match="left"):
        arena.zeros((4096,), np.float32)  # 16 KiB asked of 4 KiB
    with pytest.raises(ValueError, match="channels_last"):
        arena.zeros((2, 3, 4), np.float32, "channels_last")  # rank 4 only
    with pytest.raises(ValueError, match="unknown memory format"):
        arena.zeros((2, 3), np.float32, "rows")
    with pytest.raises(ValueError, match="negative"):
        arena.zeros((2, -3), np.float32)
    with pytest.raises(ValueError, match="larger than any arena"):
        arena.zeros((1 << 40, 1 << 40), np.float32)  # 2^82 bytes: no wrap to a small request
    assert arena.used == 0  # nothing handed out by a refused request


@pytest.mark.parametrize("memory_format", ["contiguous", "channels_last_3d"])
def test_torch_tensors_from_the_arena_exchange_by_one_copy(memory_format):
    torch = pytest.importorskip("torch")
    # A band of rows per rank whose rows are short runs (16 x 63 floats of a contiguous tensor):
    # outside an arena they go through the node-shared buffer, packed; here the neighbour copies
    # them out of the tensor itself.
    shape = (1, 16, 3, 8 * P, 63)
    dec = khalo.row_decomposition(comm, shape)
    spec = khalo.HaloSpec(1)
    glob = global_array(shape, np.float32)
    b, e = dec.owned(3)
    arena = khalo.NodeSharedArena(4 << 20)
    x = arena.zeros((1, 16, 3, e - b + 2, 63), torch.float32, memory_format)
    fmt = torch.contiguous_format if memory_format == "contiguous" else torch.channels_last_3d
    assert isinstance(x, torch.Tensor) and x.dtype == torch.float32 and x.is_contiguous(memory_format=fmt)
    x.fill_(SENTINEL)
    x[:, :, :, 1:-1, :] = torch.from_numpy(glob[:, :, :, b:e, :])
    halo = khalo.Halo(dec, spec, x)
    for _ in range(3):
        halo.exchange(x)
    assert_all(comm, np.array_equal(x.numpy(), expected_band(dec, spec, glob)), "ghost rows equal the oracle")
    neighbours = (b > 0) + (e < shape[3])
    assert_all(comm, halo.stats["mapped_sends"] == 3 * neighbours, "every face copied out of the neighbour's tensor")
    assert_all(comm, halo.stats["bytes_packed"] == 0, "nothing packed")
