#pragma once
/// \file
/// A residual block (docs/decoder.md §1): `conv2(silu(norm2(conv1(silu(norm1(x)))))) +
/// shortcut(x)`, with a 1x1x1 shortcut when the channel count changes.

#include <khalo/nn/layers/causal_conv3d.hpp>

#include <optional>
#include <string>
#include <vector>

namespace khalo::nn {

/// A residual block with its two causal convolutions and their caches.
class ResidualBlock {
 public:
  /// The keys of a block from \p cin to \p cout channels, relative to its prefix.
  static std::vector<KeyShape> keys(std::int64_t cin, std::int64_t cout);

  /// The block under \p prefix of \p weights (e.g. "resnets.0."); channels from its conv1.
  /// Collective.
  ResidualBlock(const RowBands& bands, const WeightMap& weights, const std::string& prefix, int max_frames);

  int in_channels() const { return conv1_.in_channels(); }    ///< Cin
  int out_channels() const { return conv1_.out_channels(); }  ///< Cout

  /// out = block(x) over frames [0, frames): x (N, cin, frames, rows, W), out (N, cout,
  /// frames, rows, W), not overlapping x. \p out_view / \p out_row0: the activation that
  /// holds out and the row out starts at, for the log. Collective.
  void run(const Strided5& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
           const Activation<>* out_view = nullptr, int out_row0 = 0);
  /// The next call starts a new clip (zeros in front).
  void reset();
  /// Traffic of its halo exchanges so far.
  HaloStats halo_stats() const;

 private:
  RowBands bands_;
  CausalConv3d conv1_, conv2_;
  std::optional<CausalConv3d> shortcut_;
  int max_frames_ = 0;
  Activation<LayerMem> y1_;            // conv1's output (N, cout, max_frames, rows, W), borrowed in run()
  Activation<LayerMem> shortcut_out_;  // (N, cout, max_frames, rows, W) when there is a shortcut
};

}  // namespace khalo::nn
