#pragma once
/// \file
/// Convolutions of the decoder stage, on any Kokkos backend and for any
/// memory format: causal Conv3d (3x3x3, 1x1x1, 3x1x1; stride 1; bias) and the
/// upsampler's per-frame Conv2d 3x3 fused with nearest 2x upsampling.
///
/// The input carries what padding needs: KT-1 leading frames (zeros or the
/// causal cache) and, for KH = 3, one ghost row above and below (from the halo
/// exchange, or zeros at the edge of the image). W is padded in the kernel.
/// Every output element is summed in one fixed order (bias, then taps, then
/// input channels), whatever the tiling or the band a rank holds: results are
/// bit-identical on any number of ranks.

#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo::nn {

/// Weights of one convolution, packed [kt][kh][kw][cin][cout] so that the
/// innermost loop runs over contiguous output channels.
template <class MemSpace = Kokkos::DefaultExecutionSpace::memory_space>
struct ConvWeights {
  int cout = 0, cin = 0, kt = 1, kh = 1, kw = 1;
  Kokkos::View<float*, MemSpace> weight;  // packed
  Kokkos::View<float*, MemSpace> bias;    // cout

  /// From PyTorch's layout (cout, cin, kt, kh, kw) (a Conv2d passes kt = 1), in C order.
  static ConvWeights from_torch(const std::vector<float>& w, const std::vector<float>& b, int cout, int cin, int kt,
                                int kh, int kw) {
    const auto taps = static_cast<std::size_t>(kt * kh * kw);
    if (w.size() != static_cast<std::size_t>(cout) * static_cast<std::size_t>(cin) * taps ||
        b.size() != static_cast<std::size_t>(cout)) {
      throw std::invalid_argument("khalo::nn::ConvWeights: weight or bias size does not match the shape");
    }
    ConvWeights c;
    c.cout = cout;
    c.cin = cin;
    c.kt = kt;
    c.kh = kh;
    c.kw = kw;
    c.weight = Kokkos::View<float*, MemSpace>("khalo::conv::weight", w.size());
    c.bias = Kokkos::View<float*, MemSpace>("khalo::conv::bias", b.size());
    auto hw = Kokkos::create_mirror_view(c.weight);
    auto hb = Kokkos::create_mirror_view(c.bias);
    for (int o = 0; o < cout; ++o)
      for (int i = 0; i < cin; ++i)
        for (std::size_t k = 0; k < taps; ++k)
          hw((k * static_cast<std::size_t>(cin) + static_cast<std::size_t>(i)) * static_cast<std::size_t>(cout) +
             static_cast<std::size_t>(o)) =
              w[(static_cast<std::size_t>(o) * static_cast<std::size_t>(cin) + static_cast<std::size_t>(i)) * taps + k];
    for (int o = 0; o < cout; ++o) hb(static_cast<std::size_t>(o)) = b[static_cast<std::size_t>(o)];
    Kokkos::deep_copy(c.weight, hw);
    Kokkos::deep_copy(c.bias, hb);
    return c;
  }
  /// Multiply-adds per output element.
  std::int64_t macs_per_output() const { return static_cast<std::int64_t>(cin) * kt * kh * kw; }
};

/// One convolution launch: output rows [row_begin, row_end) of every frame.
struct ConvLaunch {
  Strided5 in;            ///< input, shifted so that (n, c, t, h, w) is the first tap of output (n, ., t, h, w)
  Strided5 out;           ///< output (n, c, t, h, w)
  Strided5 residual;      ///< added to the output when its data is not null (same indexing as out)
  int n = 1, frames = 1;  ///< batch and output frames
  int row_begin = 0, row_end = 0;  ///< output rows to compute
  int out_width = 0, in_width = 0;
  int cout_begin = 0, cout_count = 0;  ///< which output channels of the weights this launch computes
  /// Upsampling only: global index of this band's first input row (for the 2x row map).
  std::int64_t up_first_row = 0;
};

