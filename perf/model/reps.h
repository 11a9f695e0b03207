/* The repetition bookkeeping of pingpong.c and chain.c: keep the slowest rank's time of each
 * timed repetition, stop together once there are enough, and sort for the quantiles. */
#pragma once
#include <mpi.h>
#include <stdlib.h>

static int cmp_double(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Stores the slowest rank's dt in t[*reps] unless it < 0 (warm-up). Returns nonzero, on every
 * rank alike, once rank 0 has at least 31 repetitions and `budget` seconds have passed since
 * `start`. */
static int keep_slowest(double dt, int it, double* t, int* reps, double start, double budget, int rank) {
  double slowest;
  MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  if (it >= 0) t[(*reps)++] = slowest;
  int stop = 0;
  if (rank == 0) stop = *reps >= 31 && MPI_Wtime() - start > budget;
  MPI_Bcast(&stop, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return stop;
}
