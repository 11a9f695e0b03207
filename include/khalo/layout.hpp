#pragma once
/// \file
/// Memory layouts of Kokkos Views: stride order, memory format (docs/memory-formats.md),
/// dense allocation in a given order or like another View, contiguity queries.

#include <khalo/detail/huge_pages.hpp>
#include <khalo/detail/strides.hpp>

#include <Kokkos_Core.hpp>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

namespace khalo {

/// Highest View rank that khalo handles (Kokkos' own limit).
inline constexpr int max_rank = 8;

/// Dimensions of a View from the slowest-varying to the fastest-varying in memory.
using StrideOrder = std::vector<int>;

/// Storage order of a rank-4 (N, C, H, W) or rank-5 (N, C, D, H, W) tensor.
enum class MemoryFormat {
  contiguous,        ///< N C (D) H W, LayoutRight
  channels_last,     ///< N H W C (rank 4)
  channels_last_3d,  ///< N D H W C (rank 5)
  column_major,      ///< W H (D) C N, LayoutLeft
  permuted,          ///< any other dense permutation, kept as it is
};

/// The name used on command lines and in snapshot attributes.
inline std::string to_string(MemoryFormat f) {
  switch (f) {
    case MemoryFormat::contiguous: return "contiguous";
    case MemoryFormat::channels_last: return "channels_last";
    case MemoryFormat::channels_last_3d: return "channels_last_3d";
    case MemoryFormat::column_major: return "column_major";
    case MemoryFormat::permuted: return "permuted";
  }
  return "unknown";
}

/// Parses a format name; throws std::invalid_argument for anything else.
inline MemoryFormat memory_format_from_string(std::string_view name) {
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last, MemoryFormat::channels_last_3d,
                 MemoryFormat::column_major, MemoryFormat::permuted}) {
    if (name == to_string(f)) {
      return f;
    }
  }
  throw std::invalid_argument("khalo::memory_format_from_string: unknown memory format '" + std::string(name) +
                              "' (expected contiguous, channels_last, channels_last_3d, column_major or permuted)");
}

/// The stride order of a named format for a tensor of \p rank.
/// Throws std::invalid_argument for `permuted` (it has no single order) or a
/// channels-last format on the wrong rank.
inline StrideOrder format_order(MemoryFormat f, int rank) {
  if (rank < 1 || rank > max_rank) {
    throw std::invalid_argument("khalo::format_order: rank " + std::to_string(rank) + " is outside 1.." +
                                std::to_string(max_rank));
  }
  StrideOrder order(static_cast<std::size_t>(rank));
  switch (f) {
    case MemoryFormat::contiguous:
      for (int d = 0; d < rank; ++d) order[static_cast<std::size_t>(d)] = d;
      return order;
    case MemoryFormat::column_major:
      for (int d = 0; d < rank; ++d) order[static_cast<std::size_t>(d)] = rank - 1 - d;
      return order;
    case MemoryFormat::channels_last:
    case MemoryFormat::channels_last_3d: {
      const int want = f == MemoryFormat::channels_last ? 4 : 5;
      if (rank != want) {
        throw std::invalid_argument("khalo::format_order: " + to_string(f) + " needs rank " + std::to_string(want) +
                                    ", got rank " + std::to_string(rank));
      }
      order = {0};
      for (int d = 2; d < rank; ++d) order.push_back(d);
      order.push_back(1);
      return order;
    }
    case MemoryFormat::permuted: break;
  }
  throw std::invalid_argument("khalo::format_order: format '" + to_string(f) + "' has no fixed order");
}

