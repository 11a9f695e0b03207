// The distributed decoder stage (a Wan 2.1 VAE up-block) on this run's ranks:
// per layer and in total, GFLOP/s per memory format, for a fixed global shape
// (strong scaling: run it on 1, 2, 4 ranks and compare) and for a fixed band
// per rank (weak scaling), and the share of the stage spent in halo exchange.
// "independent" runs every rank's strong-scaling band as a stage of its own, all
// at once, without communication: what the machine gives P processes, the bound
// for the strong-scaling speed-up on it.
// Layer times come from the stage itself (the slowest rank's); the stage time
// is the slowest rank's, median over repetitions after a warm-up; halo time is
// what the critical rank (the one whose own kernels take longest) spends inside
// Halo::start and HaloExchange::wait (Kokkos Tools region timer): the exchange
// time that the interior rows did not hide. A faster rank also waits there for
// its neighbour; that maximum and the compute imbalance are reported beside it.
// A layer that runs once per chunk is timed as the sum over the chunks. Each layer's GFLOP/s is
// also given as a ratio to the same stage's residual convolutions (resnets.*.conv1/conv2, all
// together), from the same runs: what an upsampler's conv reaches beside the stage's main kernel.
// --upsamplers runs the Wan 2.1 upsampler stages instead (strong scaling on this run's ranks):
// (1, 96, 3, 48, 104) with upsample2d, whole clip, and with upsample3d in 3 chunks (one latent
// frame each, as the VAE decodes; whole-clip and first-chunk upsample3d skip time_conv).
//   mpirun -np P bench_decoder [--quick] [--channels C] [--frames T] [--height H] [--width W]
//                              [--rows-per-rank R] [--num-res-blocks B]
//                              [--upsample none|upsample2d|upsample3d] [--chunks K] [--upsamplers]
//                              [--reps N] [--json FILE]
#include <khalo/decomposition.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <khalo/nn/tensor.hpp>
#include <khalo/runtime.hpp>

