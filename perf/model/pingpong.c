/* A tiny MPI ping-pong for the alpha-beta fit of perf/model (2 ranks).
 *   pingpong   rank 0 sends n bytes, rank 1 sends them back; one-way time = round trip / 2
 *   exchange   both ranks MPI_Irecv + MPI_Isend n bytes to each other at once, then
 *              MPI_Waitall (what one side of a halo exchange does); time = slowest rank
 *   exchange_cold  the same, each repetition from and into the next n bytes of two pools of
 *              256 MiB, so that the bytes come from memory, not from a cache (a halo's face is
 *              written by one layer and sent before the next reads it: on a core whose cache is
 *              smaller than the layer's activations it comes from memory). The other two modes
 *              send one buffer again and again, which a core's cache keeps up to about its size.
 * Sizes 8 B .. 64 MiB (powers of 2); per size, repetitions for about budget_s seconds
 * (at least 31, at most 2000) after 3 warm-ups; prints JSON lines: mode, bytes, median,
 * 10th percentile and min seconds, repetitions. The machine is shared: a rank that loses
 * its core for a scheduler tick (~4-50 ms) spoils a repetition, hence the low percentiles.
 *   mpicc -O2 -o pingpong pingpong.c && mpirun -np 2 ./pingpong [budget_s] > pingpong.jsonl
 */
#include <mpi.h>

#include "reps.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank, size;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) fprintf(stderr, "pingpong: run on 2 ranks\n");
    MPI_Finalize();
    return 2;
  }
  const double budget = argc > 1 ? atof(argv[1]) : 0.3;
  const size_t max_bytes = (size_t)64 << 20;
  const size_t pool_bytes = (size_t)256 << 20; /* over any last-level cache of these guests */
  char* spool = malloc(pool_bytes);
  char* rpool = malloc(pool_bytes);
  memset(spool, rank + 1, pool_bytes); /* touched: no page faults while timed */
  memset(rpool, 0, pool_bytes);
  const int max_reps = 2000;
  double* t = malloc(sizeof(double) * max_reps);
  const int peer = 1 - rank;
  static const char* const names[] = {"pingpong", "exchange", "exchange_cold"};
  for (int mode = 0; mode < 3; ++mode) {
    for (size_t n = 8; n <= max_bytes; n *= 2) {
      int reps = 0;
      double start = MPI_Wtime();
      const size_t slots = pool_bytes / (n < 64 ? 64 : n); /* one cache line at least apart */
      for (int it = -3; it < max_reps; ++it) {
        const size_t at = mode == 2 ? (size_t)(it + 3) % slots * (pool_bytes / slots) : 0;
        char* sbuf = spool + at;
        char* rbuf = rpool + at;
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime(), dt;
        if (mode == 0) {
          if (rank == 0) {
            MPI_Send(sbuf, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD);
            MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
          } else {
            MPI_Recv(rbuf, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
            MPI_Send(sbuf, (int)n, MPI_BYTE, peer, 0, MPI_COMM_WORLD);
          }
          dt = (MPI_Wtime() - t0) / 2;
        } else {
          MPI_Request rq[2];
          MPI_Irecv(rbuf, (int)n, MPI_BYTE, peer, 1, MPI_COMM_WORLD, &rq[0]);
          MPI_Isend(sbuf, (int)n, MPI_BYTE, peer, 1, MPI_COMM_WORLD, &rq[1]);
          MPI_Waitall(2, rq, MPI_STATUSES_IGNORE);
          dt = MPI_Wtime() - t0;
        }
        if (keep_slowest(dt, it, t, &reps, start, budget, rank)) break;
      }
      qsort(t, reps, sizeof(double), cmp_double);
      if (rank == 0) {
        printf(
            "{\"mode\": \"%s\", \"bytes\": %zu, \"median_s\": %.9g, \"p10_s\": %.9g, \"min_s\": %.9g, "
            "\"reps\": %d}\n",
            names[mode], n, t[reps / 2], t[reps / 10], t[0], reps);
        fflush(stdout);
      }
    }
  }
  free(t);
  free(spool);
  free(rpool);
  MPI_Finalize();
  return 0;
}
