#pragma once
/// \file
/// Activations of the decoder: rank-5 float tensors (N, C, T, H, W) in a chosen
/// memory format, and the pointer-plus-strides view of them that kernels use
/// (indexing a View with operator() in a hot loop is many times slower).

#include <khalo/layout.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace khalo::nn {

/// An activation (N, C, T, H, W) in any dense memory format (strides say which).
template <class MemSpace = Kokkos::DefaultExecutionSpace::memory_space>
using Activation = Kokkos::View<float*****, Kokkos::LayoutStride, MemSpace>;

/// Allocates an activation of extents (N, C, T, H, W) in \p format.
template <class MemSpace = Kokkos::DefaultExecutionSpace::memory_space>
Activation<MemSpace> make_activation(const std::string& label, const std::vector<std::int64_t>& extents,
                                     MemoryFormat format) {
  return allocate<float*****, MemSpace>(label, extents, format);
}

/// Pointer and element strides of a rank-5 tensor, indexed (n, c, t, h, w).
struct Strided5 {
  float* data = nullptr;                    ///< element (0, 0, 0, 0, 0)
  Kokkos::Array<std::int64_t, 5> stride{};  ///< element strides of n, c, t, h, w

  /// Element offset of (n, c, t, h, w) from data.
  KOKKOS_INLINE_FUNCTION std::int64_t offset(std::int64_t n, std::int64_t c, std::int64_t t, std::int64_t h,
                                             std::int64_t w) const {
    return n * stride[0] + c * stride[1] + t * stride[2] + h * stride[3] + w * stride[4];
  }
  /// Element (n, c, t, h, w).
  KOKKOS_INLINE_FUNCTION float& operator()(std::int64_t n, std::int64_t c, std::int64_t t, std::int64_t h,
                                           std::int64_t w) const {
    return data[offset(n, c, t, h, w)];
  }
  /// The same tensor starting at element (n, c, t, h, w).
  Strided5 shifted(std::int64_t n, std::int64_t c, std::int64_t t, std::int64_t h, std::int64_t w) const {
    Strided5 s = *this;
    s.data += offset(n, c, t, h, w);
    return s;
  }
};

namespace detail {

/// for_each_index's kernel: decodes the flat index, w fastest (a functor: see block.hpp).
template <class F>
struct IndexLoop {
  F f;
  int C, T, H, W;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    std::int64_t r = i;
    const int w = static_cast<int>(r % W);
    r /= W;
    const int h = static_cast<int>(r % H);
    r /= H;
    const int t = static_cast<int>(r % T);
    r /= T;
    const int c = static_cast<int>(r % C);
    f(static_cast<int>(r / C), c, t, h, w);
  }
};

}  // namespace detail

/// Calls f(n, c, t, h, w) for every index of an N x C x T x H x W region, in parallel on \p exec:
/// one decode of the flat index per element, w fastest. \p f is a functor with a
/// KOKKOS_INLINE_FUNCTION operator(); a KOKKOS_LAMBDA only from a function of one source file,
/// never from a template or inline function in a header (khalo/detail/block.hpp says why).
template <class Exec, class F>
void for_each_index(const std::string& label, const Exec& exec, int N, int C, int T, int H, int W, const F& f) {
  const std::int64_t items = static_cast<std::int64_t>(N) * C * T * H * W;
  Kokkos::parallel_for(label, Kokkos::RangePolicy<Exec>(exec, 0, items), detail::IndexLoop<F>{f, C, T, H, W});
}

/// The pointer and strides of a rank-5 View.
template <class View>
Strided5 strided(const View& v) {
  static_assert(static_cast<int>(View::rank) == 5, "khalo::nn::strided: rank-5 tensors only");
  Strided5 s;
  s.data = v.data();
  for (int d = 0; d < 5; ++d) s.stride[d] = static_cast<std::int64_t>(v.stride(d));
  return s;
}

}  // namespace khalo::nn
