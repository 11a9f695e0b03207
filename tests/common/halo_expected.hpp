#pragma once
// What a single rank computes on the gathered global array: the value every
// ghost element must hold after an exchange, following the dimension-ordered
// semantics (the last split dimension whose index lies outside the global
// array decides, through its boundary policy). No gtest here: perf/bench_halo
// checks its halos with it too.

#include <global_values.hpp>
#include <khalo/decomposition.hpp>
#include <khalo/halo_spec.hpp>

namespace khalo::test {

inline constexpr double sentinel = -7.0;

/// Expected value at \p global (may lie outside the array where ghosts are).
/// `sentinel` stands for "left untouched".
inline double expected_value(const Decomposition& dec, const HaloSpec& spec, Index global) {
  const auto& split = dec.split_dims();
  for (int k = static_cast<int>(split.size()) - 1; k >= 0; --k) {
    const int d = split[static_cast<std::size_t>(k)];
    const auto n = dec.global_extents()[static_cast<std::size_t>(d)];
    auto& g = global[static_cast<std::size_t>(d)];
    if (g >= 0 && g < n) continue;
    const Boundary b = spec.of(d).boundary;
    const bool wraps = b == Boundary::periodic || dec.grid().periodic(dec.grid_dim_of(d));
    if (wraps) {
      g = ((g % n) + n) % n;
    } else if (b == Boundary::zero) {
      return 0.0;
    } else if (b == Boundary::none) {
      return sentinel;
    } else if (b == Boundary::replicate) {
      g = g < 0 ? 0 : n - 1;
    } else {  // reflect, without the edge
      g = g < 0 ? -g : 2 * (n - 1) - g;
    }
    return expected_value(dec, spec, global);
  }
  return value_at(global);
}

/// Global index of a local element of a View with ghost layers.
inline Index global_of(const Decomposition& dec, const HaloSpec& spec, const Index& local) {
  Index g = local;
  for (int d = 0; d < dec.rank(); ++d) {
    if (dec.is_split(d)) g[static_cast<std::size_t>(d)] += dec.owned(d).begin - spec.of(d).low;
  }
  return g;
}

/// True when the local element is one this rank owns.
inline bool is_owned(const Decomposition& dec, const HaloSpec& spec, const Index& local) {
  for (int d = 0; d < dec.rank(); ++d) {
    if (!dec.is_split(d)) continue;
    const auto l = local[static_cast<std::size_t>(d)] - spec.of(d).low;
    if (l < 0 || l >= dec.owned(d).size()) return false;
  }
  return true;
}

/// Local extents (owned plus ghosts) of a View for this rank.
inline Index local_extents(const Decomposition& dec, const HaloSpec& spec) {
  Index e = dec.local_extents();
  for (int d : dec.split_dims()) e[static_cast<std::size_t>(d)] += spec.of(d).low + spec.of(d).high;
  return e;
}

}  // namespace khalo::test
