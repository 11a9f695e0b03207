// The halo exchange on the default execution space's memory (device memory on a GPU build,
// host memory elsewhere): khalo's blocking exchange and its split phase (start, then wait
// with nothing in between) on the decoder's activations, one ghost row along H, N = 1, per
// memory format. bench_halo compares khalo with other schemes on host memory; this one times
// khalo where the decoder's tensors live. On a GPU the faces go through host buffers unless
// KHALO_GPU_AWARE_MPI=1 (or the MPI library reports CUDA support): run it both ways.
// Time = the slowest rank's time for one exchange, median over repetitions after warm-up;
// GB/s = the ghost bytes a rank receives / time. Every exchange's ghost rows are checked once
// per case against the values they must hold (a function of the global index); a wrong halo
// fails the run (exit 1).
//   mpirun -np P bench_halo_device [--quick] [--reps R] [--json FILE]
#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

#include "bench_common.hpp"

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using View = Kokkos::View<float*****, Kokkos::LayoutStride, Mem>;
using Json = nlohmann::json;

/// The value of owned element (c, t, h, w) at global row h: exact in float for these shapes.
KOKKOS_INLINE_FUNCTION float value_at(std::int64_t c, std::int64_t t, std::int64_t h, std::int64_t w) {
  return static_cast<float>(((c * 7 + t) * 1031 + h) * 3 + w % 3);
}

