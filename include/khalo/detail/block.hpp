#pragma once
/// \file
/// A block (box) of a strided array walked in memory order, and the kernels
/// that copy it to and from a flat buffer. One generic mechanism serves every
/// rank and layout: the block's dimensions are put in the array's stride order
/// and merged where they are adjacent in memory, so a kernel walks the fewest
/// dimensions and reads or writes memory sequentially.

#include <khalo/detail/strides.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace khalo::detail {

/// A block [lo, lo+extent) of an array; host-side description.
struct Block {
  Extents lo;
  Extents extent;
  std::int64_t count() const { return element_count(extent); }
};

/// Device-copyable walk over a block in memory order.
struct BlockWalk {
  int ndims = 0;
  Kokkos::Array<std::int64_t, 8> extent{};  // slowest first, merged dims
  Kokkos::Array<std::int64_t, 8> stride{};
  std::int64_t base = 0;   // offset of the block's first element
  std::int64_t count = 0;  // elements in the block

  /// Offset (in elements, from the array's data pointer) of the block's i-th element in memory order.
  KOKKOS_INLINE_FUNCTION std::int64_t offset(std::int64_t i) const {
    std::int64_t off = base;
    for (int k = ndims - 1; k > 0; --k) {
      off += (i % extent[k]) * stride[k];
      i /= extent[k];
    }
    return ndims > 0 ? off + i * stride[0] : off;
  }
  /// True when the block is one gap-free range of memory.
  bool contiguous() const { return count == 0 || (ndims <= 1 && (ndims == 0 || stride[0] == 1)); }
};

/// Builds the walk over \p block of an array with \p strides stored in \p order.
/// With \p merge false, every dimension of extent > 1 is kept, so two walks
/// over blocks of the same extents (and order) visit elements in step.
inline BlockWalk make_walk(const Extents& strides, const std::vector<int>& order, const Block& block,
                           bool merge = true) {
  BlockWalk w;
  w.count = block.count();
  for (std::size_t d = 0; d < strides.size(); ++d) w.base += block.lo[d] * strides[d];
  if (w.count == 0) return w;
  // Fastest first, skipping unit extents, merging a dim into the faster one it encloses exactly.
  std::vector<std::int64_t> ext;
  std::vector<std::int64_t> str;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto d = static_cast<std::size_t>(*it);
    if (block.extent[d] == 1) continue;
    if (merge && !ext.empty() && str.back() * ext.back() == strides[d]) {
      ext.back() *= block.extent[d];
    } else {
      ext.push_back(block.extent[d]);
      str.push_back(strides[d]);
    }
  }
  if (ext.empty()) {  // a single element
    ext.push_back(1);
    str.push_back(1);
  }
  w.ndims = static_cast<int>(ext.size());
  for (int k = 0; k < w.ndims; ++k) {  // back to slowest first
    w.extent[k] = ext[ext.size() - 1 - static_cast<std::size_t>(k)];
    w.stride[k] = str[str.size() - 1 - static_cast<std::size_t>(k)];
  }
  return w;
}

/// Copies a block of \p data into the flat buffer \p buf, in memory order.
template <class Exec, class T>
void pack_block(const Exec& exec, const T* data, const BlockWalk& w, T* buf) {
  Kokkos::parallel_for(
      "khalo::pack", Kokkos::RangePolicy<Exec>(exec, 0, w.count),
      KOKKOS_LAMBDA(const std::int64_t i) { buf[i] = data[w.offset(i)]; });
}

/// Copies the flat buffer \p buf into a block of \p data, in memory order.
template <class Exec, class T>
void unpack_block(const Exec& exec, T* data, const BlockWalk& w, const T* buf) {
  Kokkos::parallel_for(
      "khalo::unpack", Kokkos::RangePolicy<Exec>(exec, 0, w.count),
      KOKKOS_LAMBDA(const std::int64_t i) { data[w.offset(i)] = buf[i]; });
}

/// Copies a block of \p src onto a block of \p dst of the same extents;
/// both walks are unmerged and in the same order, so element i matches.
template <class Exec, class T>
void copy_block(const Exec& exec, const T* src, const BlockWalk& ws, T* dst, const BlockWalk& wd) {
  Kokkos::parallel_for(
      "khalo::copy_block", Kokkos::RangePolicy<Exec>(exec, 0, ws.count),
      KOKKOS_LAMBDA(const std::int64_t i) { dst[wd.offset(i)] = src[ws.offset(i)]; });
}

/// Sets every element of a block to T{} (zero for arithmetic types).
template <class Exec, class T>
void zero_block(const Exec& exec, T* data, const BlockWalk& w) {
  Kokkos::parallel_for(
      "khalo::zero", Kokkos::RangePolicy<Exec>(exec, 0, w.count),
      KOKKOS_LAMBDA(const std::int64_t i) { data[w.offset(i)] = T{}; });
}

/// Copies a block onto the block \p shift elements further on in the same array.
template <class Exec, class T>
void shift_copy_block(const Exec& exec, T* data, const BlockWalk& w, std::int64_t shift) {
  Kokkos::parallel_for(
      "khalo::copy", Kokkos::RangePolicy<Exec>(exec, 0, w.count), KOKKOS_LAMBDA(const std::int64_t i) {
        const std::int64_t o = w.offset(i);
        data[o + shift] = data[o];
      });
}

}  // namespace khalo::detail
