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

#include <khalo/detail/huge_pages.hpp>
#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace khalo::nn {

namespace detail {
// Output channels per tile: the largest of these that divides the count.
inline int channel_tile(int count) {
  for (int t : {48, 32, 24, 16, 12, 8, 4}) {
    if (count % t == 0) return t;
  }
  return 1;
}
}  // namespace detail

/// Weights of one convolution, packed in groups of \p pack output channels,
/// each group [cin][taps][pack] or [taps][cin][pack]: the innermost loop runs
/// over contiguous output channels, and the weights reach the kernel in the
/// order its loops read them, one sequential stream. The contiguous row tile
/// runs taps inside input channels (one channel's taps lie together; taps a
/// whole [cin][pack] plane apart alias in L1, the plane is often a multiple of
/// 4 KiB); the channels-last tile runs input channels inside taps (with
/// [cin][taps] every step of that loop jumped 27 x 48 floats, past what the
/// prefetchers follow: C = 192-384 at 64 x 64 ran 3-5% slower, 10-20% in the
/// VM's slow periods).
template <class MemSpace = Kokkos::DefaultExecutionSpace::memory_space>
struct ConvWeights {
  int cout = 0, cin = 0, kt = 1, kh = 1, kw = 1;
  int pack = 1;                           ///< output channels per packed group
  bool taps_outer = false;                ///< groups are [taps][cin][pack], else [cin][taps][pack]
  Kokkos::View<float*, MemSpace> weight;  // packed
  Kokkos::View<float*, MemSpace> bias;    // cout

  /// The packing that suits activations in \p format: 12 output channels for
  /// contiguous rows (tiles of 12 channels x 32 columns), 48 for channels-last.
  static int pack_for(int cout, MemoryFormat format) {
    return format == MemoryFormat::contiguous && cout % 12 == 0 ? 12 : detail::channel_tile(cout);
  }

  /// Taps outside input channels (the channels-last tile's order) unless the weights are packed
  /// for the contiguous row tile.
  static bool taps_outer_for(int cout, MemoryFormat format) {
    return format != MemoryFormat::contiguous || pack_for(cout, format) != 12;
  }

  /// From PyTorch's layout (cout, cin, kt, kh, kw) (a Conv2d passes kt = 1), in C order,
  /// packed for activations in \p format (any format works; this one runs fastest).
  static ConvWeights from_torch(const std::vector<float>& w, const std::vector<float>& b, int cout, int cin, int kt,
                                int kh, int kw, MemoryFormat format = MemoryFormat::channels_last_3d) {
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
    c.pack = pack_for(cout, format);
    c.taps_outer = taps_outer_for(cout, format);
    // Every element is written below: the huge-page advice (host, >= 4 MiB) precedes that first touch.
    c.weight = Kokkos::View<float*, MemSpace>(Kokkos::view_alloc("khalo::conv::weight", Kokkos::WithoutInitializing),
                                              w.size());
    if constexpr (std::is_same_v<MemSpace, Kokkos::HostSpace>) {
      khalo::detail::advise_huge_pages(c.weight.data(), w.size() * sizeof(float));
    }
    c.bias = Kokkos::View<float*, MemSpace>("khalo::conv::bias", b.size());
    auto hw = Kokkos::create_mirror_view(c.weight);
    auto hb = Kokkos::create_mirror_view(c.bias);
    const auto P = static_cast<std::size_t>(c.pack), ci_n = static_cast<std::size_t>(cin);
    for (std::size_t o = 0; o < static_cast<std::size_t>(cout); ++o)
      for (std::size_t i = 0; i < ci_n; ++i)
        for (std::size_t k = 0; k < taps; ++k)
          hw((o / P * ci_n * taps + (c.taps_outer ? k * ci_n + i : i * taps + k)) * P + o % P) =
              w[(o * ci_n + i) * taps + k];
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
  Strided5 in;   ///< input, shifted so that (n, c, t, h, w) is the first tap of output (n, ., t, h, w)
  Strided5 out;  ///< output (n, c, t, h, w)
  /// Added to the output when its data is not null (same indexing as out). The address ranges
  /// that the launch reaches in it and in out must not intersect (conv throws): partial sums over
  /// blocks of input channels are stored in out before it is added.
  Strided5 residual;
  int n = 1, frames = 1;           ///< batch and output frames
  int row_begin = 0, row_end = 0;  ///< output rows to compute
  int out_width = 0, in_width = 0;
  int cout_begin = 0, cout_count = 0;  ///< which output channels of the weights this launch computes
  /// Upsampling only: global index of this band's first input row (for the 2x row map).
  std::int64_t up_first_row = 0;
};

namespace detail {

// Unrolling the tile's W loop keeps its accumulators in registers (GCC needs telling).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define KHALO_UNROLL _Pragma("GCC unroll 48")
#else
#define KHALO_UNROLL
#endif

// A cache-line prefetch on host compilers; nothing on a GPU.
#if defined(__GNUC__) && !defined(__CUDA_ARCH__) && !defined(__HIP_DEVICE_COMPILE__)
#define KHALO_PREFETCH(p) __builtin_prefetch(p)
#else
#define KHALO_PREFETCH(p) ((void)(p))
#endif

// A quarter of a typical 1 MiB L2, in floats: the budget of a kernel's reused working set.
inline constexpr std::int64_t kL2QuarterFloats = 256 * 1024 / 4;

// Input channels per block: a block's weights for one output-channel tile (taps x block x
// tile floats) fit in a quarter of a typical 1 MiB L2, so they are read from cache for every
// W tile of the row. It depends on the shapes only: the summation order is the same on every rank.
inline int cin_block(int cin, int taps, int cout_tile) {
  const int fit = static_cast<int>(kL2QuarterFloats / (taps * cout_tile));
  const int block = fit < 8 ? 8 : fit / 8 * 8;
  return block < cin ? block : cin;
}

// What a kernel needs of ConvWeights: pointers and the packing's strides, in floats.
struct PackedWeights {
  const float* weight;
  const float* bias;
  int cin, pack;
  bool taps_outer;
  std::int64_t group, ci, tap;  // strides of a packed group, an input channel, a tap

