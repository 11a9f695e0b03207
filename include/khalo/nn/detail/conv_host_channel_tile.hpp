#pragma once
/// \file
/// The channel tile: a host convolution kernel vectorized over output channels
/// (WT output positions x COT output channels of accumulators per work item).
/// It suits channels-last activations, and runs on any strides: the fused
/// upsampler and time_conv use it in every format, and so does a launch that the
/// contiguous row tile cannot take.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/detail/conv_common.hpp>
#include <khalo/nn/detail/conv_tuning.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>

#include <khalo/nn/detail/conv_macros_begin.hpp>

namespace khalo::nn::detail {

/// acc[o] += xv * wv[o] over the tile's COT output channels. GCC unrolls a loop this short
/// completely before its loop vectorizer runs, and then leaves 8-16 products scalar (tiles 8,
/// 12 and 16 wide ran 10x slower than 24 and wider); a tile narrower than 24 keeps its loop,
/// which vectorizes. Wider tiles vectorize either way and run best unrolled.
template <int COT>
KOKKOS_FORCEINLINE_FUNCTION void channel_fma(float (&acc)[COT], float xv, const float* wv) {
  if constexpr (COT < 24) {
    KHALO_KEEP_LOOP
    for (int o = 0; o < COT; ++o) acc[o] += xv * wv[o];
  } else {
    for (int o = 0; o < COT; ++o) acc[o] += xv * wv[o];
  }
}

/// Adds one tap of the upsampler to an interior tile, over input channels [c0, c1): output
/// column w0 + i reads input column w0 / 2 - 1 + (i + KWU + 1) / 2 under tap KWU, where \p x0
/// points at input column w0 / 2 - 1 of channel 0.
template <int WT, int COT, int KWU>
KOKKOS_FORCEINLINE_FUNCTION void channel_tile_up_tap(float (&acc)[WT][COT], const float* x0, std::int64_t sw,
                                                     std::int64_t sc, const float* wk, std::int64_t wci, int c0,
                                                     int c1) {
  for (int ci = c0; ci < c1; ++ci) {
    const float* x = x0 + ci * sc;
    const float* wv = wk + ci * wci;
    KHALO_UNROLL
    for (int i = 0; i < WT; ++i) {
      const float xv = x[((i + KWU + 1) / 2) * sw];
      channel_fma<COT>(acc[i], xv, wv);
    }
  }
}

/// WT output positions x COT output channels per tile; KT x KH x KW taps; UP: the input is
/// read through a nearest 2x upsampling (the upsampler's Conv2d, KT = 1, KH = KW = 3).
/// Every output element is summed as bias, then taps, then input channels, in blocks of
/// input channels whose partial sums wait in the output.
template <int WT, int COT, int KT, int KH, int KW, bool UP, class Exec>
void conv_channel_tile(const Exec& exec, const ConvLaunch& L, const PackedWeights& W) {
  static_assert(!UP || (KT == 1 && KH == 3 && KW == 3 && WT % 2 == 0), "the fused upsampler is a 3x3 Conv2d");
  const int first = L.cout_begin / COT * COT;  // tiles align with the packed groups
  const std::int64_t per_row =
      static_cast<std::int64_t>(L.n) * L.frames * ((L.cout_begin + L.cout_count - first + COT - 1) / COT);
  const TileItems tiles(L, COT, first,
                        rows_per_item(L.row_end - L.row_begin, per_row, L.out_width, COT, exec.concurrency()));
  if (tiles.count() <= 0) return;
  const ConvLaunch l = L;
  const PackedWeights wt = W;
  const int cin = W.cin;
  const int cb = cin_block(cin, KT * KH * KW, COT);
  Kokkos::parallel_for(
      "khalo::nn::conv", Kokkos::RangePolicy<Exec>(exec, 0, tiles.count()), KOKKOS_LAMBDA(const std::int64_t item) {
        const TileItem it = tiles.at(item);
        const int n = it.n, t = it.t;
        const int co = it.co;               // the weights' channel of the tile's first
        const int co0 = co - l.cout_begin;  // the output's channel of the tile's first
        const bool all_channels = it.lo == 0 && it.hi == COT;
        const float* wbase = wt.at(co);
        const float* bias = wt.bias;
        const std::int64_t sc = l.in.stride[1], sw = l.in.stride[4];
        // Input channels in blocks whose weights stay in cache for all the item's rows; the
        // partial sums wait in the output between blocks.
        for (int c0 = 0; c0 < cin; c0 += cb) {
          const int c1 = c0 + cb < cin ? c0 + cb : cin;
          for (int h = it.h; h < it.h_end; ++h) {
            for (int w0 = 0; w0 < l.out_width; w0 += WT) {
              const bool full_tile = w0 + WT <= l.out_width;
              float acc[WT][COT];
              if (c0 == 0) {
                for (int i = 0; i < WT; ++i)
                  for (int o = 0; o < COT; ++o) acc[i][o] = bias[co + o];
              } else if (full_tile && all_channels && l.out.stride[1] == 1) {
                // Channels-last partial sums: plain vector loads (the generic accessor below
                // compiles to gathers, 5-8% of the kernel at C = 96-384).
                for (int i = 0; i < WT; ++i) {
                  const float* y = l.out.data + l.out.offset(n, co0, t, h, w0 + i);
                  for (int o = 0; o < COT; ++o) acc[i][o] = y[o];
                }
              } else {
                for (int i = 0; i < WT; ++i)
                  for (int o = 0; o < COT; ++o)
                    acc[i][o] =
                        w0 + i < l.out_width && o >= it.lo && o < it.hi ? l.out(n, co0 + o, t, h, w0 + i) : 0.0f;
              }
              // No padding under any tap of this tile (the upsampler: input columns
              // w0 / 2 - 1 to (w0 + WT) / 2): plain loads the compiler can schedule freely.
              const bool up_interior = UP && full_tile && w0 / 2 - 1 >= 0 && (w0 + WT) / 2 < l.in_width;
              for (int kt = 0; kt < KT; ++kt) {
                for (int kh = 0; kh < KH; ++kh) {
                  // The input row of this tap (with the ghost row at index 0 for KH = 3).
                  std::int64_t in_row = h + kh;
                  if (UP) in_row = half_floor(2 * l.up_first_row + h - 1 + kh) - l.up_first_row + 1;
                  const float* xrow =
                      l.in.data + n * l.in.stride[0] + (t + kt) * l.in.stride[2] + in_row * l.in.stride[3];
                  if (up_interior) {
                    const float* x0 = xrow + (w0 / 2 - 1) * sw;
                    const float* wk = wbase + kh * KW * wt.tap;
                    channel_tile_up_tap<WT, COT, 0>(acc, x0, sw, sc, wk, wt.ci, c0, c1);
                    channel_tile_up_tap<WT, COT, 1>(acc, x0, sw, sc, wk + wt.tap, wt.ci, c0, c1);
                    channel_tile_up_tap<WT, COT, 2>(acc, x0, sw, sc, wk + 2 * wt.tap, wt.ci, c0, c1);
                    continue;
                  }
                  for (int kw = 0; kw < KW; ++kw) {
                    const float* wk = wbase + ((kt * KH + kh) * KW + kw) * wt.tap;
                    // No padding under this tap of this tile: plain loads the compiler can schedule freely.
                    const bool interior =
                        !UP && full_tile && w0 + kw - KW / 2 >= 0 && w0 + WT - 1 + kw - KW / 2 < l.in_width;
                    if (interior) {
                      const float* x0 = xrow + (w0 + kw - (KW / 2)) * sw;
                      for (int ci = c0; ci < c1; ++ci) {
                        const float* x = x0 + ci * sc;
                        const float* wv = wk + ci * wt.ci;
                        KHALO_UNROLL
                        for (int i = 0; i < WT; ++i) {
                          const float xv = x[i * sw];
                          channel_fma<COT>(acc[i], xv, wv);
                        }
                      }
                    } else {
                      // Only this path reads them.
                      std::int64_t col[WT];
                      bool valid[WT];
                      for (int i = 0; i < WT; ++i) {
                        const std::int64_t c = UP ? half_floor(w0 + i - 1 + kw) : w0 + i + kw - (KW / 2);
                        valid[i] = c >= 0 && c < l.in_width && w0 + i < l.out_width;
                        col[i] = valid[i] ? c : 0;
                      }
                      for (int ci = c0; ci < c1; ++ci) {
                        const float* x = xrow + ci * sc;
                        const float* wv = wk + ci * wt.ci;
                        KHALO_UNROLL
                        for (int i = 0; i < WT; ++i) {
                          const float xv = valid[i] ? x[col[i] * sw] : 0.0f;
                          channel_fma<COT>(acc[i], xv, wv);
                        }
                      }
                    }
                  }
                }
              }
              const bool last = c1 == cin;
              if (all_channels) {
                for (int i = 0; i < WT && w0 + i < l.out_width; ++i) {
                  for (int o = 0; o < COT; ++o) {
                    float v = acc[i][o];
                    if (last && l.residual.data != nullptr) v += l.residual(n, co0 + o, t, h, w0 + i);
                    l.out(n, co0 + o, t, h, w0 + i) = v;
                  }
                }
              } else {
                for (int i = 0; i < WT && w0 + i < l.out_width; ++i) {
                  for (int o = 0; o < COT; ++o) {
                    if (o < it.lo || o >= it.hi) continue;
                    float v = acc[i][o];
                    if (last && l.residual.data != nullptr) v += l.residual(n, co0 + o, t, h, w0 + i);
                    l.out(n, co0 + o, t, h, w0 + i) = v;
                  }
                }
              }
            }
          }
        }
      });
}

}  // namespace khalo::nn::detail

#include <khalo/nn/detail/conv_macros_end.hpp>
