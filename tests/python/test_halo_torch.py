"""khalo.Halo on PyTorch CPU tensors: in place, in their own memory format (channels-last stays so)."""

import numpy as np
import pytest
from mpi4py import MPI

import khalo
from oracle import SENTINEL, assert_all, expected_band, global_array

torch = pytest.importorskip("torch")

comm = MPI.COMM_WORLD
P = comm.size


def band_tensor(dec, glob, memory_format, dtype=torch.float32):
    """This rank's rows of `glob` with one ghost row on each side (SENTINEL), in `memory_format`."""
    b, e = dec.owned(3)
    n, c, t, _, w = glob.shape
    x = torch.full((n, c, t, e - b + 2, w), SENTINEL, dtype=dtype).to(memory_format=memory_format)
    x[:, :, :, 1:-1, :] = torch.from_numpy(glob[:, :, :, b:e, :])
    return x


def test_channels_last_3d_activation_gets_its_ghost_rows_without_conversion():
    # The decoder's activation: (1, 96, 4, 60, 104), rows split over the ranks (2 in CI's case).
    shape = (1, 96, 4, 60, 104)
    dec = khalo.row_decomposition(comm, shape)
    spec = khalo.HaloSpec(1)
    glob = global_array(shape, np.float32)  # 1 .. 2.4e6: exact in float32
    x = band_tensor(dec, glob, torch.channels_last_3d)
    assert x.is_contiguous(memory_format=torch.channels_last_3d)
    address, strides = x.data_ptr(), x.stride()
    halo = khalo.Halo(dec, spec, x)
    halo.exchange(x)
    assert_all(comm, x.data_ptr() == address and x.stride() == strides, "same memory, same strides")
    assert_all(comm, x.is_contiguous(memory_format=torch.channels_last_3d), "still channels_last_3d")
    assert_all(comm, np.array_equal(x.numpy(), expected_band(dec, spec, glob)), "ghost rows equal the oracle")
    # Nothing was packed where the rows are contiguous runs: the memory format was used as it is.
    if P > 1:
        assert_all(comm, halo.stats["messages"] >= 1, "messages went out")


@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last_3d], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.int32, torch.int64], ids=str)
def test_split_phase_on_tensors(memory_format, dtype):
    shape = (2, 3, 2, 2 * P + 1, 5)
    dec = khalo.row_decomposition(comm, shape)
    spec = khalo.HaloSpec(1, khalo.Boundary.replicate)
    glob = global_array(shape, np.float64)
    x = band_tensor(dec, glob, memory_format, dtype)
    address = x.data_ptr()
    halo = khalo.Halo(dec, spec, x)
    pending = halo.start(x)
    pending.wait()
    assert_all(comm, x.data_ptr() == address, "same memory")
    assert_all(comm, x.is_contiguous(memory_format=memory_format), "same memory format")
    want = expected_band(dec, spec, glob)
    assert_all(comm, np.array_equal(x.double().numpy(), want), "ghost rows equal the oracle")


def test_a_view_of_a_tensor_is_exchanged_in_place():
    # Rows 1 .. H+2 of a taller tensor: the exchange writes into the taller tensor's memory.
    shape = (1, 4, 2, 2 * P + 1, 6)
    dec = khalo.row_decomposition(comm, shape)
    spec = khalo.HaloSpec(1, khalo.Boundary.reflect)
    glob = global_array(shape, np.float32)
    band = band_tensor(dec, glob, torch.channels_last_3d)
    tall = torch.zeros(band.shape[:3] + (band.shape[3] + 2,) + band.shape[4:]).to(memory_format=torch.channels_last_3d)
    view = tall.narrow(3, 1, band.shape[3])
    view.copy_(band)
    khalo.Halo(dec, spec, view).exchange(view)
    assert_all(comm, np.array_equal(tall.numpy()[:, :, :, 1:-1, :], expected_band(dec, spec, glob)), "in the tall one")


def test_tensors_that_cannot_be_written_in_place_are_refused():
    shape = (1, 2, 1, 2 * P, 3)
    dec = khalo.row_decomposition(comm, shape)
    x = band_tensor(dec, global_array(shape, np.float32), torch.channels_last_3d)
    halo = khalo.Halo(dec, khalo.HaloSpec(1), x)
    with pytest.raises(ValueError, match="requires grad"):
        halo.exchange(x.clone().requires_grad_())
    with pytest.raises(ValueError, match="plan was made for float32, got float64"):
        halo.exchange(x.double())
    with pytest.raises(ValueError, match="unsupported dtype"):
        halo.exchange(x.half())
    with pytest.raises(ValueError, match="positive strides"):  # a broadcast view: every row is one row
        halo.exchange(x[:, :, :, :1, :].expand(x.shape))