  template <class MemSpace>
  explicit PackedWeights(const ConvWeights<MemSpace>& w)
      : weight(w.weight.data()), bias(w.bias.data()), cin(w.cin), pack(w.pack), taps_outer(w.taps_outer) {
    const std::int64_t taps = static_cast<std::int64_t>(w.kt) * w.kh * w.kw;
    group = taps * w.cin * w.pack;
    ci = w.taps_outer ? w.pack : taps * w.pack;
    tap = w.taps_outer ? static_cast<std::int64_t>(w.cin) * w.pack : w.pack;
  }
  // Output channel co's weight of input channel 0, tap 0.
  KOKKOS_INLINE_FUNCTION const float* at(int co) const { return weight + co / pack * group + co % pack; }
};

// floor(a / 2) for a >= -2.
KOKKOS_INLINE_FUNCTION std::int64_t half_floor(std::int64_t a) { return (a + 2) / 2 - 1; }

struct TileItem {
  int n, t, h, h_end, tile;
};

// One work item per (batch, frame, channel tile, group of output rows), rows fastest:
// consecutive items share most input rows and all weights. Outputs only, no atomics.
struct TileItems {
  int rows, group, tiles, frames, row_begin, n;
  TileItems(const ConvLaunch& l, int cout_tile, int rows_per_item = 1)
      : rows(l.row_end - l.row_begin),
        group(rows_per_item),
        tiles(l.cout_count / cout_tile),
        frames(l.frames),
        row_begin(l.row_begin),
        n(l.out_width > 0 && l.row_end > l.row_begin ? l.n : 0) {}
  KOKKOS_INLINE_FUNCTION int groups() const { return (rows + group - 1) / group; }
  std::int64_t count() const { return static_cast<std::int64_t>(n) * frames * tiles * groups(); }
  KOKKOS_INLINE_FUNCTION TileItem at(std::int64_t item) const {
    const int g = groups();
    TileItem it{};
    it.h = row_begin + static_cast<int>(item % g) * group;
    it.h_end = it.h + group < row_begin + rows ? it.h + group : row_begin + rows;
    item /= g;
    it.tile = static_cast<int>(item % tiles);
    item /= tiles;
    it.t = static_cast<int>(item % frames);
    it.n = static_cast<int>(item / frames);
    return it;
  }
};

// Rows per work item for a kernel whose weights are read in input-channel blocks: as many
// as keep their partial sums in a quarter of L2, so that a block's weights are read from L2
// for each of those rows (with one row per item, C = 384 re-read 2 MiB of weights per row
// from L3), unless that leaves fewer than 4 items per thread. Depends on the launch and the
// backend only, not on the data.
template <class Exec>
int rows_per_item(const Exec& exec, const ConvLaunch& l, int cout_tile) {
  const int rows = l.row_end - l.row_begin;
  const std::int64_t base = static_cast<std::int64_t>(l.n) * l.frames * (l.cout_count / cout_tile);
  const std::int64_t want = 4 * static_cast<std::int64_t>(exec.concurrency());
  if (rows <= 0 || base <= 0 || l.out_width <= 0) return 1;
  const std::int64_t groups = base >= want ? 1 : (want + base - 1) / base;
  std::int64_t group = (rows + groups - 1) / (groups < rows ? groups : rows);
  const std::int64_t fit = kL2QuarterFloats / (static_cast<std::int64_t>(l.out_width) * cout_tile);
  if (group > fit) group = fit > 1 ? fit : 1;
  return static_cast<int>(group);
}

/// WT output positions x COT output channels per tile; KT x KH x KW taps; UP:
/// the input is read through a nearest 2x upsampling (Conv2d of the upsampler).
template <int WT, int COT, int KT, int KH, int KW, bool UP, class Exec>
void conv_kernel(const Exec& exec, const ConvLaunch& L, const PackedWeights& W) {
  const TileItems tiles(L, COT, rows_per_item(exec, L, COT));
  if (tiles.count() <= 0) return;
  const ConvLaunch l = L;
  const PackedWeights wt = W;
  const int cin = W.cin;
  const int cb = cin_block(cin, KT * KH * KW, COT);
  Kokkos::parallel_for(
      "khalo::nn::conv", Kokkos::RangePolicy<Exec>(exec, 0, tiles.count()), KOKKOS_LAMBDA(const std::int64_t item) {
        const TileItem it = tiles.at(item);
        const int n = it.n, t = it.t, co0 = it.tile * COT;
        const int co = l.cout_begin + co0;  // a tile never straddles two packed groups
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
              } else if (full_tile && l.out.stride[1] == 1) {
                // Channels-last partial sums: plain vector loads (the generic accessor below
                // compiles to gathers, 5-8% of the kernel at C = 96-384).
                for (int i = 0; i < WT; ++i) {
                  const float* y = l.out.data + l.out.offset(n, co0, t, h, w0 + i);
                  for (int o = 0; o < COT; ++o) acc[i][o] = y[o];
                }
              } else {
                for (int i = 0; i < WT; ++i)
                  for (int o = 0; o < COT; ++o)
                    acc[i][o] = w0 + i < l.out_width ? l.out(n, co0 + o, t, h, w0 + i) : 0.0f;
              }
              for (int kt = 0; kt < KT; ++kt) {
                for (int kh = 0; kh < KH; ++kh) {
                  // The input row of this tap (with the ghost row at index 0 for KH = 3).
                  std::int64_t in_row = h + kh;
                  if (UP) in_row = half_floor(2 * l.up_first_row + h - 1 + kh) - l.up_first_row + 1;
                  const float* xrow =
                      l.in.data + n * l.in.stride[0] + (t + kt) * l.in.stride[2] + in_row * l.in.stride[3];
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
                          for (int o = 0; o < COT; ++o) acc[i][o] += xv * wv[o];
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
                          for (int o = 0; o < COT; ++o) acc[i][o] += xv * wv[o];
                        }
                      }
                    }
                  }
                }
              }
              const bool last = c1 == cin;
              for (int i = 0; i < WT && w0 + i < l.out_width; ++i) {
                for (int o = 0; o < COT; ++o) {
                  float v = acc[i][o];
                  if (last && l.residual.data != nullptr) v += l.residual(n, co0 + o, t, h, w0 + i);
                  l.out(n, co0 + o, t, h, w0 + i) = v;
                }
              }
            }
          }
        }
      });
}

