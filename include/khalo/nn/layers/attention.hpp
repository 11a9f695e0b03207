#pragma once
/// \file
/// The decoder mid block's spatial self-attention (docs/decoder.md §8), distributed over
/// ranks by bands of rows: RMS norm over channels, a 1x1 `to_qkv` projection, single-head
/// softmax attention over the H x W positions of each frame, a 1x1 `proj` projection, plus the
/// input. Every rank gathers every rank's keys and values and walks them in global position
/// order, so the output is bit-identical on any number of ranks.

#include <khalo/decomposition.hpp>
#include <khalo/nn/tensor.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace khalo::io {
class TensorSource;
}

namespace khalo::nn {

/// The attention block's parameters on the host, in PyTorch's C order (docs/decoder.md §8).
struct AttentionWeights {
  int channels = 0;                ///< C
  std::vector<float> gamma;        ///< norm.gamma, (C, 1, 1)
  std::vector<float> qkv_weight;   ///< to_qkv.weight, (3C, C, 1, 1): rows [0, C) make q, [C, 2C) k, [2C, 3C) v
  std::vector<float> qkv_bias;     ///< to_qkv.bias, (3C)
  std::vector<float> proj_weight;  ///< proj.weight, (C, C, 1, 1)
  std::vector<float> proj_bias;    ///< proj.bias, (C)

  /// Reads the block from \p file under the keys \p prefix followed by norm.gamma and so on
  /// (the names diffusers uses below decoder.mid_block.attentions.0); the channels come from
  /// to_qkv.weight.
  /// Throws khalo::io::Error naming any missing or mismatched key.
  static AttentionWeights load(const io::TensorSource& file, const std::string& prefix = {});
  /// Seeded random weights for \p channels (the same on every rank).
  static AttentionWeights random(int channels, std::uint64_t seed);
  /// The keys (without prefix) and shapes of a block of \p channels.
  static std::vector<std::pair<std::string, std::vector<std::int64_t>>> expected_keys(int channels);
};

/// What SpatialAttention::run did so far, on this rank.
struct AttentionStats {
  std::int64_t calls = 0;           ///< run() calls
  std::int64_t bytes_gathered = 0;  ///< bytes this rank received from the gather (its own included)
  double gather_seconds = 0;        ///< in MPI_Allgatherv (staging copies included)
  double compute_seconds = 0;       ///< everything else in run
  double flops = 0;                 ///< this rank's share: projections and attention
};

/// Spatial self-attention over the frames of a row-distributed (N, C, T, H, W) activation.
class SpatialAttention {
 public:
  /// Collective over \p rows' ranks. \p rows: the decomposition of the (N, C, T, H, W)
  /// activation at this layer, dimension 3 (H) split over a 1-D grid (T is not used: run
  /// takes up to \p max_frames frames). Allocates every buffer, the gathered keys and values
  /// of max_frames frames included. Throws std::invalid_argument on every rank when C differs
  /// from the weights' channels, the split is not rows over a 1-D grid, max_frames < 1, or a
  /// gather of max_frames frames would not fit MPI's int counts.
  SpatialAttention(const Decomposition& rows, const AttentionWeights& weights, int max_frames);
  ~SpatialAttention();
  SpatialAttention(const SpatialAttention&) = delete;
  SpatialAttention& operator=(const SpatialAttention&) = delete;

  /// Collective, blocking. \p x and \p out: this rank's band, extents (N, C, frames, rows, W)
  /// with rows = the band's rows, in any memory format, in the default execution space's
  /// memory. out = x + attention(x). \p out may be \p x itself (same pointer and strides:
  /// computed in place); otherwise the address span of \p out must not meet that of \p x.
  /// Throws std::invalid_argument on every rank when frames is outside [1, max_frames] or the
  /// tensors overlap otherwise, on any rank.
  void run(Strided5 x, Strided5 out, int frames);

  /// Gather traffic and time, compute time and flops of every call so far (this rank's).
  const AttentionStats& stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace khalo::nn