#include "bench_common.hpp"

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace {

using Json = nlohmann::json;

struct Config {
  int channels = 96;
  int frames = 4;
  int height = 64;
  int width = 64;
  int rows_per_rank = 32;
  int num_res_blocks = 2;
  std::string upsample = "none";
  int chunks = 0;  // 0: the whole clip at once
  int reps = 3;
};

bool residual_conv(const std::string& layer) {
  return layer.rfind("resnets.", 0) == 0 &&
         (layer.find(".conv1") != std::string::npos || layer.find(".conv2") != std::string::npos);
}

std::string shape_text(const std::vector<std::int64_t>& e) {
  std::string s = "(";
  for (std::size_t i = 0; i < e.size(); ++i) s += (i ? "," : "") + std::to_string(e[i]);
  return s + ")";
}

std::vector<Json> run(const Config& cfg, khalo::MemoryFormat format, const std::string& scaling, MPI_Comm comm) {
  int me = 0, nranks = 1;
  MPI_Comm_rank(comm, &me);
  MPI_Comm_size(comm, &nranks);
  // "independent": every rank decodes its band of the strong-scaling input alone (MPI_COMM_SELF),
  // all at the same time: no halo, no messages. What the machine gives P processes at once,
  // the bound for the strong-scaling speed-up.
  const bool alone = scaling == "independent";
  const MPI_Comm stage_comm = alone ? MPI_COMM_SELF : comm;
  const std::int64_t H = scaling == "weak" ? static_cast<std::int64_t>(cfg.rows_per_rank) * nranks
                         : alone           ? khalo::balanced_split(cfg.height, nranks, me).size()
                                           : cfg.height;
  const std::vector<std::int64_t> shape{1, cfg.channels, cfg.frames, H, cfg.width};
  khalo::nn::StageConfig sc;
  sc.in_dim = sc.out_dim = cfg.channels;
  sc.num_res_blocks = cfg.num_res_blocks;
  sc.upsample = khalo::nn::upsample_from_string(cfg.upsample);
  const auto weights = khalo::nn::StageWeights::random(sc, 7);
  khalo::nn::DecoderStage stage(stage_comm, weights, format, shape);
  const auto& dec = stage.input_decomposition();
  auto input = khalo::nn::make_activation("input", dec.local_extents(), format);
  khalo::nn::fill_random_input(input, dec, 11);

  std::vector<std::string> order;                    // layer names, in stage order
  std::map<std::string, std::vector<double>> layer;  // seconds per run (slowest rank, from the stage)
  std::map<std::string, double> flops;               // all ranks together (of this stage), all chunks
  std::map<std::string, std::string> kernel;         // the convolution kernel each layer ran
  std::vector<double> total, halo, halo_kernels, compute;
  using KT = khalo_perf::KernelTimer;
  for (int r = 0; r < cfg.reps + 1; ++r) {  // the first run is warm-up
    KT::reset();
    KT::start();
    MPI_Barrier(comm);
    const double t0 = MPI_Wtime();
    std::map<std::string, double> seconds;  // this run's, summed over chunks
    stage.run(input, cfg.chunks, [&](const khalo::nn::LayerEvent& e) {
      if (r == 0) {
        if (flops.count(e.name) == 0) order.push_back(e.name);
        flops[e.name] += e.flops;
        kernel[e.name] = e.kernel;
      }
      seconds[e.name] += e.seconds;
    });
    if (r > 0) {
      for (const auto& [name, sec] : seconds) layer[name].push_back(sec);
    }
    const double t = MPI_Wtime() - t0;
    KT::stop();
    if (r == 0) continue;
    total.push_back(t);
    halo.push_back(KT::seconds("khalo::Halo::start") + KT::seconds("khalo::Halo::wait"));
    halo_kernels.push_back(KT::seconds("khalo::pack") + KT::seconds("khalo::unpack") + KT::seconds("khalo::zero"));
    double work = 0;  // the stage's own kernels: convolutions, norms, copies
    for (const auto& [label, sec] : KT::all()) {
      if (label.rfind("khalo::nn::", 0) == 0) work += sec;
    }
    compute.push_back(work);
  }
  for (const auto& name : order) {  // independent stages: the slowest rank's layer, all ranks' FLOPs
    layer[name] = khalo_perf::max_over_ranks(layer[name], comm);
    MPI_Allreduce(MPI_IN_PLACE, &flops[name], 1, MPI_DOUBLE, alone ? MPI_SUM : MPI_MAX, comm);
  }
  const auto tot = khalo_perf::spread_of(khalo_perf::max_over_ranks(total, comm));
  // Time inside Halo::start + wait is the exchange plus, on a rank that computes faster, the
  // wait for its neighbour (the messages complete when both sides are in MPI). The exchange's
  // cost to the stage is what the critical rank (the one that computes longest) spends there.
  std::vector<double> critical_halo, critical_kernels, waiting, imbalance;
  {
    const std::size_t n = total.size(), P = static_cast<std::size_t>(nranks);
    std::vector<double> mine;
    for (std::size_t r = 0; r < n; ++r) mine.insert(mine.end(), {compute[r], halo[r], halo_kernels[r]});
    std::vector<double> all(mine.size() * P);
    MPI_Allgather(mine.data(), static_cast<int>(mine.size()), MPI_DOUBLE, all.data(), static_cast<int>(mine.size()),
                  MPI_DOUBLE, comm);
    for (std::size_t r = 0; r < n; ++r) {
      std::size_t crit = 0;
      double cmin = 1e300, cmax = 0, hmax = 0;
      for (std::size_t q = 0; q < P; ++q) {
        const double* v = &all[q * mine.size() + 3 * r];
        if (v[0] > all[crit * mine.size() + 3 * r]) crit = q;
        cmin = std::min(cmin, v[0]);
        cmax = std::max(cmax, v[0]);
        hmax = std::max(hmax, v[1]);
      }
      critical_halo.push_back(all[crit * mine.size() + 3 * r + 1]);
      critical_kernels.push_back(all[crit * mine.size() + 3 * r + 2]);
      waiting.push_back(hmax);
      imbalance.push_back(cmin > 0 ? cmax / cmin - 1.0 : 0.0);
    }
  }
  const auto hal = khalo_perf::spread_of(critical_halo);
  const auto halk = khalo_perf::spread_of(critical_kernels);
  const auto halmax = khalo_perf::spread_of(waiting);
  const auto imb = khalo_perf::spread_of(imbalance);
  const khalo::HaloStats hs = stage.halo_stats();
  std::int64_t sent = hs.bytes_sent, messages = hs.messages;
  MPI_Allreduce(MPI_IN_PLACE, &sent, 1, MPI_INT64_T, MPI_MAX, comm);
  MPI_Allreduce(MPI_IN_PLACE, &messages, 1, MPI_INT64_T, MPI_MAX, comm);
  const double runs = cfg.reps + 1;

  std::vector<Json> records;
  if (me != 0) return records;
  const std::string layout = khalo::to_string(format);
  std::printf("\n== %s, %s%s, %d rank(s), %s input %s, stage %d -> %d, %d residual blocks, upsampler %s, %s\n",
              layout.c_str(), scaling.c_str(), alone ? " (each rank its band alone, all at once)" : " scaling", nranks,
              alone ? "rank 0's" : "global", shape_text(shape).c_str(), sc.in_dim, sc.out_dim, sc.num_res_blocks + 1,
              cfg.upsample.c_str(), cfg.chunks > 0 ? (std::to_string(cfg.chunks) + " chunks").c_str() : "whole clip");
  // The residual convolutions' GFLOP/s, all together: the reference for every layer's ratio.
  double res_flops = 0, res_seconds = 0;
  for (const auto& name : order) {
    if (!residual_conv(name)) continue;
    res_flops += flops[name];
    res_seconds += khalo_perf::spread_of(layer[name]).median;
  }
  const double res_gflops = res_seconds > 0 ? res_flops / res_seconds * 1e-9 : 0.0;
  std::printf("%-28s %11s %10s %12s  %s\n", "layer", "median ms", "GFLOP/s", "/ residual", "kernel");
  double all_flops = 0, layer_sum = 0;
  Json base = {{"bench", "decoder_stage"},
               {"layout", layout},
               {"ranks", nranks},
               {"scaling", scaling},
               {"shape", shape},
               {"in_dim", sc.in_dim},
               {"out_dim", sc.out_dim},
               {"num_res_blocks", sc.num_res_blocks},
               {"upsample", cfg.upsample},
               {"chunks", cfg.chunks},
               {"reps", cfg.reps},
               {"threads_per_rank", Kokkos::DefaultExecutionSpace().concurrency()},
               {"backend", Kokkos::DefaultExecutionSpace::name()}};
  for (const auto& name : order) {
    const double med = khalo_perf::spread_of(layer[name]).median;
    all_flops += flops[name];
    layer_sum += med;
    const double gflops = flops[name] / med * 1e-9;
    const double ratio = res_gflops > 0 ? gflops / res_gflops : 0.0;
    std::printf("%-28s %11.2f %10.1f %12.2f  %s\n", name.c_str(), med * 1e3, gflops, ratio, kernel[name].c_str());
    Json j = base;
    j["layer"] = name;
    j["median_s"] = med;
    j["flops"] = flops[name];
    j["gflops"] = gflops;
    j["gflops_over_residual_convs"] = ratio;
    j["kernel"] = kernel[name];
    records.push_back(j);
  }
  std::printf("%-28s %11.2f %10.1f   (q1..q3 %.2f..%.2f ms; layers sum to %.2f ms)\n", "total (stage)",
              tot.median * 1e3, all_flops / tot.median * 1e-9, tot.q1 * 1e3, tot.q3 * 1e3, layer_sum * 1e3);
  std::printf("residual convs together: %.1f GFLOP/s\n", res_gflops);
  std::printf(
      "halo exchange on the critical rank (the one that computes longest): %.2f ms per stage, %.1f%% of it (of which "
      "pack/unpack/fill kernels %.2f ms); up to %.2f ms on a rank that also waits for its neighbour (compute "
      "imbalance between ranks %.0f%%); %.0f KiB in %.0f messages per stage on the busiest rank\n",
      hal.median * 1e3, 100.0 * hal.median / tot.median, halk.median * 1e3, halmax.median * 1e3, 100.0 * imb.median,
      static_cast<double>(sent) / runs / 1024.0, static_cast<double>(messages) / runs);
  Json j = base;
  j["layer"] = "total";
  j["median_s"] = tot.median;
  j["q1_s"] = tot.q1;
  j["q3_s"] = tot.q3;
  j["flops"] = all_flops;
  j["gflops"] = all_flops / tot.median * 1e-9;
  j["layers_sum_s"] = layer_sum;
  j["halo_s"] = hal.median;
  j["halo_fraction"] = hal.median / tot.median;
  j["halo_kernels_s"] = halk.median;
  j["halo_max_s"] = halmax.median;
  j["compute_imbalance"] = imb.median;
  j["halo_bytes_per_stage"] = static_cast<double>(sent) / runs;
  j["halo_messages_per_stage"] = static_cast<double>(messages) / runs;
  records.push_back(j);
  std::fflush(stdout);
  return records;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"Decoder stage per layer and in total, strong and weak scaling, halo share (time = slowest rank)"};
  Config cfg;
  bool quick = false;
  std::string json;
  std::vector<std::string> layouts{"channels_last_3d", "contiguous"}, scalings{"strong", "weak", "independent"};
  app.add_flag("--quick", quick, "a tiny stage, one repetition (a smoke test)");
  app.add_option("--channels", cfg.channels, "C, in and out of the stage");
  app.add_option("--frames", cfg.frames, "T");
  app.add_option("--height", cfg.height, "global H of the strong-scaling shape");
  app.add_option("--width", cfg.width, "W");
  app.add_option("--rows-per-rank", cfg.rows_per_rank, "H per rank of the weak-scaling shape");
  app.add_option("--num-res-blocks", cfg.num_res_blocks, "the stage has this many + 1 residual blocks");
  bool upsamplers = false;
  app.add_option("--upsample", cfg.upsample, "none, upsample2d or upsample3d")
      ->check(CLI::IsMember({"none", "upsample2d", "upsample3d"}));
  app.add_option("--chunks", cfg.chunks, "decode in K chunks (0: the whole clip)")->check(CLI::NonNegativeNumber);
  app.add_flag("--upsamplers", upsamplers,
               "the Wan upsampler stages: (1,96,3,48,104), upsample2d whole clip and upsample3d in 3 chunks "
               "(strong scaling; --layouts and --reps apply)");
  app.add_option("--layouts", layouts, "memory formats")->check(CLI::IsMember({"channels_last_3d", "contiguous"}));
  app.add_option("--scaling", scalings, "strong, weak, independent (the machine's bound for strong scaling)")
      ->check(CLI::IsMember({"strong", "weak", "independent"}));
  app.add_option("--reps", cfg.reps, "timed runs of the stage (after one warm-up)")->check(CLI::PositiveNumber);
  app.add_option("--json", json, "write the records here (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return runtime.world_rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  if (quick) {
    cfg = Config{};
    cfg.channels = 8;
    cfg.frames = 2;
    cfg.height = 8;
    cfg.width = 8;
    cfg.rows_per_rank = 4;
    cfg.num_res_blocks = 0;
    cfg.upsample = "upsample2d";
    cfg.reps = 1;
  }
  std::vector<Config> stages{cfg};
  if (upsamplers) {
    Config c = cfg;
    c.channels = 96;
    c.frames = 3;
    c.height = 48;
    c.width = 104;
    c.num_res_blocks = 2;
    if (quick) {
      c.channels = 8;
      c.height = 8;
      c.width = 8;
      c.num_res_blocks = 0;
    }
    c.upsample = "upsample2d";
    c.chunks = 0;
    Config c3 = c;
    c3.upsample = "upsample3d";
    c3.chunks = 3;
    stages = {c, c3};
    scalings = {"strong"};
  }
  const bool root = runtime.world_rank() == 0;
  if (root) {
    std::printf("bench_decoder: %d rank(s); %s; %s; time = slowest rank, median of %d run(s) after 1 warm-up\n",
                runtime.world_size(), khalo_perf::cpu_model().c_str(), khalo::build_info().c_str(), cfg.reps);
  }
  std::vector<Json> records;
  int status = 0;
  try {
    for (const auto& stage : stages) {
      for (const auto& layout : layouts) {
        for (const auto& scaling : scalings) {
          if (scaling == "independent" && runtime.world_size() == 1) continue;  // the same as strong
          auto r = run(stage, khalo::memory_format_from_string(layout), scaling, MPI_COMM_WORLD);
          records.insert(records.end(), r.begin(), r.end());
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_decoder: %s\n", e.what());
    status = 1;
  }
  if (root && status == 0 && !json.empty()) khalo_perf::write_records(json, std::move(records));
  return status;
}