// One input channel's taps on a row tile: acc[o][j] += w[o, tap] * x[tap row][j + kw].
template <int COT, int WT, int KT, int KH, int KW>
KOKKOS_FORCEINLINE_FUNCTION void row_tile_taps(float (&acc)[COT][WT], const float* xc, std::int64_t st, std::int64_t sh,
                                               const float* wc, std::int64_t group) {
  for (int kt = 0; kt < KT; ++kt) {
    for (int kh = 0; kh < KH; ++kh) {
      for (int kw = 0; kw < KW; ++kw) {
        const float* x = xc + kt * st + kh * sh + kw;
        const float* wv = wc + ((kt * KH + kh) * KW + kw) * 12;
        KHALO_UNROLL
        for (int o = 0; o < COT; ++o) {
          const float wo = wv[o / 12 * group + o % 12];
          for (int j = 0; j < WT; ++j) acc[o][j] += wo * x[j];
        }
      }
    }
  }
}

// Input channels per block of the contiguous row tile: where a row has several tiles, they
// take turns on one block, so its weights (27 x block x 12 floats) and its input pages are
// reused across the row instead of streamed once per tile (C = 384, 64 columns: +7%). Blocks
// of at most 64, balanced. A row of one tile gains nothing and keeps all channels in one
// block. Depends on the shapes only: the summation order is the same on every rank.
inline int row_cin_block(int cin, int width, int tile_width) {
  if (width <= tile_width) return cin;
  const int blocks = (cin + 63) / 64;
  return (cin + blocks - 1) / blocks;
}

