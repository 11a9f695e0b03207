// The causal cache's frame copies and zero fills, between and within memory
// formats, against a plain loop over logical indices; and the fused RMS norm +
// SiLU against its formula in double precision.
#include <khalo/nn/pointwise.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace {

using khalo::MemoryFormat;
using khalo::nn::Activation;
using Exec = Kokkos::DefaultExecutionSpace;
using Host = Activation<Kokkos::HostSpace>;

constexpr int N = 2, C = 5, T = 6, H = 3, W = 7;

Activation<> random_tensor(const char* label, MemoryFormat f, unsigned seed) {
  auto a = khalo::nn::make_activation(label, {N, C, T, H, W}, f);
  auto h = Kokkos::create_mirror_view(a);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < T; ++t)
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x) h(n, c, t, y, x) = u(rng);
  Kokkos::deep_copy(a, h);
  return a;
}

Host on_host(const Activation<>& a) {
  auto h = Kokkos::create_mirror_view(a);
  Kokkos::deep_copy(h, a);
  return h;
}

class Frames : public ::testing::TestWithParam<std::pair<MemoryFormat, MemoryFormat>> {};

TEST_P(Frames, CopyAndZeroTouchExactlyTheirFrames) {
  const auto [from_format, to_format] = GetParam();
  const auto src = random_tensor("src", from_format, 1);
  const auto dst = random_tensor("dst", to_format, 2);
  const Host before = on_host(dst);
  const Host s = on_host(src);
  khalo::nn::copy_frames(Exec(), khalo::nn::strided(src), 1, khalo::nn::strided(dst), 3, 2, N, C, H, W);
  khalo::nn::zero_frames(Exec(), khalo::nn::strided(dst), 0, 2, N, C, H, W);
  Exec().fence();
  const Host after = on_host(dst);
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int t = 0; t < T; ++t)
        for (int y = 0; y < H; ++y)
          for (int x = 0; x < W; ++x) {
            const float want = t < 2 ? 0.0f : (t == 3 || t == 4) ? s(n, c, t - 2, y, x) : before(n, c, t, y, x);
            ASSERT_EQ(after(n, c, t, y, x), want) << n << " " << c << " " << t << " " << y << " " << x;
          }
}

INSTANTIATE_TEST_SUITE_P(Formats, Frames,
                         ::testing::Values(std::make_pair(MemoryFormat::contiguous, MemoryFormat::contiguous),
                                           std::make_pair(MemoryFormat::channels_last_3d,
                                                          MemoryFormat::channels_last_3d),
                                           std::make_pair(MemoryFormat::contiguous, MemoryFormat::channels_last_3d),
                                           std::make_pair(MemoryFormat::channels_last_3d, MemoryFormat::contiguous)));

TEST(RmsNormSilu, MatchesTheFormulaInBothFormats) {
  std::vector<float> gamma{0.5f, 1.0f, -1.5f, 2.0f, 0.25f};
  Kokkos::View<float*> g("gamma", C);
  auto gh = Kokkos::create_mirror_view(g);
  for (int c = 0; c < C; ++c) gh(c) = gamma[static_cast<std::size_t>(c)];
  Kokkos::deep_copy(g, gh);
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
    const auto in = random_tensor("in", f, 3);
    auto out = khalo::nn::make_activation("out", {N, C, T, H, W}, f);
    khalo::nn::rms_norm_silu(Exec(), khalo::nn::strided(in), khalo::nn::strided(out), g.data(), N, C, T, H, W);
    Exec().fence();
    const Host x = on_host(in);
    const Host y = on_host(out);
    for (int n = 0; n < N; ++n)
      for (int t = 0; t < T; ++t)
        for (int r = 0; r < H; ++r)
          for (int w = 0; w < W; ++w) {
            double ss = 0;
            for (int c = 0; c < C; ++c) ss += static_cast<double>(x(n, c, t, r, w)) * x(n, c, t, r, w);
            const double norm = std::max(std::sqrt(ss), 1e-12);
            for (int c = 0; c < C; ++c) {
              const double v = x(n, c, t, r, w) / norm * std::sqrt(double(C)) * gamma[static_cast<std::size_t>(c)];
              ASSERT_NEAR(y(n, c, t, r, w), v / (1.0 + std::exp(-v)), 1e-5 * (1.0 + std::fabs(v)));
            }
          }
  }
}

}  // namespace
