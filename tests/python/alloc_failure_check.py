"""An allocation that fails on one rank while a plan is built (docs/python.md §5), in a process of
its own (run by ctest python_alloc_failure_np2 with the fault tool of tests/fault as argv[1]).

The last rank's halo send buffer cannot be allocated; khalo.Halo() must raise the same
RuntimeError, naming that rank, on every rank, and no rank may wait for another. Kokkos reads
the tool's variables when it starts, so they are set before khalo is imported.
"""

import os
import sys

os.environ.update(
    {
        "KOKKOS_PROFILE_LIBRARY": sys.argv[1],  # Kokkos 3
        "KOKKOS_TOOLS_LIBS": sys.argv[1],  # Kokkos 4
        "KHALO_SHARED_MEMORY": "0",  # so that the send buffer is an ordinary allocation
        "KHALO_FAULT_ALLOC": "khalo::send",
    }
)

import numpy as np  # noqa: E402
from mpi4py import MPI  # noqa: E402

comm = MPI.COMM_WORLD
last = comm.size - 1
os.environ["KHALO_FAULT_RANK"] = str(last)

import khalo  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from oracle import global_array, local_band, same_error_everywhere  # noqa: E402

# Rows of a (1, C, H, W) array: each face is C runs of W elements, packed into a send buffer.
shape = (1, 3, 4 * comm.size, 5)
spec = khalo.HaloSpec(1)
dec = khalo.row_decomposition(comm, shape)
x = local_band(dec, spec, global_array(shape, np.float32), "C")
try:
    khalo.Halo(dec, spec, x)
    error = None
except Exception as raised:  # noqa: BLE001 - what each rank raised is the point
    error = raised
kind, what = same_error_everywhere(comm, error)
want = f"rank {last} could not allocate its halo buffers: out of memory"
if kind != "RuntimeError" or want not in what:
    print(f"rank {comm.rank}: expected RuntimeError with '{want}', got {kind}: {what}", file=sys.stderr)
    sys.exit(1)
if comm.rank == 0:
    print("alloc_failure_check: OK")
