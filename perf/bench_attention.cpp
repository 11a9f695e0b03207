// Throughput of the mid block's spatial self-attention (khalo::nn::SpatialAttention) at
// the latent resolution, rows split over the ranks: per repetition, the slowest rank's time
// for one run() and the slowest rank's time in MPI_Allgatherv; median and quartiles over
// repetitions after one warm-up; GFLOP/s = all ranks' projections and attention / time. On a
// shared machine the wall time includes waits for a core: the process CPU time of each run (the
// slowest rank's) is printed too, with the GFLOP/s per CPU-second it gives.
//   mpirun -np P bench_attention [--quick] [--channels C] [--frames T] [--height H] [--width W]
//                                [--reps R] [--format contiguous|channels_last_3d] [--json FILE]
#include "bench_common.hpp"

#include <khalo/nn/decoder_stage.hpp>
#include <khalo/nn/layers/attention.hpp>

#include <mpi.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"bench_attention: the mid block's spatial self-attention over row bands"};
  bool quick = false;
  int channels = 384, frames = 1, height = 60, width = 104, reps = 5;
  std::string format_name = "channels_last_3d", json;
  app.add_flag("--quick", quick, "a tiny frame, one repetition (a smoke test)");
  app.add_option("--channels", channels, "C (Wan 2.1: 384)");
  app.add_option("--frames", frames, "frames per call");
  app.add_option("--height", height, "latent rows (480p: 60)");
  app.add_option("--width", width, "latent columns (832 wide: 104)");
  app.add_option("--reps", reps, "timed repetitions after one warm-up");
  app.add_option("--format", format_name, "memory format of x and out");
  app.add_option("--json", json, "write the results here");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    channels = 24;
    height = 9;
    width = 13;
    reps = 1;
  }
  const auto format = khalo::memory_format_from_string(format_name);
  const MPI_Comm comm = MPI_COMM_WORLD;
  int rank = 0, size = 1;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &size);

  const auto dec = khalo::row_decomposition(comm, {1, channels, frames, height, width});
  khalo::nn::SpatialAttention layer(dec, khalo::nn::AttentionWeights::random(channels, 7), frames);
  auto x = khalo::nn::make_activation("x", dec.local_extents(), format);
  auto out = khalo::nn::make_activation("out", dec.local_extents(), format);
  khalo::nn::fill_random_input(x, dec, 11);

  std::vector<double> total, gather, cpu;
  double flops = 0;
  for (int r = 0; r < reps + 1; ++r) {
    if (r == 1) {
      khalo_perf::KernelTimer::reset();
      khalo_perf::KernelTimer::start();
    }
    const auto before = layer.stats();
    MPI_Barrier(comm);
    const std::clock_t c0 = std::clock();
    const double t0 = MPI_Wtime();
    layer.run(khalo::nn::strided(x), khalo::nn::strided(out), frames);
    const double dt = MPI_Wtime() - t0;
    const double dc = static_cast<double>(std::clock() - c0) / CLOCKS_PER_SEC;
    const auto& after = layer.stats();
    if (r == 0) continue;  // warm-up
    total.push_back(dt);
    cpu.push_back(dc);
    gather.push_back(after.gather_seconds - before.gather_seconds);
    flops = after.flops - before.flops;
  }
  khalo_perf::KernelTimer::stop();
  total = khalo_perf::max_over_ranks(total, comm);
  gather = khalo_perf::max_over_ranks(gather, comm);
  cpu = khalo_perf::max_over_ranks(cpu, comm);
  MPI_Allreduce(MPI_IN_PLACE, &flops, 1, MPI_DOUBLE, MPI_SUM, comm);
  const auto t = khalo_perf::spread_of(total), g = khalo_perf::spread_of(gather), c = khalo_perf::spread_of(cpu);
  const double gflops = flops / t.median * 1e-9;
  if (rank == 0) {
    std::printf("bench_attention: %d rank(s), (1, %d, %d, %d, %d) %s, %s\n", size, channels, frames, height, width,
                format_name.c_str(), khalo_perf::cpu_model().c_str());
    std::printf("  run      median %.4f s (q1 %.4f, q3 %.4f)  %.1f GFLOP/s in all, %.1f per rank\n", t.median, t.q1,
                t.q3, gflops, gflops / size);
    std::printf("  cpu time median %.4f s per rank: %.1f GFLOP/s per rank per CPU-second\n", c.median,
                flops / size / c.median * 1e-9);
    std::printf("  gather   median %.4f s (q1 %.4f, q3 %.4f)  %.1f%% of run\n", g.median, g.q1, g.q3,
                100.0 * g.median / t.median);
    // Rank 0's kernels and regions, wall time per run (exact on host backends).
    for (const auto& [label, seconds] : khalo_perf::KernelTimer::all())
      std::printf("    %-40s %.4f s\n", label.c_str(), seconds / reps);
    if (!json.empty()) {
      nlohmann::json r{{"benchmark", "attention"},
                       {"ranks", size},
                       {"channels", channels},
                       {"frames", frames},
                       {"height", height},
                       {"width", width},
                       {"format", format_name},
                       {"median_s", t.median},
                       {"q1_s", t.q1},
                       {"q3_s", t.q3},
                       {"gather_median_s", g.median},
                       {"gflops", gflops},
                       {"cpu_median_s", c.median}};
      khalo_perf::write_records(json, {r});
    }
  }
  return 0;
}
