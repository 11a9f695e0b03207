// The attention's two softmax kernels (khalo/nn/detail/attention_kernel.hpp): the team kernel
// that runs on devices gives the host's tile kernel's bits, on blocks that end part-way (keys,
// queries) and with padded channels. The layer itself is tested in test_attention.cpp (which
// runs the tile kernel on the host and the team kernel on a device).
#include <khalo/nn/detail/attention_kernel.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

namespace {

namespace kd = khalo::nn::detail;
using Host = Kokkos::DefaultHostExecutionSpace;

struct Inputs {
  kd::AttentionShape s;
  std::vector<float> q, keys_t, values;
};

// F frames, P of this rank's queries, G keys, C channels: random values everywhere, padding too
// (the kernels must not let it reach a live output).
Inputs inputs(std::int64_t F, std::int64_t P, std::int64_t G, int C) {
  Inputs in;
  auto up = [](std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; };
  in.s = {F, P, G, C, up(C, kd::kLanes), up(P, kd::kQueryBlock), up(G, kd::kKeyBlock), 7};
  std::mt19937 gen(2026);
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  auto fill = [&](std::vector<float>& v, std::int64_t n) {
    v.resize(static_cast<std::size_t>(n));
    for (auto& x : v) x = u(gen);
  };
  fill(in.q, F * in.s.Pq * in.s.Cp);
  fill(in.keys_t, F * C * in.s.Gk);
  fill(in.values, F * in.s.Cp * G);
  return in;
}

// acc (F, Pq, Cp) by one of the kernels on \p exec, starting from NaN everywhere.
template <class Exec, class Kernel>
std::vector<float> run(const Exec& exec, const Inputs& in, Kernel kernel) {
  using V = Kokkos::View<float*, typename Exec::memory_space>;
  auto to_device = [](const std::vector<float>& h) {
    V d("in", h.size());
    Kokkos::deep_copy(d, Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()));
    return d;
  };
  const V q = to_device(in.q), k = to_device(in.keys_t), v = to_device(in.values);
  std::vector<float> acc(static_cast<std::size_t>(in.s.F * in.s.Pq * in.s.Cp), std::numeric_limits<float>::quiet_NaN());
  const V a = to_device(acc);
  kernel(exec, in.s, q.data(), k.data(), v.data(), a.data());
  exec.fence();
  Kokkos::deep_copy(Kokkos::View<float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(acc.data(), acc.size()), a);
  return acc;
}

const auto tiles = [](const auto& exec, const kd::AttentionShape& s, const float* q, const float* k, const float* v,
                      float* a) { kd::attention_softmax_tiles(exec, s, q, k, v, a); };
const auto team = [](const auto& exec, const kd::AttentionShape& s, const float* q, const float* k, const float* v,
                     float* a) { kd::attention_softmax_team(exec, s, q, k, v, a); };

// Two frames; 45 queries (a full block, then 13: a part-live block); 300 keys (two full key
// blocks and 44); 40 channels (padded to 64).
const Inputs kInputs = inputs(2, 45, 300, 40);

TEST(AttentionKernel, TeamGivesTheTilesBitsOnTheHost) {
  const auto want = run(Host(), kInputs, tiles);
  const auto got = run(Host(), kInputs, team);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
  // Not two empty results: every live output is a finite weighted mean of the values (|v| <= 2).
  const auto& s = kInputs.s;
  for (std::int64_t f = 0; f < s.F; ++f) {
    for (std::int64_t p = 0; p < s.P; ++p) {
      for (int c = 0; c < s.C; ++c) {
        const float x = got[static_cast<std::size_t>((f * s.Pq + p) * s.Cp + c)];
        ASSERT_TRUE(std::isfinite(x) && std::fabs(x) <= 2.0f) << "f " << f << " p " << p << " c " << c << ": " << x;
      }
    }
  }
}

// On a device the team kernel runs there; its arithmetic may fuse differently from the host's.
TEST(AttentionKernel, TeamOnTheDeviceMatchesTheHost) {
  using Exec = Kokkos::DefaultExecutionSpace;
  if (Kokkos::SpaceAccessibility<Kokkos::HostSpace, Exec::memory_space>::accessible) {
    GTEST_SKIP() << "the default execution space is the host's (TeamGivesTheTilesBitsOnTheHost)";
  }
  const auto want = run(Host(), kInputs, tiles);
  const auto got = run(Exec(), kInputs, team);
  const auto& s = kInputs.s;
  for (std::int64_t f = 0; f < s.F; ++f) {
    for (std::int64_t p = 0; p < s.P; ++p) {
      for (int c = 0; c < s.C; ++c) {
        const auto i = static_cast<std::size_t>((f * s.Pq + p) * s.Cp + c);
        ASSERT_NEAR(got[i], want[i], 1e-5f * std::max(1.0f, std::fabs(want[i])))
            << "f " << f << " p " << p << " c " << c;
      }
    }
  }
}

}  // namespace
