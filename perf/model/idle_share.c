/* Do ranks waiting in MPI take the core of a rank that computes? (perf/model README, "Core
 * sharing".) Rank 0 computes for 0.5 s of CPU time, then sends one double to every other rank;
 * the others wait for it in MPI_Recv. Each rank prints its wall time and CPU time: rank 0's wall
 * time is 0.5 s when the waiting ranks leave it a core, 0.5 x P / cores when they keep their
 * share (busy polling on an oversubscribed node).
 *   mpicc -O2 -o idle_share idle_share.c
 *   mpirun --oversubscribe -np 3 ./idle_share          (Open MPI's default when oversubscribed)
 *   mpirun --oversubscribe --mca mpi_yield_when_idle 0 -np 3 ./idle_share      (no yield)
 */
#include <mpi.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + 1e-9 * t.tv_nsec;
}

static double cpu(void) { return (double)clock() / CLOCKS_PER_SEC; }

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  volatile double x = 0;
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = now(), c0 = cpu();
  if (rank == 0) {
    while (cpu() - c0 < 0.5) {
      for (int i = 0; i < 100000; ++i) x += i * 1e-9;
    }
    double v = x;
    for (int k = 1; k < size; ++k) MPI_Send(&v, 1, MPI_DOUBLE, k, 0, MPI_COMM_WORLD);
  } else {
    double v;
    MPI_Recv(&v, 1, MPI_DOUBLE, 0, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  }
  printf("{\"ranks\": %d, \"rank\": %d, \"wall_s\": %.3f, \"cpu_s\": %.3f}\n", size, rank, now() - t0, cpu() - c0);
  MPI_Finalize();
  return 0;
}
