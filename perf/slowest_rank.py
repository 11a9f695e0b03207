"""How the Python benchmarks time an MPI operation: each repetition between barriers, and the
slowest rank's time of each (imported by the scripts beside it)."""

import numpy as np
from mpi4py import MPI


def time_slowest(comm, run, reps):
    """Seconds of `reps` calls of run(), each started together after a barrier: per call, the
    slowest rank's time (every rank gets the same array)."""
    times = np.empty(reps)
    for i in range(reps):
        comm.Barrier()
        t0 = MPI.Wtime()
        run()
        times[i] = MPI.Wtime() - t0
    comm.Allreduce(MPI.IN_PLACE, times, op=MPI.MAX)
    return times
