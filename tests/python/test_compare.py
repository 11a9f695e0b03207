"""khalo.compare (the library's compare_files, not the CLI) against NumPy's own comparison."""

import os
import shutil
import tempfile

import numpy as np
import pytest
from mpi4py import MPI

import khalo

h5py = pytest.importorskip("h5py")
comm = MPI.COMM_WORLD


@pytest.fixture
def shared_dir():
    path = comm.bcast(tempfile.mkdtemp(prefix="khalo-pytest-") if comm.rank == 0 else None)
    yield path
    comm.barrier()
    if comm.rank == 0:
        shutil.rmtree(path)


def write(path, datasets):
    if comm.rank == 0:
        with h5py.File(path, "w") as f:
            for name, data in datasets.items():
                f.create_dataset(name, data=data)
    comm.barrier()


def test_compare_reports_what_numpy_finds(shared_dir):
    shape = (1, 3, 2, 7, 5)
    a = (np.arange(np.prod(shape)).reshape(shape) % 97).astype(np.float32)
    b = a.copy()
    b[0, 1, 0, 3, 2] += 0.5
    b[0, 2, 1, 6, 4] -= 2.0
    pa, pb = os.path.join(shared_dir, "a.h5"), os.path.join(shared_dir, "b.h5")
    write(pa, {"data": a, "same": a})
    write(pb, {"data": b, "same": a})

    result = khalo.compare(pa, pb, comm)
    assert not result.equal and result.first_divergent == "/data"
    by_name = {d.name: d for d in result.datasets}
    data, same = by_name["/data"], by_name["/same"]
    diff = np.abs(a.astype(np.float64) - b)
    assert data.shape == shape and data.dtype == "float32" and data.elements == a.size
    assert data.mismatches == np.count_nonzero(diff)
    assert data.max_abs == diff.max()
    assert data.first_mismatch == tuple(int(i) for i in np.argwhere(diff)[0])
    assert same.equal and same.mismatches == 0 and same.first_mismatch is None

    assert khalo.compare(pa, pb, comm, atol=2.0).equal
    assert not khalo.compare(pa, pb, comm, atol=1.9).equal
    only = khalo.compare(pa, pb, comm, dataset="/same", bitwise=True)
    assert only.equal and [d.name for d in only.datasets] == ["/same"]
