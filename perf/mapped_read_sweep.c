/* What a one-copy exchange of a contiguous Wan face would cost if the receiver could load the
 * sender's face from its own address space: the sender's field in shared memory (a memfd the
 * receiver maps through /proc/<pid>/fd), the receiver copying each run with memcpy straight
 * into its ghost row. Beside it, on the same fields and in the same run: raw MPI (one message
 * of a pre-packed face), a direct read (one process_vm_readv over the face's runs, khalo's
 * direct_read.hpp, here for runs it does not take) and a pack into a node-shared buffer that the
 * neighbour unpacks (khalo's node-shared path with ordinary stores). Every scheme but raw MPI
 * pays khalo's two empty messages per exchange ("ready" before the copy, "read" after it).
 *
 * 2 ranks, a row split of a contiguous (C, D, rows + 2, W) float32 field: each rank's face
 * toward the other is C x D runs of W floats, one row apart per frame. The schemes take turns
 * in every repetition; the time is the slower rank's, the median of kReps after a warm-up. Then
 * each scheme runs once more into a cleared ghost row, which must hold the neighbour's row after
 * it ("WRONG DATA" on the case's line where it does not).
 *   mpirun -np 2 perf/mapped_read_sweep     (built with perf/; no arguments)
 * Exits 2 when the neighbour's memory cannot be mapped or read (another PID namespace, Yama). */
#define _GNU_SOURCE
#include <mpi.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <unistd.h>

enum { kReps = 41, kWarm = 5, kMaxIov = 1024, kSchemes = 4 }; /* raw_mpi, mapped, direct_read, shared_pack */

struct Case {
  const char* name;
  long C, D, rows, W;
};
/* bench_halo's contiguous Wan cases (perf/halo_bench/cases.hpp), rows per rank. */
static const struct Case kCases[] = {
    {"wan_c96_d4_h30_w104", 96, 4, 30, 104},   {"wan_c96_d4_h120_w208", 96, 4, 120, 208},
    {"wan_c96_d6_h60_w416", 96, 6, 60, 416},   {"wan_c192_d6_h60_w104", 192, 6, 60, 104},
    {"wan_c192_d4_h30_w416", 192, 4, 30, 416}, {"wan_c384_d4_h30_w104", 384, 4, 30, 104},
    {"wan_c384_d6_h30_w208", 384, 6, 30, 208},
};

static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

/* Shared memory this process owns, which the neighbour maps read-write. */
static void* shared_alloc(size_t bytes, int* fd) {
  *fd = memfd_create("mapped_read_sweep", 0);
  if (*fd < 0 || ftruncate(*fd, (off_t)bytes) != 0) return NULL;
  void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
  return p == MAP_FAILED ? NULL : p;
}

/* The neighbour's memfd, mapped here; NULL when the kernel refuses. */
static void* map_peer(int pid, int fd, size_t bytes) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/fd/%d", pid, fd);
  FILE* f = fopen(path, "r+");
  if (!f) return NULL;
  void* p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fileno(f), 0);
  fclose(f);
  return p == MAP_FAILED ? NULL : p;
}