namespace detail {

template <class View>
Extents extents_of(const View& v) {
  Extents e(static_cast<std::size_t>(View::rank));
  for (std::size_t d = 0; d < e.size(); ++d) e[d] = static_cast<std::int64_t>(v.extent(d));
  return e;
}

template <class View>
Extents strides_of(const View& v) {
  Extents s(static_cast<std::size_t>(View::rank));
  for (std::size_t d = 0; d < s.size(); ++d) s[d] = static_cast<std::int64_t>(v.stride(d));
  return s;
}

/// Orders worth recognising for a rank, the declared layout's own first.
template <class Layout>
std::vector<StrideOrder> candidate_orders(int rank) {
  std::vector<StrideOrder> c;
  if (std::is_same_v<Layout, Kokkos::LayoutLeft>) {
    c.push_back(format_order(MemoryFormat::column_major, rank));
  }
  c.push_back(format_order(MemoryFormat::contiguous, rank));
  if (rank == 4) c.push_back(format_order(MemoryFormat::channels_last, 4));
  if (rank == 5) c.push_back(format_order(MemoryFormat::channels_last_3d, 5));
  if (!std::is_same_v<Layout, Kokkos::LayoutLeft>) {
    c.push_back(format_order(MemoryFormat::column_major, rank));
  }
  return c;
}

/// The value in a rank's layout signature for a pair that says nothing: the
/// wildcard of detail::disagreement() (detail::kAnyValue).
inline constexpr std::int64_t kLayoutAnyPair = INT64_MIN;

/// What ranks must agree on about the layout of Views of the same call: for
/// each pair of dimensions i < j, whether i is slower in memory (1) or not (0).
/// The stride of a size-1 extent says nothing (a band one layer thick may infer
/// any position for that dimension), so a pair that involves one is
/// kLayoutAnyPair. Always rank * (rank - 1) / 2 entries.
inline std::vector<std::int64_t> layout_signature(const Extents& extents, const StrideOrder& order) {
  const std::size_t rank = order.size();
  std::vector<std::size_t> position(rank, 0);
  for (std::size_t k = 0; k < rank; ++k) position[static_cast<std::size_t>(order[k])] = k;
  std::vector<std::int64_t> sig;
  for (std::size_t i = 0; i < rank; ++i) {
    for (std::size_t j = i + 1; j < rank; ++j) {
      const bool says_nothing = i >= extents.size() || j >= extents.size() || extents[i] == 1 || extents[j] == 1;
      sig.push_back(says_nothing ? kLayoutAnyPair : (position[i] < position[j] ? 1 : 0));
    }
  }
  return sig;
}

}  // namespace detail

/// The order in which \p v stores its dimensions, slowest first. Dimensions of
/// extent 1 (whose stride says nothing) take the place that the View's declared
/// layout, or an exactly matching named format, gives them.
template <class View>
StrideOrder stride_order(const View& v) {
  constexpr int rank = static_cast<int>(View::rank);
  static_assert(rank >= 1 && rank <= max_rank, "khalo::stride_order: View rank must be 1..8");
  return detail::infer_order(detail::extents_of(v), detail::strides_of(v),
                             detail::candidate_orders<typename View::array_layout>(rank));
}

/// The memory format of a rank-4 or rank-5 View (`permuted` when it matches no named one).
template <class View>
MemoryFormat memory_format(const View& v) {
  constexpr int rank = static_cast<int>(View::rank);
  static_assert(rank == 4 || rank == 5, "khalo::memory_format: needs a rank-4 or rank-5 View");
  const StrideOrder order = stride_order(v);
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last, MemoryFormat::channels_last_3d,
                 MemoryFormat::column_major}) {
    if ((f == MemoryFormat::channels_last && rank != 4) || (f == MemoryFormat::channels_last_3d && rank != 5)) {
      continue;
    }
    if (format_order(f, rank) == order) return f;
  }
  return MemoryFormat::permuted;
}

/// The LayoutStride of a dense array with \p extents stored in \p order (slowest first); throws
/// std::invalid_argument for an order that is not a permutation or a negative extent, and
/// std::length_error for extents whose element count does not fit in 64 bits.
inline Kokkos::LayoutStride dense_layout(const std::vector<std::int64_t>& extents, const StrideOrder& order) {
  const int rank = static_cast<int>(extents.size());
  std::vector<int> seen(extents.size(), 0);
  bool valid = order.size() == extents.size() && rank >= 1 && rank <= max_rank;
  for (int d : order) {
    valid = valid && d >= 0 && d < rank && seen[static_cast<std::size_t>(d)]++ == 0;
  }
  if (!valid) {
    throw std::invalid_argument("khalo::dense_layout: the order must be a permutation of 0.." +
                                std::to_string(rank - 1) + " for a rank-" + std::to_string(rank) + " array");
  }
  Kokkos::LayoutStride layout;
  const detail::Extents strides = detail::dense_strides(extents, order);
  for (std::size_t d = 0; d < extents.size(); ++d) {
    if (extents[d] < 0) {
      throw std::invalid_argument("khalo::dense_layout: negative extent in dimension " + std::to_string(d));
    }
    layout.dimension[d] = static_cast<std::size_t>(extents[d]);
    layout.stride[d] = static_cast<std::size_t>(strides[d]);
  }
  return layout;
}

