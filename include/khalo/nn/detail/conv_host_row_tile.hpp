#pragma once
/// \file
/// The contiguous row tile: a host convolution kernel vectorized along W
/// (COT output channels x WT output positions of accumulators per work item),
/// for activations whose rows are contiguous (the contiguous format), 3x3x3
/// and 1x1x1 kernels, and weights packed in groups of 12 with taps inside
/// input channels.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/detail/conv_common.hpp>
#include <khalo/nn/detail/conv_tuning.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>

#include <khalo/nn/detail/conv_macros_begin.hpp>

namespace khalo::nn::detail {

/// One input channel's taps on a row tile: acc[o][j] += w[o, tap] * x[tap row][j + kw].
template <int COT, int WT, int KT, int KH, int KW>
KOKKOS_FORCEINLINE_FUNCTION void row_tile_taps(float (&acc)[COT][WT], const float* xc, std::int64_t st, std::int64_t sh,
                                               const float* wc, std::int64_t group) {
  for (int kt = 0; kt < KT; ++kt) {
    for (int kh = 0; kh < KH; ++kh) {
      for (int kw = 0; kw < KW; ++kw) {
        const float* x = xc + kt * st + kh * sh + kw;
        const float* wv = wc + ((kt * KH + kh) * KW + kw) * kRowPack;
        KHALO_UNROLL
        for (int o = 0; o < COT; ++o) {
          const float wo = wv[o / kRowPack * group + o % kRowPack];
          for (int j = 0; j < WT; ++j) acc[o][j] += wo * x[j];
        }
      }
    }
  }
}

/// Prefetches the KT x KH input rows (span columns each) of one input channel. The row tile
/// steps a whole plane from one channel to the next, which the hardware prefetcher cannot
/// follow: without this, the tile waited on each channel's rows.
template <int KT, int KH, int span>
KOKKOS_FORCEINLINE_FUNCTION void prefetch_rows(const float* xc, std::int64_t st, std::int64_t sh) {
  for (int r = 0; r < KT * KH; ++r) {
    const float* p = xc + r / KH * st + r % KH * sh;
    for (int q = 0; q < span; q += 16) prefetch(p + q);
    prefetch(p + span - 1);
  }
}

/// Contiguous rows (unit stride along W in input and output): COT output channels (a
/// multiple of 12) x WT output positions per tile, vectorized along W (the channel tile
/// would read its inputs a whole plane apart). A row's last tile may hang past its end: it
/// computes WT columns from zeros there and stores only its own. A tile whose taps reach
/// past the row's ends reads, per input channel, a copy of its input rows with zeros on the
/// outside: the same loop for every tile, where a scalar per-column path for the two edge
/// columns was one dependent FMA chain. Every output element is summed as bias, then input
/// channels, then taps; between input-channel blocks the partial sums wait in the output.
/// The launch's channels are whole tiles: cout_count is a multiple of COT, cout_begin of 12.
template <int COT, int WT, int KT, int KW, class Exec>
void conv_row_tile(const Exec& exec, const ConvLaunch& L, const PackedWeights& W) {
  static_assert(COT % kRowPack == 0, "the row tile reads whole packed groups of 12");
  constexpr int KH = KW;  // 1x1x1 or 3x3x3
  const TileItems tiles(L, COT, L.cout_begin);
  if (tiles.count() <= 0) return;
  const ConvLaunch l = L;
  const PackedWeights wt = W;
  const int cin = W.cin;
  const int cb = row_cin_block(cin, L.out_width, WT);
  Kokkos::parallel_for(
      "khalo::nn::conv_rows", Kokkos::RangePolicy<Exec>(exec, 0, tiles.count()),
      KOKKOS_LAMBDA(const std::int64_t item) {
        const TileItem it = tiles.at(item);
        const int n = it.n, t = it.t, h = it.h, co = it.co, co0 = co - l.cout_begin;
        constexpr int taps = KT * KH * KW;
        constexpr int pad = KW / 2;
        constexpr int span = WT + 2 * pad;  // input columns a tile reads
        // Weights packed [cin][taps][12]: channel o of the tile is in group o / 12.
        const float* wbase = wt.at(co);
        const float* bias = wt.bias;
        const std::int64_t sc = l.in.stride[1];
        const float* xbase = l.in.data + n * l.in.stride[0] + t * l.in.stride[2] + h * l.in.stride[3];
        const int width = l.out_width;
        float edge[KT * KH * span];  // the zero-padded input rows of one channel, for edge tiles
        for (int c0 = 0; c0 < cin; c0 += cb) {
          const int c1 = c0 + cb < cin ? c0 + cb : cin;
          for (int w0 = 0; w0 < width; w0 += WT) {
            const int cols = width - w0 < WT ? width - w0 : WT;
            const bool padded = w0 - pad < 0 || w0 + WT + pad > width;
            float acc[COT][WT];
            for (int o = 0; o < COT; ++o) {
              const float* y = l.out.data + l.out.offset(n, co0 + o, t, h, w0);
              for (int j = 0; j < WT; ++j) acc[o][j] = c0 == 0 ? bias[co + o] : j < cols ? y[j] : 0.0f;
            }
            // Input channels outermost: one channel's taps read 3 frames x 3 rows that lie close
            // together; taps outermost would stride a whole plane per channel (TLB and prefetch
            // misses). Two copies of the loop: a branch inside it made GCC keep the accumulators
            // in memory.
            const float* x0 = xbase + (w0 - pad);
            if (!padded) {
              for (int ci = c0; ci < c1; ++ci) {
                const float* xc = x0 + ci * sc;
                prefetch_rows<KT, KH, span>(xc + sc, l.in.stride[2], l.in.stride[3]);
                row_tile_taps<COT, WT, KT, KH, KW>(acc, xc, l.in.stride[2], l.in.stride[3],
                                                   wbase + static_cast<std::int64_t>(ci) * taps * kRowPack, wt.group);
              }
            } else {
              for (int ci = c0; ci < c1; ++ci) {
                const float* xc = x0 + ci * sc;
                prefetch_rows<KT, KH, span>(xc + sc, l.in.stride[2], l.in.stride[3]);
                for (int r = 0; r < KT * KH; ++r)
                  for (int j = 0; j < span; ++j) {
                    const int c = w0 - pad + j;
                    edge[r * span + j] =
                        c >= 0 && c < width ? xc[r / KH * l.in.stride[2] + r % KH * l.in.stride[3] + j] : 0.0f;
                  }
                row_tile_taps<COT, WT, KT, KH, KW>(acc, edge, KH * span, span,
                                                   wbase + static_cast<std::int64_t>(ci) * taps * kRowPack, wt.group);
              }
            }
            const bool add = c1 == cin && l.residual.data != nullptr;
            for (int o = 0; o < COT; ++o) {
              float* y = l.out.data + l.out.offset(n, co0 + o, t, h, w0);
              const float* r = add ? l.residual.data + l.residual.offset(n, co0 + o, t, h, w0) : y;
              for (int j = 0; j < cols; ++j) y[j] = add ? acc[o][j] + r[j] : acc[o][j];
            }
          }
        }
      });
}

}  // namespace khalo::nn::detail

#include <khalo/nn/detail/conv_macros_end.hpp>
