"""The Kokkos rule of docs/python.md §6, in a process of its own (run by ctest python_finalize_np2).

khalo.finalize() (which the atexit hook also runs) completes a pending exchange, releases every
Halo, and finalizes Kokkos; a Halo used afterwards raises RuntimeError instead of touching freed
memory, and the interpreter still exits cleanly with Halos alive in module globals.
"""

import sys

import numpy as np
from mpi4py import MPI

import khalo

comm = MPI.COMM_WORLD
dec = khalo.row_decomposition(comm, (4 * comm.size, 6))
b, e = dec.owned(0)
x = np.full((e - b + 2, 6), -1.0)
x[1:-1] = np.arange(b * 6, e * 6).reshape(e - b, 6)
halo = khalo.Halo(dec, khalo.HaloSpec(1, khalo.Boundary.replicate), x)
pending = halo.start(x)
khalo.finalize()

failures = []
if pending.pending:
    failures.append("the exchange is still pending after finalize()")
# finalize() completed it: the replicate boundary filled the first rank's top ghost row.
if comm.rank == 0 and not np.array_equal(x[0], x[1]):
    failures.append("the pending exchange was not completed")
for name, call in [
    ("exchange", lambda: halo.exchange(x)),
    ("start", lambda: halo.start(x)),
    ("stats", lambda: halo.stats),
    ("Halo()", lambda: khalo.Halo(dec, khalo.HaloSpec(1), x)),
]:
    try:
        call()
        failures.append(f"{name} after finalize() raised nothing")
    except RuntimeError as error:
        if "finalized" not in str(error):
            failures.append(f"{name}: {error}")
khalo.finalize()  # idempotent

if failures:
    print(f"rank {comm.rank}: " + "; ".join(failures), file=sys.stderr)
    sys.exit(1)
if comm.rank == 0:
    print("finalize_check: OK")
