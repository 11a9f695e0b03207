/* The measurement behind kDirectMinRunBytes (include/khalo/detail/halo/direct_read.hpp): what one
 * process_vm_readv costs for a face of 256 KiB cut into runs of 512 B .. 64 KiB, the runs 64 KiB
 * apart as the rows of a face are, against copying the same runs into a buffer and out again
 * (a pack and an unpack, in one process and cache-hot: a floor for the node-shared path).
 * A child process holds the source; the parent reads it. Median of 101 reads per size.
 *   perf/direct_read_sweep            (built with perf/, no arguments)
 * Exits 2 when the kernel refuses the read (Yama ptrace scope, seccomp, another PID namespace). */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

enum { kReps = 101, kMaxIov = 1024 };
static const size_t kFace = 256 * 1024, kStride = 64 * 1024, kMinRun = 512;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int by_value(const void* a, const void* b) {
  const double x = *(const double*)a, y = *(const double*)b;
  return (x > y) - (x < y);
}

static double median(double* t) {
  qsort(t, kReps, sizeof *t, by_value);
  return t[kReps / 2];
}

int main(void) {
  const size_t max_runs = kFace / kMinRun, span = max_runs * kStride;
  char* src = aligned_alloc(4096, span);
  char* dst = aligned_alloc(4096, span);
  char* buf = aligned_alloc(4096, kFace);
  struct iovec* local = malloc(max_runs * sizeof *local);
  struct iovec* remote = malloc(max_runs * sizeof *remote);
  int fd[2];
  if (!src || !dst || !buf || !local || !remote || pipe(fd) != 0) return 1;
  memset(src, 1, span);
  memset(dst, 0, span);
  const pid_t child = fork();
  if (child < 0) return 1;
  if (child == 0) { /* holds src until the parent is done */
    const uint64_t at = (uint64_t)(uintptr_t)src;
    if (write(fd[1], &at, sizeof at) != (ssize_t)sizeof at) return 1;
    pause();
    return 0;
  }
  uint64_t remote_src = 0;
  int rc = read(fd[0], &remote_src, sizeof remote_src) == (ssize_t)sizeof remote_src ? 0 : 1;
  printf("run bytes | runs | direct read us | pack + unpack us (one process)\n");
  for (size_t s = kMinRun; rc == 0 && s <= 64 * 1024; s *= 2) {
    const size_t runs = kFace / s;
    double direct[kReps], copies[kReps];
    for (size_t i = 0; i < runs; ++i) {
      local[i] = (struct iovec){dst + i * kStride, s};
      remote[i] = (struct iovec){(void*)(uintptr_t)(remote_src + i * kStride), s};
    }
    for (int k = 0; k < kReps && rc == 0; ++k) {
      const double t0 = now();
      for (size_t i = 0; i < runs; i += kMaxIov) {
        const unsigned long n = runs - i < kMaxIov ? runs - i : kMaxIov;
        if (process_vm_readv(child, local + i, n, remote + i, n, 0) < 0) {
          perror("direct_read_sweep: process_vm_readv");
          rc = 2;
          break;
        }
      }
      const double t1 = now();
      for (size_t i = 0; i < runs; ++i) memcpy(buf + i * s, src + i * kStride, s);
      for (size_t i = 0; i < runs; ++i) memcpy(dst + i * kStride, buf + i * s, s);
      direct[k] = t1 - t0;
      copies[k] = now() - t1;
    }
    if (rc == 0) printf("%9zu | %4zu | %14.1f | %.1f\n", s, runs, median(direct) * 1e6, median(copies) * 1e6);
  }
  kill(child, SIGTERM);
  waitpid(child, NULL, 0);
  return rc;
}
