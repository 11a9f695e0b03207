#pragma once
/// \file
/// Host-side arithmetic on extents, strides and stride orders. No Kokkos here:
/// the View-facing functions in layout.hpp reduce to these.

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo::detail {

using Extents = std::vector<std::int64_t>;

/// Strides of a dense array whose dimensions, from slowest to fastest, are \p order; throws
/// std::length_error where its element count does not fit in 64 bits (no such array can exist,
/// and a wrapped stride would describe a small one).
inline Extents dense_strides(const Extents& extents, const std::vector<int>& order) {
  Extents strides(extents.size(), 0);
  std::int64_t step = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    strides[static_cast<std::size_t>(*it)] = step;
    if (__builtin_mul_overflow(step, std::max<std::int64_t>(extents[static_cast<std::size_t>(*it)], 1), &step)) {
      throw std::length_error("khalo: a dense array of these extents has more elements than 64 bits count");
    }
  }
  return strides;
}

/// True when the strides are exactly those of a dense array in \p order.
inline bool is_dense_in(const Extents& extents, const Extents& strides, const std::vector<int>& order) {
  return dense_strides(extents, order) == strides;
}

/// True when walking dims in \p order (slow to fast) nests each one inside the
/// previous: the layout, dense or a sub-block of a dense array, stores data in
/// that order. Dimensions of extent 1 say nothing and are skipped.
inline bool nests_in(const Extents& extents, const Extents& strides, const std::vector<int>& order) {
  std::int64_t inner_span = 0;  // elements spanned by the dims already seen (fastest first)
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto d = static_cast<std::size_t>(*it);
    if (extents[d] <= 1) {
      continue;
    }
    if (strides[d] < std::max<std::int64_t>(inner_span, 1)) {
      return false;
    }
    inner_span = strides[d] * (extents[d] - 1) + std::max<std::int64_t>(inner_span, 1);
  }
  return true;
}

/// Dimensions sorted by stride, largest first; ties (size-1 dims) keep \p preferred's order.
inline std::vector<int> order_by_stride(const Extents& strides, const std::vector<int>& preferred) {
  std::vector<int> order = preferred;
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return strides[static_cast<std::size_t>(a)] > strides[static_cast<std::size_t>(b)];
  });
  return order;
}

/// The stride order of an array: the first candidate that matches its strides
/// exactly, else the first that the strides nest in, else a sort by stride.
/// Candidates come first in the caller's preference (the declared layout),
/// which is what decides for dimensions of extent 1.
inline std::vector<int> infer_order(const Extents& extents, const Extents& strides,
                                    const std::vector<std::vector<int>>& candidates) {
  for (const auto& c : candidates) {
    if (is_dense_in(extents, strides, c)) {
      return c;
    }
  }
  for (const auto& c : candidates) {
    if (nests_in(extents, strides, c)) {
      return c;
    }
  }
  return order_by_stride(strides, candidates.front());
}

/// Memory span (in elements) of the block [lo, lo+ext) of an array with these strides.
inline std::int64_t block_span(const Extents& block, const Extents& strides) {
  std::int64_t span = 1;
  for (std::size_t d = 0; d < block.size(); ++d) {
    if (block[d] == 0) {
      return 0;
    }
    span += (block[d] - 1) * strides[d];
  }
  return span;
}

inline std::int64_t element_count(const Extents& extents) {
  return std::accumulate(extents.begin(), extents.end(), std::int64_t{1}, std::multiplies<>());
}

/// A shape for messages: "(2, 3)", "(4)", "()".
inline std::string shape_text(const Extents& shape) {
  std::string t = "(";
  for (std::size_t i = 0; i < shape.size(); ++i) t += (i ? ", " : "") + std::to_string(shape[i]);
  return t + ")";
}

}  // namespace khalo::detail