namespace detail {

// Unrolling the tile's W loop keeps its accumulators in registers (GCC needs telling).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define KHALO_UNROLL _Pragma("GCC unroll 16")
#else
#define KHALO_UNROLL
#endif

// Output channels per tile: the largest of these that divides the launch's count.
inline int channel_tile(int count) {
  for (int t : {48, 32, 16, 8, 4}) {
    if (count % t == 0) return t;
  }
  return 1;
}

// floor(a / 2) for a >= -2.
KOKKOS_INLINE_FUNCTION std::int64_t half_floor(std::int64_t a) { return (a + 2) / 2 - 1; }

/// WT output positions x COT output channels per tile; KT x KH x KW taps; UP:
/// the input is read through a nearest 2x upsampling (Conv2d of the upsampler).
template <int WT, int COT, int KT, int KH, int KW, bool UP, class Exec>
void conv_kernel(const Exec& exec, const ConvLaunch& L, const float* weight, const float* bias, int cin,
                 int cout_total) {
  const int rows = L.row_end - L.row_begin;
  if (rows <= 0 || L.frames <= 0 || L.out_width <= 0) return;
  const int cot_tiles = L.cout_count / COT;
  const std::int64_t items = static_cast<std::int64_t>(L.n) * L.frames * cot_tiles * rows;
  const ConvLaunch l = L;
  Kokkos::parallel_for(
      "khalo::nn::conv", Kokkos::RangePolicy<Exec>(exec, 0, items), KOKKOS_LAMBDA(const std::int64_t item) {
        std::int64_t rest = item;
        const int h = l.row_begin + static_cast<int>(rest % rows);
        rest /= rows;
        const int co0 = static_cast<int>(rest % cot_tiles) * COT;
        rest /= cot_tiles;
        const int t = static_cast<int>(rest % l.frames);
        const int n = static_cast<int>(rest / l.frames);
        const float* wbase = weight + l.cout_begin + co0;
        const std::int64_t sc = l.in.stride[1], sw = l.in.stride[4];
        for (int w0 = 0; w0 < l.out_width; w0 += WT) {
          const bool full_tile = w0 + WT <= l.out_width;
          float acc[WT][COT];
          for (int i = 0; i < WT; ++i)
            for (int o = 0; o < COT; ++o) acc[i][o] = bias[l.cout_begin + co0 + o];
          for (int kt = 0; kt < KT; ++kt) {
            for (int kh = 0; kh < KH; ++kh) {
              // The input row of this tap (with the ghost row at index 0 for KH = 3).
              std::int64_t in_row = h + kh;
              if (UP) in_row = half_floor(2 * l.up_first_row + h - 1 + kh) - l.up_first_row + 1;
              const float* xrow = l.in.data + n * l.in.stride[0] + (t + kt) * l.in.stride[2] + in_row * l.in.stride[3];
              for (int kw = 0; kw < KW; ++kw) {
                const float* wk = wbase + static_cast<std::int64_t>((kt * KH + kh) * KW + kw) * cin * cout_total;
                std::int64_t col[WT];
                bool valid[WT];
                for (int i = 0; i < WT; ++i) {
                  const std::int64_t c = UP ? half_floor(w0 + i - 1 + kw) : w0 + i + kw - (KW / 2);
                  valid[i] = c >= 0 && c < l.in_width && w0 + i < l.out_width;
                  col[i] = valid[i] ? c : 0;
                }
                // No padding under this tap of this tile: plain loads the compiler can schedule freely.
                const bool interior =
                    !UP && full_tile && w0 + kw - KW / 2 >= 0 && w0 + WT - 1 + kw - KW / 2 < l.in_width;
                if (interior) {
                  const float* x0 = xrow + (w0 + kw - (KW / 2)) * sw;
                  for (int ci = 0; ci < cin; ++ci) {
                    const float* x = x0 + ci * sc;
                    const float* wv = wk + static_cast<std::int64_t>(ci) * cout_total;
                    KHALO_UNROLL
                    for (int i = 0; i < WT; ++i) {
                      const float xv = x[i * sw];
                      for (int o = 0; o < COT; ++o) acc[i][o] += xv * wv[o];
                    }
                  }
                } else {
                  for (int ci = 0; ci < cin; ++ci) {
                    const float* x = xrow + ci * sc;
                    const float* wv = wk + static_cast<std::int64_t>(ci) * cout_total;
                    KHALO_UNROLL
                    for (int i = 0; i < WT; ++i) {
                      const float xv = valid[i] ? x[col[i] * sw] : 0.0f;
                      for (int o = 0; o < COT; ++o) acc[i][o] += xv * wv[o];
                    }
                  }
                }
              }
            }
          }
          for (int i = 0; i < WT && w0 + i < l.out_width; ++i) {
            for (int o = 0; o < COT; ++o) {
              const std::int64_t at = l.out.offset(n, co0 + o, t, h, w0 + i);
              float v = acc[i][o];
              if (l.residual.data != nullptr) v += l.residual(n, co0 + o, t, h, w0 + i);
              l.out.data[at] = v;
            }
          }
        }
      });
}

template <int KT, int KH, int KW, bool UP, class Exec>
void conv_dispatch(const Exec& exec, const ConvLaunch& l, const float* w, const float* b, int cin, int cout_total) {
  switch (channel_tile(l.cout_count)) {
    case 48: return conv_kernel<8, 48, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
    case 32: return conv_kernel<8, 32, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
    case 16: return conv_kernel<8, 16, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
    case 8: return conv_kernel<8, 8, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
    case 4: return conv_kernel<8, 4, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
    default: return conv_kernel<8, 1, KT, KH, KW, UP>(exec, l, w, b, cin, cout_total);
  }
}

}  // namespace detail

/// Runs one convolution launch. \p upsample selects the fused nearest-2x
/// Conv2d (weights with kt = 1, kh = kw = 3).
template <class Exec, class MemSpace>
void conv(const Exec& exec, const ConvLaunch& l, const ConvWeights<MemSpace>& w, bool upsample = false) {
  const float* wp = w.weight.data();
  const float* bp = w.bias.data();
  if (l.cout_begin < 0 || l.cout_begin + l.cout_count > w.cout) {
    throw std::invalid_argument("khalo::nn::conv: output channels outside the weights");
  }
  if (upsample) {
    if (w.kt != 1 || w.kh != 3 || w.kw != 3)
      throw std::invalid_argument("khalo::nn::conv: upsampling needs a 3x3 kernel");
    return detail::conv_dispatch<1, 3, 3, true>(exec, l, wp, bp, w.cin, w.cout);
  }
  if (w.kt == 3 && w.kh == 3 && w.kw == 3) return detail::conv_dispatch<3, 3, 3, false>(exec, l, wp, bp, w.cin, w.cout);
  if (w.kt == 1 && w.kh == 1 && w.kw == 1) return detail::conv_dispatch<1, 1, 1, false>(exec, l, wp, bp, w.cin, w.cout);
  if (w.kt == 3 && w.kh == 1 && w.kw == 1) return detail::conv_dispatch<3, 1, 1, false>(exec, l, wp, bp, w.cin, w.cout);
  throw std::invalid_argument("khalo::nn::conv: unsupported kernel " + std::to_string(w.kt) + "x" +
                              std::to_string(w.kh) + "x" + std::to_string(w.kw));
}

}  // namespace khalo::nn
