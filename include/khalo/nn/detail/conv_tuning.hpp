#pragma once
/// \file
/// Cache and tile constants of the host convolution kernels, and the block
/// sizes derived from them. Every block size here depends on the shapes (and,
/// for rows per work item, on the backend's concurrency) only, never on the
/// data or on which band a rank holds, so that the summation order of every
/// output element is the same on any number of ranks.

#include <cstdint>
#include <initializer_list>

namespace khalo::nn::detail {

/// A quarter of a typical 1 MiB L2, in floats: the budget of a kernel's reused working set.
inline constexpr std::int64_t kL2QuarterFloats = 256 * 1024 / 4;

/// Output-channel widths of the channel tile (W positions x output channels), widest first.
/// Each is a multiple of 4 and at least 8, so that a tile fills whole vectors.
inline constexpr int kChannelTiles[] = {48, 32, 24, 16, 12, 8};

/// Output channels per packed group of the contiguous row tile (its tiles are 12 or 24 wide).
inline constexpr int kRowPack = 12;

/// The widest channel tile that divides \p count; 0 when none does.
inline int channel_tile(int count) {
  for (int t : kChannelTiles) {
    if (count > 0 && count % t == 0) return t;
  }
  return 0;
}

/// Output channels per packed group for the channel tile: the widest tile that divides
/// \p cout, else (a count that no tile divides, such as 3 RGB channels) the tile that pads
/// the fewest channels (the widest of those), its last group padded with zero weights.
inline int channel_pack(int cout) {
  if (const int t = channel_tile(cout)) return t;
  int best = 8;
  std::int64_t best_padded = -1;
  for (int t : kChannelTiles) {
    const std::int64_t padded = (static_cast<std::int64_t>(cout) + t - 1) / t * t;
    if (best_padded < 0 || padded < best_padded) {
      best = t;
      best_padded = padded;
    }
  }
  return best;
}

/// Input channels per block of the channel tile: a block's weights for one output-channel
/// tile (taps x block x tile floats) fit in a quarter of L2, so they are read from cache for
/// every W tile of the row.
inline int cin_block(int cin, int taps, int cout_tile) {
  const int fit = static_cast<int>(kL2QuarterFloats / (taps * cout_tile));
  const int block = fit < 8 ? 8 : fit / 8 * 8;
  return block < cin ? block : cin;
}

/// Input channels per block of the contiguous row tile: where a row has several tiles, they
/// take turns on one block, so its weights (taps x block x 12 floats) and its input pages are
/// reused across the row instead of streamed once per tile. Blocks of at most 64, balanced.
/// A row of one tile gains nothing and keeps all channels in one block.
inline int row_cin_block(int cin, int width, int tile_width) {
  if (width <= tile_width) return cin;
  const int blocks = (cin + 63) / 64;
  return (cin + blocks - 1) / blocks;
}

/// Rows per work item for a kernel whose weights are read in input-channel blocks: as many as
/// keep their partial sums (\p width x \p cout_tile floats a row) in a quarter of L2, so that a
/// block's weights are read from L2 for each of those rows, unless that leaves fewer than 4
/// items per thread (\p concurrency threads; \p items_per_row items share each row: batch x
/// frames x channel tiles). Never more rows than make one item per part: with fewer \p rows
/// than the parts wanted, every row is an item of its own.
inline int rows_per_item(int rows, std::int64_t items_per_row, int width, int cout_tile, int concurrency) {
  if (rows <= 0 || items_per_row <= 0 || width <= 0 || cout_tile <= 0) return 1;
  const std::int64_t want = 4 * static_cast<std::int64_t>(concurrency > 0 ? concurrency : 1);
  const std::int64_t groups = items_per_row >= want ? 1 : (want + items_per_row - 1) / items_per_row;
  const std::int64_t parts = groups < rows ? groups : rows;
  std::int64_t group = (rows + parts - 1) / parts;
  const std::int64_t fit = kL2QuarterFloats / (static_cast<std::int64_t>(width) * cout_tile);
  if (group > fit) group = fit > 1 ? fit : 1;
  return static_cast<int>(group);
}

}  // namespace khalo::nn::detail
