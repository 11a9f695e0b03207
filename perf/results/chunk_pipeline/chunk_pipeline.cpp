// One-off trial (perf/RESULTS.md, "Packs unpacked while the next chunk packs"): two processes,
// one per vCPU, exchange the H face of a contiguous (C, D, H + 2, W) float field through a
// node-shared buffer, as khalo's packed shared faces do. "whole": pack the face, publish, wait
// for the neighbour's, unpack it (khalo today). "chunked": publish every K bytes packed, and
// between chunks unpack whatever of the neighbour's face has arrived. Not built by the project:
//   g++ -O3 -march=native -o cp chunk_pipeline.cpp && ./cp C D W H chunk_KiB cold(0/1) reps
// cold = 1 sweeps 64 MiB before each exchange. Files: run1.txt (H = 30, chunks of 16 and 64 KiB,
// cold, 41 exchanges each way), run2.txt (64 KiB, warm and cold, two rounds); each line one rank's
// medians, run under flock /tmp/khalo-cpu.lock nice -n -15.
#include <sched.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {
struct alignas(64) Flag {
  std::atomic<long> v{0};
  char pad[64 - sizeof(std::atomic<long>)];
};
struct Shared {
  Flag packed[2];  // runs of this exchange's face that rank r has packed (monotonic: epoch * runs + done)
  Flag read[2];    // exchanges whose face rank r has unpacked
  Flag go[2];      // barrier
};

void spin_until(const std::atomic<long>& a, long at_least) {
  while (a.load(std::memory_order_acquire) < at_least) __builtin_ia32_pause();
}
}  // namespace

int main(int argc, char** argv) {
  const long C = argc > 1 ? atol(argv[1]) : 384, D = argc > 2 ? atol(argv[2]) : 6, W = argc > 3 ? atol(argv[3]) : 208;
  const long H = argc > 4 ? atol(argv[4]) : 30;
  const long chunk_bytes = (argc > 5 ? atol(argv[5]) : 64) * 1024;
  const int cold = argc > 6 ? atoi(argv[6]) : 1;
  const int reps = argc > 7 ? atoi(argv[7]) : 41;
  const long runs = C * D, run_bytes = W * 4, face = runs * run_bytes;
  const long per_chunk = std::max<long>(1, chunk_bytes / run_bytes);

  auto* sh =
      static_cast<Shared*>(mmap(nullptr, sizeof(Shared), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  new (sh) Shared();
  auto* buf = static_cast<char*>(mmap(nullptr, 2 * face, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0));
  std::memset(buf, 0, 2 * face);

  const pid_t child = fork();
  const int me = child == 0 ? 1 : 0, peer = 1 - me;
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(me, &set);
  sched_setaffinity(0, sizeof(set), &set);

  const long plane = (H + 2) * W;  // floats per (c, d)
  std::vector<float> f(static_cast<size_t>(C * D * plane));
  for (size_t i = 0; i < f.size(); ++i) f[i] = static_cast<float>(me * 1000 + (i % 977));
  std::vector<char> scrub(64 << 20, 1);
  // rank 0 sends its row H (last owned) into rank 1's row 0; rank 1 sends its row 1 into rank 0's row H + 1.
  const long send_row = me == 0 ? H : 1, recv_row = me == 0 ? H + 1 : 0;
  char* out = buf + me * face;
  const char* in = buf + peer * face;
  auto pack = [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) std::memcpy(out + r * run_bytes, f.data() + r * plane + send_row * W, run_bytes);
  };
  auto unpack = [&](long r0, long r1) {
    for (long r = r0; r < r1; ++r) std::memcpy(f.data() + r * plane + recv_row * W, in + r * run_bytes, run_bytes);
  };
  long barrier = 0;
  auto sync = [&] {
    ++barrier;
    sh->go[me].v.store(barrier, std::memory_order_release);
    spin_until(sh->go[peer].v, barrier);
  };

  std::vector<double> t[2];
  long epoch = 0;
  for (int rep = 0; rep < 2 * reps; ++rep) {
    const int mode = rep % 2;  // 0 whole, 1 chunked, alternated
    if (cold) {
      for (size_t i = 0; i < scrub.size(); i += 64) scrub[i]++;
    }
    sync();
    const auto t0 = std::chrono::steady_clock::now();
    // The buffer is free once the neighbour has read the last exchange's face.
    spin_until(sh->read[peer].v, epoch);
    const long base = epoch * runs;
    if (mode == 0) {
      pack(0, runs);
      sh->packed[me].v.store(base + runs, std::memory_order_release);
      spin_until(sh->packed[peer].v, base + runs);
      unpack(0, runs);
    } else {
      long done_out = 0, done_in = 0;
      while (done_out < runs || done_in < runs) {
        if (done_out < runs) {
          const long end = std::min(runs, done_out + per_chunk);
          pack(done_out, end);
          done_out = end;
          sh->packed[me].v.store(base + done_out, std::memory_order_release);
        }
        long avail = sh->packed[peer].v.load(std::memory_order_acquire) - base;
        if (done_out == runs && done_in < runs && avail <= done_in) {
          spin_until(sh->packed[peer].v, base + done_in + 1);
          avail = sh->packed[peer].v.load(std::memory_order_acquire) - base;
        }
        avail = std::min(avail, runs);
        if (avail > done_in) {
          unpack(done_in, avail);
          done_in = avail;
        }
      }
    }
    ++epoch;
    sh->read[me].v.store(epoch, std::memory_order_release);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // check the first value received (run 0), which changes if the face came from the wrong row
    const float want_first = static_cast<float>(peer * 1000 + ((0 * plane + (peer == 0 ? H : 1) * W) % 977));
    if (f[static_cast<size_t>(recv_row * W)] != want_first) {
      std::fprintf(stderr, "rank %d: wrong value\n", me);
      return 1;
    }
    if (rep >= 2) t[mode].push_back(s);
  }
  sync();
  // each rank's exchange time is its own; report the slower rank's median via the parent
  double med[2];
  for (int m = 0; m < 2; ++m) {
    std::sort(t[m].begin(), t[m].end());
    med[m] = t[m][t[m].size() / 2] * 1e6;
  }
  std::printf("rank %d C=%ld D=%ld W=%ld face=%ld KiB chunk=%ld KiB cold=%d: whole %.1f us, chunked %.1f us (%.3f)\n",
              me, C, D, W, face >> 10, chunk_bytes >> 10, cold, med[0], med[1], med[1] / med[0]);
  if (child != 0) waitpid(child, nullptr, 0);
  return 0;
}