/// Allocates a dense View of \p DataType (e.g. `float*****`) with \p extents
/// stored in \p order, in \p MemorySpace.
template <class DataType, class MemorySpace = Kokkos::DefaultExecutionSpace::memory_space>
Kokkos::View<DataType, Kokkos::LayoutStride, MemorySpace> allocate(const std::string& label,
                                                                   const std::vector<std::int64_t>& extents,
                                                                   const StrideOrder& order) {
  using V = Kokkos::View<DataType, Kokkos::LayoutStride, MemorySpace>;
  if (extents.size() != static_cast<std::size_t>(V::rank)) {
    throw std::invalid_argument("khalo::allocate: " + std::to_string(extents.size()) + " extents for a rank-" +
                                std::to_string(static_cast<int>(V::rank)) + " View");
  }
  if constexpr (std::is_same_v<MemorySpace, Kokkos::HostSpace>) {
    // Large host tensors get huge pages (see advise_huge_pages): the advice must come
    // before the first touch, so the View is zeroed after it, not by its constructor.
    V v(Kokkos::view_alloc(label, Kokkos::WithoutInitializing), dense_layout(extents, order));
    const std::size_t bytes = v.span() * sizeof(typename V::value_type);
    detail::advise_huge_pages(v.data(), bytes);
    Kokkos::deep_copy(v, typename V::value_type{});
    return v;
  } else {
    return V(Kokkos::view_alloc(label), dense_layout(extents, order));
  }
}

/// Allocates a dense View in the same memory format as \p like, with \p like's
/// extents or the ones given: a buffer that extends \p like without any layout
/// conversion (copies between the two walk memory in the same order).
template <class View>
auto allocate_like(const View& like, const std::string& label, std::vector<std::int64_t> extents = {}) {
  if (extents.empty()) extents = detail::extents_of(like);
  return allocate<typename View::non_const_data_type, typename View::memory_space>(label, extents, stride_order(like));
}

/// Allocates a dense rank-4/5 View in a named memory format.
template <class DataType, class MemorySpace = Kokkos::DefaultExecutionSpace::memory_space>
auto allocate(const std::string& label, const std::vector<std::int64_t>& extents, MemoryFormat format) {
  return allocate<DataType, MemorySpace>(label, extents, format_order(format, static_cast<int>(extents.size())));
}

/// True when the View's elements fill its memory span without gaps.
template <class View>
bool is_contiguous(const View& v) {
  return v.span_is_contiguous();
}

/// True when the block of \p v starting at \p lo with extents \p block is one
/// gap-free range of memory (so MPI can send or receive it without packing).
template <class View>
bool is_block_contiguous(const View& v, const std::vector<std::int64_t>& lo, const std::vector<std::int64_t>& block) {
  constexpr std::size_t rank = static_cast<std::size_t>(View::rank);
  if (lo.size() != rank || block.size() != rank) {
    throw std::invalid_argument("khalo::is_block_contiguous: block must have one entry per dimension");
  }
  for (std::size_t d = 0; d < rank; ++d) {
    if (lo[d] < 0 || block[d] < 0 || lo[d] + block[d] > static_cast<std::int64_t>(v.extent(d))) {
      throw std::invalid_argument("khalo::is_block_contiguous: block exceeds the View in dimension " +
                                  std::to_string(d));
    }
  }
  const std::int64_t count = detail::element_count(block);
  return count == 0 || detail::block_span(block, detail::strides_of(v)) == count;
}

}  // namespace khalo
