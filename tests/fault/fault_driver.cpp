// A small halo program for the fail-stop and soak tests: it plans one Halo
// and exchanges a channels-last band many times, under khalo::Runtime's
// failure policy. Faults come from outside (the fault tool, kill -9); the
// one thing it does wrong on purpose is --reshape-rank, which changes the
// shapes on one rank only.
//
//   fault_driver [--exchanges N] [--reshape-rank R] [--soak]
//
// --soak checks that N exchanges leave the resident memory and the
// communicator table as they found them and give the same bits every time;
// it prints "soak: ..." and exits 1 when they do not.
#include <khalo/halo.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;

// Resident set size in KiB, from /proc/self/status.
long rss_kib() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

// The Fortran handle of a fresh communicator: it grows when communicators leak.
int comm_table_index() {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_dup(MPI_COMM_WORLD, &c);
  const int index = static_cast<int>(MPI_Comm_c2f(c));
  MPI_Comm_free(&c);
  return index;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  long exchanges = 100;
  int reshape_rank = -1;
  bool soak = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--exchanges") == 0 && i + 1 < argc) {
      exchanges = std::atol(argv[++i]);
    } else if (std::strcmp(argv[i], "--reshape-rank") == 0 && i + 1 < argc) {
      reshape_rank = std::atoi(argv[++i]);
    } else if (std::strcmp(argv[i], "--soak") == 0) {
      soak = true;
    }
  }
  return runtime.guard("fault_driver", [&] {
    const int rank = runtime.world_rank();
    const std::int64_t H = 8 * runtime.world_size();
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 16, 2, H, 24});
    auto e = dec.local_extents();
    e[3] += 2;
    auto x = khalo::allocate<float*****>("driver::x", e, khalo::MemoryFormat::channels_last_3d);
    // Owned rows hold small integers (exact in float); ghosts are filled by the exchange.
    const std::int64_t first = dec.owned(3).begin - 1;
    Kokkos::parallel_for(
        "driver::fill", Kokkos::RangePolicy<Exec>(1, e[3] - 1), KOKKOS_LAMBDA(std::int64_t h) {
          for (int c = 0; c < 16; ++c)
            for (int d = 0; d < 2; ++d)
              for (int w = 0; w < 24; ++w) x(0, c, d, h, w) = static_cast<float>((first + h) * 1000 + c * 24 + w);
        });
    khalo::Halo<Exec> halo(dec, khalo::HaloSpec(1), x);
    halo.exchange(Exec(), x);
    auto reference = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
    // Warm-up done: from here on nothing may grow.
    const long rss_start = rss_kib();
    const int comms_start = comm_table_index();
    long mismatches = 0;
    for (long i = 0; i < exchanges; ++i) {
      if (i == 1 && rank == reshape_rank) {
        // Shapes that change on this rank only: its plan cache misses, the others' hit.
        auto narrower = e;
        narrower[4] -= 1;
        auto y = khalo::allocate<float*****>("driver::y", narrower, khalo::MemoryFormat::channels_last_3d);
        halo.exchange(Exec(), y);
        continue;
      }
      halo.exchange(Exec(), x);
      if (soak && (i % 1000 == 0 || i + 1 == exchanges)) {
        auto now = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
        for (std::size_t k = 0; k < now.span(); ++k) mismatches += now.data()[k] != reference.data()[k];
      }
    }
    const long rss_end = rss_kib();
    const int comms_end = comm_table_index();
    if (soak) {
      long worst_growth = 0;
      const long growth = rss_end - rss_start;
      MPI_Allreduce(&growth, &worst_growth, 1, MPI_LONG, MPI_MAX, MPI_COMM_WORLD);
      long all_mismatches = 0;
      MPI_Allreduce(&mismatches, &all_mismatches, 1, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
      int comm_growth = comms_end - comms_start;
      int worst_comm_growth = 0;
      MPI_Allreduce(&comm_growth, &worst_comm_growth, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
      // A few pages of slack for the allocator's own bookkeeping; a leak per exchange is far more.
      // Under AddressSanitizer freed memory sits in a quarantine of up to 256 MiB, so resident
      // memory says nothing there: only the other checks count.
#if defined(__SANITIZE_ADDRESS__)
      const bool rss_ok = true;
#else
      const bool rss_ok = worst_growth <= 256;
#endif
      const bool ok = rss_ok && all_mismatches == 0 && worst_comm_growth == 0;
      if (rank == 0) {
        std::printf(
            "soak: %ld exchanges on %d ranks: RSS grew by at most %ld KiB (from %ld KiB), communicator "
            "table by %d, %ld mismatching values -> %s\n",
            exchanges, runtime.world_size(), worst_growth, rss_start, worst_comm_growth, all_mismatches,
            ok ? "ok" : "FAILED");
      }
      return ok ? 0 : 1;
    }
    if (rank == 0) std::printf("fault_driver: %ld exchanges done\n", exchanges);
    return 0;
  });
}