Json run_case(const std::array<std::int64_t, 4>& shape, khalo::MemoryFormat format, int reps, MPI_Comm world) {
  // Plain variables: lambdas cannot capture structured bindings in C++17.
  const std::int64_t C = shape[0], D = shape[1], H = shape[2], W = shape[3];
  const khalo::ProcessGrid grid(world, {0});
  const std::int64_t ranks = grid.dims()[0];
  const khalo::Decomposition dec(grid, {1, C, D, H * ranks, W}, {3});
  const std::int64_t first = dec.owned(3).begin;
  auto v = khalo::allocate<float*****, Mem>("halo_device", {1, C, D, H + 2, W}, format);
  const Exec exec;
  // Owned rows from their global index, ghost rows a sentinel.
  Kokkos::parallel_for(
      "bench_halo_device::fill", Kokkos::MDRangePolicy<Exec, Kokkos::Rank<4>>(exec, {0, 0, 0, 0}, {C, D, H + 2, W}),
      KOKKOS_LAMBDA(const std::int64_t c, const std::int64_t t, const std::int64_t h, const std::int64_t w) {
        v(0, c, t, h, w) = (h == 0 || h == H + 1) ? -7.0f : value_at(c, t, first + h - 1, w);
      });
  exec.fence();
  const khalo::HaloSpec spec(1, khalo::Boundary::zero);
  khalo::Halo<Exec, Mem> halo(dec, spec, v);

  // Correctness: the ghost rows hold the neighbours' rows, or zeros at the edge of the image.
  halo.exchange(exec, v);
  std::int64_t bad = 0;
  const std::int64_t global_h = H * ranks;
  Kokkos::parallel_reduce(
      "bench_halo_device::check", Kokkos::MDRangePolicy<Exec, Kokkos::Rank<4>>(exec, {0, 0, 0, 0}, {C, D, 2, W}),
      KOKKOS_LAMBDA(const std::int64_t c, const std::int64_t t, const std::int64_t side, const std::int64_t w,
                    std::int64_t& n) {
        const std::int64_t h = side == 0 ? 0 : H + 1, g = first + h - 1;
        const float want = (g < 0 || g >= global_h) ? 0.0f : value_at(c, t, g, w);
        if (v(0, c, t, h, w) != want) ++n;
      },
      bad);
  MPI_Allreduce(MPI_IN_PLACE, &bad, 1, MPI_INT64_T, MPI_SUM, world);

  std::vector<double> blocking, split;
  for (int r = 0; r < reps + 2; ++r) {
    for (int split_phase = 0; split_phase < 2; ++split_phase) {
      MPI_Barrier(world);
      const auto t0 = std::chrono::steady_clock::now();
      if (split_phase == 0) {
        halo.exchange(exec, v);
      } else {
        auto x = halo.start(exec, v);
        x.wait();
      }
      exec.fence();
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (r >= 2) (split_phase == 0 ? blocking : split).push_back(dt);
    }
  }
  const auto b = khalo_perf::spread_of(khalo_perf::max_over_ranks(blocking, world));
  const auto s = khalo_perf::spread_of(khalo_perf::max_over_ranks(split, world));
  // Ghost bytes an inner rank receives: two rows (one per neighbour), one at the edge.
  const double bytes = static_cast<double>(C * D * W) * sizeof(float) * (ranks > 2 ? 2 : ranks > 1 ? 1 : 0);
  const char* aware = std::getenv("KHALO_GPU_AWARE_MPI");
  return Json{{"bench", "halo_device"},
              {"case", "wan_c" + std::to_string(C) + "_d" + std::to_string(D) + "_h" + std::to_string(H) + "_w" +
                           std::to_string(W)},
              {"layout", khalo::to_string(format)},
              {"ranks", ranks},
              {"memory_space", Mem::name()},
              {"backend", Exec::name()},
              {"gpu_aware_mpi_env", aware != nullptr ? aware : ""},
              {"khalo_s", b.median},
              {"khalo_q1_s", b.q1},
              {"khalo_q3_s", b.q3},
              {"khalo_split_s", s.median},
              {"ghost_bytes_per_rank", bytes},
              {"gbps", b.median > 0 ? bytes / b.median * 1e-9 : 0.0},
              {"wrong_ghosts", bad},
              {"reps", reps}};
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"khalo's halo exchange on the default execution space's memory (time = slowest rank)"};
  bool quick = false;
  int reps = 25;
  std::string json;
  app.add_flag("--quick", quick, "tiny shapes, few repetitions (a smoke test)");
  app.add_option("--reps", reps, "timed repetitions per case")->check(CLI::PositiveNumber);
  app.add_option("--json", json, "write the records here (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return runtime.world_rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  if (quick) reps = std::min(reps, 3);
  // (C, D, H rows per rank, W): the Wan stage's per-rank band and a wider one.
  const std::vector<std::array<std::int64_t, 4>> shapes =
      quick ? std::vector<std::array<std::int64_t, 4>>{{8, 2, 4, 16}}
            : std::vector<std::array<std::int64_t, 4>>{{96, 4, 60, 104}, {384, 4, 30, 208}};
  const bool root = runtime.world_rank() == 0;
  if (root) {
    const char* aware = std::getenv("KHALO_GPU_AWARE_MPI");
    std::printf("bench_halo_device: %d rank(s), %s memory; KHALO_GPU_AWARE_MPI=%s; %s\n", runtime.world_size(),
                Mem::name(), aware != nullptr ? aware : "<unset>", khalo::build_info().c_str());
    std::printf("%-24s %-18s %12s %12s %8s %s\n", "case", "layout", "khalo ms", "split ms", "GB/s", "ghosts");
  }
  std::vector<Json> records;
  int status = 0;
  for (const auto& shape : shapes) {
    for (auto f : {khalo::MemoryFormat::contiguous, khalo::MemoryFormat::channels_last_3d}) {
      Json r = run_case(shape, f, reps, MPI_COMM_WORLD);
      const auto bad = r["wrong_ghosts"].get<std::int64_t>();
      if (bad != 0) status = 1;
      if (root) {
        std::printf("%-24s %-18s %12.4f %12.4f %8.2f %s\n", r["case"].get<std::string>().c_str(),
                    r["layout"].get<std::string>().c_str(), r["khalo_s"].get<double>() * 1e3,
                    r["khalo_split_s"].get<double>() * 1e3, r["gbps"].get<double>(),
                    bad == 0 ? "ok" : (std::to_string(bad) + " WRONG").c_str());
      }
      records.push_back(std::move(r));
    }
  }
  if (root && !json.empty()) khalo_perf::write_records(json, std::move(records));
  return status;
}
