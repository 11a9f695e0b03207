/* The core-sharing fit of perf/model: P ranks in a line (a row split), each exchanging n bytes
 * with each neighbour at once, as one phase of a halo exchange does, on any number of ranks.
 * Run it with more ranks than cores to see what sharing the cores costs; halo_model.py
 * `fit-sharing` fits the scheduler's hand-off wait on it (README.md, "Core sharing").
 *   raw      MPI_Irecv + MPI_Isend of n bytes per neighbour, MPI_Waitall (pre-packed buffers)
 *   packed   the same with a memcpy of the face into the send buffer before (pack) and out of
 *            the receive buffer after (unpack): the CPU work khalo adds to a packed face
 * Each repetition: MPI_Barrier, the exchange timed on every rank, the slowest rank's time kept
 * (bench_halo's way). Sizes: argv[2..] (bytes per neighbour; default: bench_halo's Wan message
 * sizes); per size and mode, repetitions for about budget_s seconds (at least 31, at most 2000)
 * after 3 warm-ups. Prints JSON lines: ranks, mode, bytes, q1, median, p10, min seconds, reps.
 *   mpicc -O2 -o chain chain.c && mpirun --oversubscribe -np P ./chain [budget_s [bytes ...]]
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
  const double budget = argc > 1 ? atof(argv[1]) : 0.3;
  /* bench_halo's Wan message sizes (C x D x W x 4 bytes) and its quick case */
  static const size_t wan[] = {512, 159744, 319488, 479232, 638976, 958464, 1277952, 1916928};
  size_t nsizes = sizeof wan / sizeof wan[0];
  size_t* sizes = malloc(sizeof(size_t) * (argc > 2 ? (size_t)(argc - 2) : nsizes));
  if (argc > 2) {
    nsizes = (size_t)(argc - 2);
    for (size_t i = 0; i < nsizes; ++i) sizes[i] = (size_t)atoll(argv[i + 2]);
  } else {
    memcpy(sizes, wan, sizeof wan);
  }
  size_t max_bytes = 0;
  for (size_t i = 0; i < nsizes; ++i) max_bytes = sizes[i] > max_bytes ? sizes[i] : max_bytes;
  const int lo = rank > 0 ? rank - 1 : MPI_PROC_NULL, hi = rank < size - 1 ? rank + 1 : MPI_PROC_NULL;
  const int peers[2] = {lo, hi};
  char *field[2], *sbuf[2], *rbuf[2];
  for (int s = 0; s < 2; ++s) {
    field[s] = malloc(max_bytes);
    sbuf[s] = malloc(max_bytes);
    rbuf[s] = malloc(max_bytes);
    memset(field[s], rank + 1, max_bytes);
    memset(sbuf[s], rank + 1, max_bytes);
    memset(rbuf[s], 0, max_bytes);
  }
  const int max_reps = 2000;
  double* t = malloc(sizeof(double) * max_reps);
  for (int mode = 0; mode < 2; ++mode) {
    for (size_t i = 0; i < nsizes; ++i) {
      const size_t n = sizes[i];
      int reps = 0;
      double start = MPI_Wtime();
      for (int it = -3; it < max_reps; ++it) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t0 = MPI_Wtime();
        MPI_Request rq[4];
        int nrq = 0;
        for (int s = 0; s < 2; ++s) {
          if (peers[s] == MPI_PROC_NULL) continue;
          MPI_Irecv(rbuf[s], (int)n, MPI_BYTE, peers[s], 1 - s, MPI_COMM_WORLD, &rq[nrq++]);
        }
        for (int s = 0; s < 2; ++s) {
          if (peers[s] == MPI_PROC_NULL) continue;
          if (mode == 1) memcpy(sbuf[s], field[s], n);
          MPI_Isend(sbuf[s], (int)n, MPI_BYTE, peers[s], s, MPI_COMM_WORLD, &rq[nrq++]);
        }
        MPI_Waitall(nrq, rq, MPI_STATUSES_IGNORE);
        if (mode == 1) {
          for (int s = 0; s < 2; ++s) {
            if (peers[s] != MPI_PROC_NULL) memcpy(field[s], rbuf[s], n);
          }
        }
        if (keep_slowest(MPI_Wtime() - t0, it, t, &reps, start, budget, rank)) break;
      }
      qsort(t, reps, sizeof(double), cmp_double);
      if (rank == 0) {
        printf(
            "{\"ranks\": %d, \"mode\": \"%s\", \"bytes\": %zu, \"q1_s\": %.9g, \"median_s\": %.9g, "
            "\"p10_s\": %.9g, \"min_s\": %.9g, \"reps\": %d}\n",
            size, mode == 0 ? "raw" : "packed", n, t[reps / 4], t[reps / 2], t[reps / 10], t[0], reps);
        fflush(stdout);
      }
    }
  }
  free(t);
  for (int s = 0; s < 2; ++s) {
    free(field[s]);
    free(sbuf[s]);
    free(rbuf[s]);
  }
  free(sizes);
  MPI_Finalize();
  return 0;
}