static void signal_peer(int peer, int tag) {
  MPI_Sendrecv(NULL, 0, MPI_BYTE, peer, tag, NULL, 0, MPI_BYTE, peer, tag, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

/* The byte at offset b of row h of run i of rank r's field: a different value in every row and
 * run, so that a copy of the wrong row or run is caught. */
static unsigned char pattern(int r, long i, long h, long b) { return (unsigned char)(r * 101 + i * 7 + h * 13 + b); }

/* One exchange of the two ranks' faces, the same on both. */
struct Exchange {
  int peer, peer_pid;
  long runs, run, plane, send_row, ghost_row, peer_send_row;
  size_t pack_at;
  char *mine, *theirs, *sendbuf, *recvbuf;
  size_t face;
  struct iovec *local, *remote;
};

/* Scheme s (0 raw_mpi, 1 mapped, 2 direct_read, 3 shared_pack); 2 when process_vm_readv fails. */
static int exchange(const struct Exchange* x, int s) {
  const long runs = x->runs, run = x->run, plane = x->plane;
  char *ghost = x->mine + x->ghost_row * run, *own = x->mine + x->send_row * run;
  int rc = 0;
  if (s == 0) { /* raw MPI: the face pre-packed, one message each way, unpacked by no one */
    MPI_Sendrecv(x->sendbuf, (int)x->face, MPI_BYTE, x->peer, 1, x->recvbuf, (int)x->face, MPI_BYTE, x->peer, 1,
                 MPI_COMM_WORLD, MPI_STATUS_IGNORE);
  } else if (s == 1) { /* loads from the neighbour's mapped field into the ghost row */
    signal_peer(x->peer, 2);
    const char* from = x->theirs + x->peer_send_row * run;
    for (long i = 0; i < runs; ++i) memcpy(ghost + i * plane, from + i * plane, (size_t)run);
    signal_peer(x->peer, 3);
  } else if (s == 2) { /* process_vm_readv, at most kMaxIov runs per call */
    signal_peer(x->peer, 4);
    for (long i = 0; i < runs && rc == 0; i += kMaxIov) {
      const unsigned long n = (unsigned long)(runs - i < kMaxIov ? runs - i : kMaxIov);
      if (process_vm_readv(x->peer_pid, x->local + i, n, x->remote + i, n, 0) < 0) rc = 2;
    }
    signal_peer(x->peer, 5);
    /* Both ranks learn whether either read failed, so that both stop at the same scheme. */
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  } else { /* pack into this rank's shared buffer, unpack from the neighbour's */
    for (long i = 0; i < runs; ++i) memcpy(x->mine + x->pack_at + i * run, own + i * plane, (size_t)run);
    signal_peer(x->peer, 6);
    for (long i = 0; i < runs; ++i) memcpy(ghost + i * plane, x->theirs + x->pack_at + i * run, (size_t)run);
    signal_peer(x->peer, 7);
  }
  return rc;
}

/* The one-way time of a cache line passed back and forth between the two ranks, in ns. */
static double line_ns(atomic_int* line, int rank) {
  const int trips = 20000;
  if (rank == 0) atomic_store(line, 0);
  MPI_Barrier(MPI_COMM_WORLD);
  const double t0 = MPI_Wtime();
  for (int i = 0; i < trips; ++i) {
    const int want = 2 * i + rank;
    while (atomic_load_explicit(line, memory_order_acquire) != want) {
    }
    atomic_store_explicit(line, want + 1, memory_order_release);
  }
  const double t = (MPI_Wtime() - t0) / (2.0 * trips) * 1e9;
  MPI_Barrier(MPI_COMM_WORLD);
  return t;
}

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  if (size != 2) {
    if (rank == 0) fprintf(stderr, "mapped_read_sweep: run it on 2 ranks\n");
    MPI_Finalize();
    return 1;
  }
  const int peer = 1 - rank;
  int pids[2] = {0, 0}, me = (int)getpid();
  MPI_Allgather(&me, 1, MPI_INT, pids, 1, MPI_INT, MPI_COMM_WORLD);
  if (rank == 0) {
    printf(
        "case | face KiB | runs x bytes | line ns | raw_mpi ms | mapped ms | direct_read ms | shared_pack ms"
        " | mapped / raw\n");
  }
  int rc = 0;
  for (size_t k = 0; k < sizeof kCases / sizeof kCases[0] && rc == 0; ++k) {
    const struct Case c = kCases[k];
    const long runs = c.C * c.D, run = c.W * 4, plane = (c.rows + 2) * run;
    const size_t field_bytes = (size_t)(runs * plane), face = (size_t)(runs * run);
    /* The field, then a cache line for the line time, then the node-shared pack buffer. */
    const size_t line_at = field_bytes, pack_at = field_bytes + 4096, bytes = pack_at + face;
    int fd = -1;
    char* mine = shared_alloc(bytes, &fd);
    int fds[2] = {0, 0};
    MPI_Allgather(&fd, 1, MPI_INT, fds, 1, MPI_INT, MPI_COMM_WORLD);
    char* theirs = mine ? map_peer(pids[peer], fds[peer], bytes) : NULL;
    int ok = theirs != NULL, all = 0;
    MPI_Allreduce(&ok, &all, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (!all) {
      if (rank == 0) fprintf(stderr, "mapped_read_sweep: could not map the neighbour's memory\n");
      rc = 2;
      break;
    }
    for (long i = 0; i < runs; ++i) {
      for (long h = 0; h < c.rows + 2; ++h) {
        for (long b = 0; b < run; ++b) mine[i * plane + h * run + b] = (char)pattern(rank, i, h, b);
      }
    }
    /* Rank 0 sends its last owned row and fills its high ghost row; rank 1 the first and low. */
    const long send_row = rank == 0 ? c.rows : 1, ghost_row = rank == 0 ? c.rows + 1 : 0;
    const long peer_send_row = peer == 0 ? c.rows : 1;
    char* sendbuf = aligned_alloc(4096, face);
    char* recvbuf = aligned_alloc(4096, face);
    struct iovec* local = malloc((size_t)runs * sizeof *local);
    struct iovec* remote = malloc((size_t)runs * sizeof *remote);
    uint64_t bases[2] = {0, 0}, base = (uint64_t)(uintptr_t)mine;
    MPI_Allgather(&base, 1, MPI_UINT64_T, bases, 1, MPI_UINT64_T, MPI_COMM_WORLD);
    for (long i = 0; i < runs; ++i) { /* the neighbour's field at its own address */
      local[i] = (struct iovec){mine + i * plane + ghost_row * run, (size_t)run};
      remote[i] =
          (struct iovec){(void*)(uintptr_t)(bases[peer] + (uint64_t)(i * plane + peer_send_row * run)), (size_t)run};
    }
    for (long i = 0; i < runs; ++i) memcpy(sendbuf + i * run, mine + i * plane + send_row * run, (size_t)run);
    const struct Exchange x = {peer,    pids[peer], runs,   run,     plane,   send_row, ghost_row, peer_send_row,
                               pack_at, mine,       theirs, sendbuf, recvbuf, face,     local,     remote};
    double t[kSchemes][kReps];
    for (int r = -kWarm; r < kReps && rc == 0; ++r) {
      for (int s = 0; s < kSchemes && rc == 0; ++s) {
        MPI_Barrier(MPI_COMM_WORLD);
        const double t0 = MPI_Wtime();
        rc = exchange(&x, s);
        double dt = MPI_Wtime() - t0;
        MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        if (r >= 0) t[s][r] = dt;
      }
    }
    /* Each scheme once more, untimed, into a cleared ghost row (raw MPI: its receive buffer). */
    int wrong[kSchemes] = {0, 0, 0, 0};
    for (int s = 0; s < kSchemes && rc == 0; ++s) {
      for (long i = 0; i < runs; ++i)
        memset(s == 0 ? recvbuf + i * run : mine + i * plane + ghost_row * run, 0, (size_t)run);
      MPI_Barrier(MPI_COMM_WORLD);
      rc = exchange(&x, s);
      for (long i = 0; i < runs; ++i) {
        const unsigned char* got =
            (const unsigned char*)(s == 0 ? recvbuf + i * run : mine + i * plane + ghost_row * run);
        for (long b = 0; b < run; ++b) wrong[s] += got[b] != pattern(peer, i, peer_send_row, b);
      }
    }
    MPI_Allreduce(MPI_IN_PLACE, &rc, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (rc != 0) {
      if (rank == 0) fprintf(stderr, "mapped_read_sweep: process_vm_readv failed\n");
      break;
    }
    MPI_Allreduce(MPI_IN_PLACE, wrong, kSchemes, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    int bad = 0;
    for (int s = 0; s < kSchemes; ++s) bad += wrong[s];
    const double ns = line_ns((atomic_int*)((rank == 0 ? mine : theirs) + line_at), rank); /* rank 0's line */
    if (rank == 0) {
      double med[kSchemes];
      for (int s = 0; s < kSchemes; ++s) {
        qsort(t[s], kReps, sizeof t[s][0], by_value);
        med[s] = t[s][kReps / 2] * 1e3;
      }
      printf("%s | %.0f | %ld x %ld | %.0f | %.4f | %.4f | %.4f | %.4f | %.2f%s\n", c.name, face / 1024.0, runs, run,
             ns, med[0], med[1], med[2], med[3], med[1] / med[0], bad ? " (WRONG DATA)" : "");
      fflush(stdout);
    }
    free(sendbuf);
    free(recvbuf);
    free(local);
    free(remote);
    munmap(theirs, bytes);
    munmap(mine, bytes);
    close(fd);
  }
  MPI_Finalize();
  return rc;
}