// Prefetches the KT x KH input rows (span columns each) of one input channel. The row tile
// steps a whole plane from one channel to the next, which the hardware prefetcher cannot
// follow: without this, the tile waited on each channel's rows (C = 384: +25%).
template <int KT, int KH, int span>
KOKKOS_FORCEINLINE_FUNCTION void prefetch_rows(const float* xc, std::int64_t st, std::int64_t sh) {
  for (int r = 0; r < KT * KH; ++r) {
    const float* p = xc + r / KH * st + r % KH * sh;
    for (int q = 0; q < span; q += 16) KHALO_PREFETCH(p + q);
    KHALO_PREFETCH(p + span - 1);
  }
}

/// Contiguous rows (unit stride along W in input and output): COT output
/// channels x WT output positions per tile, vectorized along W (the channels-last
/// tile above would read its inputs a whole plane apart). A row's last tile may
/// hang past its end: it computes WT columns from zeros there and stores only its
/// own. A tile whose taps reach past the row's ends reads, per input channel, a
/// copy of its input rows with zeros on the outside: the same loop for every
/// tile, where a scalar per-column path for the two edge columns was one dependent
/// FMA chain and cost a third of a 64-wide row. Between input-channel blocks the
/// partial sums wait in the output.
template <int COT, int WT, int KT, int KW, class Exec>
void conv_kernel_rows(const Exec& exec, const ConvLaunch& L, const PackedWeights& W) {
  constexpr int KH = KW;  // 1x1x1 or 3x3x3
  const TileItems tiles(L, COT);
  if (tiles.count() <= 0) return;
  const ConvLaunch l = L;
  const PackedWeights wt = W;
  const int cin = W.cin;
  const int cb = row_cin_block(cin, L.out_width, WT);
  Kokkos::parallel_for(
      "khalo::nn::conv_rows", Kokkos::RangePolicy<Exec>(exec, 0, tiles.count()),
      KOKKOS_LAMBDA(const std::int64_t item) {
        const TileItem it = tiles.at(item);
        const int n = it.n, t = it.t, h = it.h, co0 = it.tile * COT;
        constexpr int taps = KT * KH * KW;
        constexpr int pad = KW / 2;
        constexpr int span = WT + 2 * pad;  // input columns a tile reads
        const int co = l.cout_begin + co0;
        // Weights packed [cin][taps][12]; COT is a multiple of 12: channel o of the tile is in
        // group o / 12.
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
                                                   wbase + static_cast<std::int64_t>(ci) * taps * 12, wt.group);
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
                                                   wbase + static_cast<std::int64_t>(ci) * taps * 12, wt.group);
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
      if (l.cout_count % 12 == 0 && l.out_width >= 32) return conv_kernel_rows<12, 32, KT, KW>(exec, l, w);
      if (l.cout_count % 24 == 0 && l.out_width >= 16) return conv_kernel_rows<24, 16, KT, KW>(exec, l, w);
    }
  }
  switch (channel_tile(g)) {
    case 48: return conv_kernel<8, 48, KT, KH, KW, UP>(exec, l, w);
    case 32: return conv_kernel<8, 32, KT, KH, KW, UP>(exec, l, w);
    case 16: return conv_kernel<8, 16, KT, KH, KW, UP>(exec, l, w);
    case 8: return conv_kernel<8, 8, KT, KH, KW, UP>(exec, l, w);
    case 4: return conv_kernel<8, 4, KT, KH, KW, UP>(exec, l, w);
    default: return conv_kernel<8, 1, KT, KH, KW, UP>(exec, l, w);
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
