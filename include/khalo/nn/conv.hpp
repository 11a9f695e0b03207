#pragma once
/// \file
/// Convolutions of the decoder stage, on any Kokkos backend and for any
/// memory format: causal Conv3d (3x3x3, 1x1x1, 3x1x1; stride 1; bias) and the
/// upsampler's per-frame Conv2d 3x3 fused with nearest 2x upsampling. This
/// header checks a launch, chooses its kernel and runs it; the weights' packing
/// is in conv_weights.hpp, the kernels in detail/conv_host_*.hpp.
///
/// The input carries what padding needs: KT-1 leading frames (zeros or the
/// causal cache) and, for KH = 3, one ghost row above and below (from the halo
/// exchange, or zeros at the edge of the image). W is padded in the kernel.
/// Every output element is summed in one fixed order (bias, then taps, then
/// input channels), whatever the tiling or the band a rank holds: results are
/// bit-identical on any number of ranks.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/conv_weights.hpp>
#include <khalo/nn/detail/conv_common.hpp>
#include <khalo/nn/detail/conv_host_channel_tile.hpp>
#include <khalo/nn/detail/conv_host_row_tile.hpp>
#include <khalo/nn/detail/conv_tuning.hpp>
#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace khalo::nn {

namespace detail {

inline int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }

// The lowest and one past the highest element a launch's output box touches in \p s (pointer
// arithmetic only: the data may live on a device).
inline std::pair<const float*, const float*> span(const Strided5& s, const ConvLaunch& l) {
  const std::int64_t extent[5] = {l.n, l.cout_count, l.frames, l.row_end - l.row_begin, l.out_width};
  std::int64_t lo = l.row_begin * s.stride[3], hi = lo;
  for (int d = 0; d < 5; ++d) {
    const std::int64_t reach = (extent[d] - 1) * s.stride[d];
    (reach < 0 ? lo : hi) += reach;
  }
  return {s.data + lo, s.data + hi + 1};
}

template <int KT, int KH, int KW, bool UP, class Exec>
void conv_dispatch(const Exec& exec, const ConvLaunch& l, const PackedWeights& w) {
  // The tile must divide the launch's channels, its first channel and the packing.
  const int g = gcd(w.pack, gcd(l.cout_begin, l.cout_count));
  if constexpr (!UP && KH == KW) {
    const bool rows_fit = l.in.stride[4] == 1 && l.out.stride[4] == 1 &&
                          (l.residual.data == nullptr || l.residual.stride[4] == 1) && l.in_width == l.out_width;
    if (rows_fit && w.pack == 12 && !w.taps_outer && l.cout_begin % 12 == 0) {
      if (l.cout_count % 12 == 0 && l.out_width >= 32) return conv_row_tile<12, 32, KT, KW>(exec, l, w);
      if (l.cout_count % 24 == 0 && l.out_width >= 16) return conv_row_tile<24, 16, KT, KW>(exec, l, w);
    }
  }
  switch (channel_tile(g)) {
    case 48: return conv_channel_tile<8, 48, KT, KH, KW, UP>(exec, l, w);
    case 32: return conv_channel_tile<8, 32, KT, KH, KW, UP>(exec, l, w);
    case 16: return conv_channel_tile<8, 16, KT, KH, KW, UP>(exec, l, w);
    case 8: return conv_channel_tile<8, 8, KT, KH, KW, UP>(exec, l, w);
    case 4: return conv_channel_tile<8, 4, KT, KH, KW, UP>(exec, l, w);
    default: return conv_channel_tile<8, 1, KT, KH, KW, UP>(exec, l, w);
  }
}

}  // namespace detail

/// Runs one convolution launch. \p upsample selects the fused nearest-2x
/// Conv2d (weights with kt = 1, kh = kw = 3).
template <class Exec, class MemSpace>
void conv(const Exec& exec, const ConvLaunch& l, const ConvWeights<MemSpace>& w, bool upsample = false) {
  const detail::PackedWeights pw(w);
  if (l.cout_begin < 0 || l.cout_begin + l.cout_count > w.cout) {
    throw std::invalid_argument("khalo::nn::conv: output channels outside the weights");
  }
  const bool empty = l.n <= 0 || l.cout_count <= 0 || l.frames <= 0 || l.row_end <= l.row_begin || l.out_width <= 0;
  if (l.residual.data != nullptr && !empty) {
    const auto o = detail::span(l.out, l);
    const auto r = detail::span(l.residual, l);
    if (r.first < o.second && o.first < r.second) {
      throw std::invalid_argument(
          "khalo::nn::conv: the residual overlaps the output (the kernels keep partial "
          "sums in the output before they add the residual)");
    }
  }
  if (upsample) {
    if (w.kt != 1 || w.kh != 3 || w.kw != 3)
      throw std::invalid_argument("khalo::nn::conv: upsampling needs a 3x3 kernel");
    return detail::conv_dispatch<1, 3, 3, true>(exec, l, pw);
  }
  if (w.kt == 3 && w.kh == 3 && w.kw == 3) return detail::conv_dispatch<3, 3, 3, false>(exec, l, pw);
  if (w.kt == 1 && w.kh == 1 && w.kw == 1) return detail::conv_dispatch<1, 1, 1, false>(exec, l, pw);
  if (w.kt == 3 && w.kh == 1 && w.kw == 1) return detail::conv_dispatch<3, 1, 1, false>(exec, l, pw);
  throw std::invalid_argument("khalo::nn::conv: unsupported kernel " + std::to_string(w.kt) + "x" +
                              std::to_string(w.kh) + "x" + std::to_string(w.kw));
}

}  // namespace khalo::nn
