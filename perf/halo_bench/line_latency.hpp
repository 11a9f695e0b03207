#pragma once
// How far apart the cores of ranks 0 and 1 are: the one-way time of a cache line passed back
// and forth between them through MPI-3 node-shared memory. Tens of ns where the two share a
// cache (one core complex), hundreds where they do not: a pack that writes lines its
// neighbour's unpack just read costs a fabric round trip per line in the second case
// (perf/RESULTS.md, "Streaming packs"). On a VM the placement may change between cases, so
// each case measures it.

#include "geometry.hpp"  // BENCH_MPI

#include <mpi.h>

#include <atomic>
#include <new>

#include <sched.h>

/// The one-way line latency between world ranks 0 and 1 in ns, on every rank of \p comm;
/// -1 when they are not on one node. Collective.
inline double line_latency_ns(MPI_Comm comm, int round_trips = 20000) {
  int me = 0, size = 0;
  BENCH_MPI(MPI_Comm_rank(comm, &me));
  BENCH_MPI(MPI_Comm_size(comm, &size));
  MPI_Comm node = MPI_COMM_NULL;
  BENCH_MPI(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  int node_me = 0;
  BENCH_MPI(MPI_Comm_rank(node, &node_me));
  // Ranks 0 and 1 take part when both are node ranks 0 and 1 of one node.
  int pair = (me < 2 && node_me == me) ? 1 : 0;
  int both = 0;
  BENCH_MPI(MPI_Allreduce(&pair, &both, 1, MPI_INT, MPI_SUM, comm));
  double ns = -1;
  if (size >= 2 && both == 2) {
    MPI_Win win = MPI_WIN_NULL;
    void* base = nullptr;
    BENCH_MPI(MPI_Win_allocate_shared(node_me == 0 ? 256 : 0, 1, MPI_INFO_NULL, node, &base, &win));
    MPI_Aint bytes = 0;
    int unit = 0;
    BENCH_MPI(MPI_Win_shared_query(win, 0, &bytes, &unit, &base));
    auto* line = static_cast<std::atomic<int>*>(base);
    if (node_me == 0) new (line) std::atomic<int>(0);
    BENCH_MPI(MPI_Barrier(node));
    // Spinning yields now and then, for ranks that share a core (oversubscribed runs); rank 0
    // stops after round_trips or 50 ms, whichever comes first, and tells rank 1 with -1.
    auto wait_for = [&](int want) {
      for (int spins = 1;; ++spins) {
        const int v = line->load(std::memory_order_acquire);
        if (v == want || v == -1) return v;
        if (spins % 1024 == 0) sched_yield();
      }
    };
    if (me == 0) {
      const double t0 = MPI_Wtime();
      int done = 0;
      while (done < round_trips && (done % 64 != 0 || MPI_Wtime() - t0 < 0.05)) {
        line->store(2 * done + 1, std::memory_order_release);
        wait_for(2 * done + 2);
        ++done;
      }
      ns = (MPI_Wtime() - t0) / (2.0 * done) * 1e9;
      line->store(-1, std::memory_order_release);
    } else if (me == 1) {
      for (int i = 0; wait_for(2 * i + 1) != -1; ++i) line->store(2 * i + 2, std::memory_order_release);
    }
    BENCH_MPI(MPI_Barrier(node));
    BENCH_MPI(MPI_Win_free(&win));
  }
  BENCH_MPI(MPI_Comm_free(&node));
  BENCH_MPI(MPI_Bcast(&ns, 1, MPI_DOUBLE, 0, comm));
  return ns;
}
