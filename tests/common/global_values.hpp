#pragma once
// Values that tell where they came from: each element of a test array holds a
// function of its global index. No gtest here, so that a benchmark can check
// its halos with the same values (perf/bench_halo).

#include <cstdint>
#include <functional>
#include <vector>

namespace khalo::test {

using Index = std::vector<std::int64_t>;

/// Calls f(index) for every multi-index of \p extents, in C order.
inline void for_each_index(const Index& extents, const std::function<void(const Index&)>& f) {
  for (auto e : extents) {
    if (e == 0) return;
  }
  Index i(extents.size(), 0);
  for (;;) {
    f(i);
    int d = static_cast<int>(extents.size()) - 1;
    while (d >= 0 && ++i[static_cast<std::size_t>(d)] == extents[static_cast<std::size_t>(d)]) {
      i[static_cast<std::size_t>(d)] = 0;
      --d;
    }
    if (d < 0) return;
  }
}

/// A value that tells where it came from: a positive integer below 2^23, so
/// exact in float32 as in double at any rank and extent. A step of one (or of
/// one in each of several dimensions) along any dimension changes it, since
/// each dimension has its own odd weight modulo 2^23 and no small sum of them
/// vanishes; it is never 0, so a zero-filled ghost differs from any value.
inline double value_at(const Index& global) {
  constexpr std::int64_t kModulus = std::int64_t{1} << 23;
  // Fastest logical dimension (the last) first.
  constexpr std::int64_t kWeights[] = {1, 1021, 65537, 8191, 131071, 524287, 2039, 40961};
  std::int64_t v = 0;
  std::size_t k = 0;
  for (auto it = global.rbegin(); it != global.rend(); ++it, ++k) {
    v = (v + (*it + 1) * kWeights[k % 8]) % kModulus;
  }
  return static_cast<double>(v + 1);
}

}  // namespace khalo::test
