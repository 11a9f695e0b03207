#pragma once
/// \file
/// What the convolution kernels share: the packed weights as pointers and
/// strides, the work items (batch, frame, channel tile, group of rows), the
/// upsampler's index map and a host prefetch.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/conv_weights.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace khalo::nn::detail {

/// What a kernel needs of ConvWeights: pointers and the packing's strides, in floats.
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
  /// Output channel co's weight of input channel 0, tap 0.
  KOKKOS_INLINE_FUNCTION const float* at(int co) const { return weight + co / pack * group + co % pack; }
};

/// floor(a / 2) for a >= -2.
KOKKOS_INLINE_FUNCTION std::int64_t half_floor(std::int64_t a) { return (a + 2) / 2 - 1; }

/// A read hint for the cache line at \p p on host compilers; nothing on a GPU.
KOKKOS_FORCEINLINE_FUNCTION void prefetch(const float* p) {
#if defined(__GNUC__) && !defined(__CUDA_ARCH__) && !defined(__HIP_DEVICE_COMPILE__)
  __builtin_prefetch(p);
#else
  (void)p;
#endif
}

struct TileItem {
  int n, t, h, h_end;
  int co;      ///< weights' channel of the tile's first output channel
  int lo, hi;  ///< the tile's channels [lo, hi) are the launch's; the others are not stored
};

/// One work item per (batch, frame, channel tile, group of output rows), rows fastest:
/// consecutive items share most input rows and all weights. Outputs only, no atomics.
/// Tiles of \p cout_tile channels start at \p first_channel (of the weights) and cover the
/// launch's channels; the first and last may reach outside them.
struct TileItems {
  int rows, group, tiles, frames, row_begin, n;
  int first_channel, cout_begin, cout_end, cout_tile;
  TileItems(const ConvLaunch& l, int tile, int first, int rows_per_item = 1)
      : rows(l.row_end - l.row_begin),
        group(rows_per_item),
        tiles((l.cout_begin + l.cout_count - first + tile - 1) / tile),
        frames(l.frames),
        row_begin(l.row_begin),
        n(l.out_width > 0 && l.row_end > l.row_begin && l.cout_count > 0 ? l.n : 0),
        first_channel(first),
        cout_begin(l.cout_begin),
        cout_end(l.cout_begin + l.cout_count),
        cout_tile(tile) {}
  KOKKOS_INLINE_FUNCTION int groups() const { return (rows + group - 1) / group; }
  std::int64_t count() const { return static_cast<std::int64_t>(n) * frames * tiles * groups(); }
  KOKKOS_INLINE_FUNCTION TileItem at(std::int64_t item) const {
    const int g = groups();
    TileItem it{};
    it.h = row_begin + static_cast<int>(item % g) * group;
    it.h_end = it.h + group < row_begin + rows ? it.h + group : row_begin + rows;
    item /= g;
    const int tile = static_cast<int>(item % tiles);
    item /= tiles;
    it.t = static_cast<int>(item % frames);
    it.n = static_cast<int>(item / frames);
    it.co = first_channel + tile * cout_tile;
    it.lo = cout_begin > it.co ? cout_begin - it.co : 0;
    it.hi = cout_end < it.co + cout_tile ? cout_end - it.co : cout_tile;
    return it;
  }
};

}  // namespace khalo::nn::detail
