// Throughput of the decoder's causal 3x3x3 convolution, per memory format, on
// one rank: GFLOP/s (2 * MACs / time), median of repetitions after warm-up.
// --layers: instead, every convolution of a Wan upsampler stage at C = 96, input
// (1, 96, 3, 48, 104): the residual 3x3x3, time_conv 3x1x1 (96 -> 192) and the
// upsampler's fused nearest-2x 3x3 (96 -> 48, output 96 x 208), each also as a
// ratio to the 3x3x3 of the same round; --rounds N repeats the whole set.
// --team: the team kernel (ConvAlgorithm::team) instead of the host kernels.
// --cout N: the 3x3x3 shapes with N output channels instead of C (the decoder's conv_out is
// --channels 96 --cout 3).
//   bench_conv [--quick] [--channels C] [--cout N] [--layers] [--rounds N] [--team] [--json FILE]
#include <khalo/nn/conv.hpp>
#include <khalo/runtime.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
khalo::nn::ConvAlgorithm algorithm = khalo::nn::ConvAlgorithm::automatic;

struct Result {
  std::string layout;
  int c, t, h, w;
  double median_s, gflops;
  std::string kernel;
  std::string conv = "conv3d_3x3x3";
  int cout = 0;
};

// One convolution: C -> cout channels, a kt x kh x kw kernel (up: the fused nearest-2x 3x3),
// input (1, C, T, H, W) plus what padding needs.
Result run(khalo::MemoryFormat format, int C, int T, int H, int W, int reps, int cout = 0, int kt = 3, int kh = 3,
           int kw = 3, bool up = false) {
  if (cout == 0) cout = C;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 0.05f);
  const int taps = kt * kh * kw;
  std::vector<float> w(static_cast<std::size_t>(cout) * C * taps), b(static_cast<std::size_t>(cout));
  for (auto& x : w) x = normal(rng);
  for (auto& x : b) x = normal(rng);
  const auto weights = khalo::nn::ConvWeights<Exec::memory_space>::from_torch(w, b, cout, C, kt, kh, kw, format);
  const int ghost = up ? 1 : kh / 2, s = up ? 2 : 1;
  auto in = khalo::nn::make_activation("in", {1, C, T + kt - 1, H + 2 * ghost, W}, format);
  auto out = khalo::nn::make_activation("out", {1, cout, T, s * H, s * W}, format);
  Kokkos::deep_copy(in, 0.5f);
  khalo::nn::ConvLaunch l;
  l.in = khalo::nn::strided(in);
  l.out = khalo::nn::strided(out);
  l.frames = T;
  l.row_end = s * H;
  l.in_width = W;
  l.out_width = s * W;
  l.cout_count = cout;
  const Exec exec;
  std::vector<double> times;
  std::string kernel;
  for (int r = 0; r < reps + 1; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    kernel = khalo::nn::conv(exec, l, weights, up, algorithm).name();
    exec.fence();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r > 0) times.push_back(dt);  // the first is warm-up
  }
  std::sort(times.begin(), times.end());
  const double med = times[times.size() / 2];
  const double flops = 2.0 * C * cout * static_cast<double>(taps) * T * (s * H) * (s * W);
  const std::string conv =
      up ? "upsample_conv2d_3x3" : "conv3d_" + std::to_string(kt) + "x" + std::to_string(kh) + "x" + std::to_string(kw);
  return {khalo::to_string(format), C, T, H, W, med, flops / med * 1e-9, kernel, conv, cout};
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  bool quick = false;
  std::string json;
  int only = 0;  // --channels C: only the shapes with C channels
  int cout = 0;  // --cout N: N output channels (0: as many as in)
  bool layers = false;
  int rounds = 1;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--layers") == 0) layers = true;
    if (std::strcmp(argv[i], "--team") == 0) algorithm = khalo::nn::ConvAlgorithm::team;
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) rounds = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--channels") == 0 && i + 1 < argc) only = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--cout") == 0 && i + 1 < argc) cout = std::atoi(argv[++i]);
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = argv[++i];
  }
  std::vector<std::array<int, 4>> shapes =
      quick ? std::vector<std::array<int, 4>>{{16, 2, 8, 16}}
            : std::vector<std::array<int, 4>>{{96, 4, 32, 32},  {96, 4, 64, 64},  {192, 4, 32, 32},
                                              {192, 4, 64, 64}, {384, 4, 32, 32}, {384, 4, 64, 64}};
  std::vector<Result> results;
  if (layers) {
    const int C = quick ? 16 : 96, T = quick ? 1 : 3, H = quick ? 8 : 48, W = quick ? 16 : 104;
    std::printf("%-18s %-22s %5s %5s %12s %10s %8s  %s\n", "layout", "conv", "C", "Cout", "median ms", "GFLOP/s",
                "/ 3x3x3", "kernel");
    for (int round = 0; round < rounds; ++round) {
      for (auto f : {khalo::MemoryFormat::channels_last_3d, khalo::MemoryFormat::contiguous}) {
        const int reps = quick ? 2 : 5;
        const Result base = run(f, C, T, H, W, reps);
        for (const Result& r :
             {base, run(f, C, T, H, W, reps, 2 * C, 3, 1, 1), run(f, C, T, H, W, reps, C / 2, 1, 3, 3, true)}) {
          std::printf("%-18s %-22s %5d %5d %12.3f %10.2f %8.2f  %s\n", r.layout.c_str(), r.conv.c_str(), r.c, r.cout,
                      r.median_s * 1e3, r.gflops, r.gflops / base.gflops, r.kernel.c_str());
          results.push_back(r);
        }
      }
    }
    shapes.clear();
  }
  if (!shapes.empty())
    std::printf("%-18s %5s %5s %3s %4s %4s %12s %10s  %s\n", "layout", "C", "Cout", "T", "H", "W", "median ms",
                "GFLOP/s", "kernel");
  for (auto f : {khalo::MemoryFormat::channels_last_3d, khalo::MemoryFormat::contiguous}) {
    for (auto s : shapes) {
      if (only > 0 && s[0] != only) continue;
      const auto r = run(f, s[0], s[1], s[2], s[3], quick ? 2 : 5, cout);
      std::printf("%-18s %5d %5d %3d %4d %4d %12.3f %10.2f  %s\n", r.layout.c_str(), r.c, r.cout, r.t, r.h, r.w,
                  r.median_s * 1e3, r.gflops, r.kernel.c_str());
      results.push_back(r);
    }
  }
  if (!json.empty()) {
    std::ofstream o(json);
    o << "[\n";
    for (std::size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      o << "  {\"bench\": \"" << r.conv << "\", \"layout\": \"" << r.layout << "\", \"C\": " << r.c
        << ", \"Cout\": " << r.cout << ", \"T\": " << r.t << ", \"H\": " << r.h << ", \"W\": " << r.w
        << ", \"median_s\": " << r.median_s << ", \"gflops\": " << r.gflops << ", \"kernel\": \"" << r.kernel << "\""
        << ", \"backend\": \"" << Exec::name() << "\", \"threads\": " << Exec().concurrency() << "}"
        << (i + 1 < results.size() ? ",\n" : "\n");
    }
    o << "]\n";
  }
  return 0;
}
