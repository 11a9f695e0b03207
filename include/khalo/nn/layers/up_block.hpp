#pragma once
/// \file
/// One up-block of the decoder (docs/decoder.md §3): (num_res_blocks + 1) residual blocks,
/// then an optional resampler. The last block writes the resampler's input with its ghost
/// rows in place, so nothing is copied between them.

#include <khalo/nn/layers/resample.hpp>
#include <khalo/nn/layers/residual_block.hpp>

#include <memory>
#include <string>
#include <vector>

namespace khalo::io {
class TensorSource;
}

namespace khalo::nn {

/// The shape of one up-block.
struct StageConfig {
  int in_dim = 0;                      ///< input channels
  int out_dim = 0;                     ///< the residual blocks' output channels
  int num_res_blocks = 1;              ///< residual blocks minus one
  Upsample upsample = Upsample::none;  ///< the resampler
  /// Channels of the stage's output.
  int output_channels() const { return upsample == Upsample::none ? out_dim : out_dim / 2; }
  /// The keys and shapes an up-block of this configuration has, relative to its prefix.
  std::vector<KeyShape> keys() const;
  /// The configuration of the up-block whose keys \p file holds (relative to its prefix):
  /// blocks, channels and upsampler from the keys present. Throws khalo::io::Error naming
  /// what is missing.
  static StageConfig infer(const io::TensorSource& file);
};

/// One up-block with its layers.
class UpBlock {
 public:
  /// The up-block of \p config under \p prefix of \p weights, for inputs of \p bands with at
  /// most \p max_frames frames. Collective.
  UpBlock(const RowBands& bands, const WeightMap& weights, const std::string& prefix, const StageConfig& config,
          int max_frames);

  /// Its shape.
  const StageConfig& config() const { return config_; }
  /// The bands of the output (twice the rows with an upsampler).
  RowBands output_bands() const { return resample_ ? bands_.upsampled() : bands_; }
  /// Output frames for \p frames in at the next call.
  int output_frames(int frames) const { return resample_ ? resample_->output_frames(frames) : frames; }

  /// out = block(x): x (N, in_dim, frames, rows, W); out (N, output_channels,
  /// output_frames(frames), output rows, output W). \p out_view: the activation that holds
  /// out, for the log. Collective.
  void run(const Strided5& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
           const Activation<>* out_view = nullptr);
  /// The next call starts a new clip (every cache empty).
  void reset();
  /// Traffic of its halo exchanges so far.
  HaloStats halo_stats() const;

 private:
  RowBands bands_;
  StageConfig config_;
  std::vector<std::unique_ptr<ResidualBlock>> blocks_;
  std::vector<Activation<LayerMem>> outs_;  // block outputs (N, out_dim, max_frames, rows + 2, W), in turn
  std::unique_ptr<Resample> resample_;
};

}  // namespace khalo::nn
