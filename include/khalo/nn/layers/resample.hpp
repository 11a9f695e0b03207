#pragma once
/// \file
/// The up-block's resampler (docs/decoder.md §1): nearest-exact 2x in H and W fused into a
/// per-frame 3x3 convolution from C to C/2 channels, after upsample3d's `time_conv`
/// (causal 3x1x1, C -> 2C, halves interleaved in time) on every call but the first.

#include <khalo/nn/layers/causal_conv3d.hpp>

#include <optional>
#include <string>
#include <vector>

namespace khalo::nn {

/// An up-block's resampler.
enum class Upsample {
  none,        ///< no resampler
  upsample2d,  ///< nearest 2x in H and W, then a 3x3 conv
  upsample3d   ///< time_conv (after the first call), then as upsample2d
};
/// "none", "upsample2d" or "upsample3d".
std::string to_string(Upsample u);
/// The inverse of to_string; std::invalid_argument for any other name.
Upsample upsample_from_string(const std::string& name);

/// An up-block's resampler, with time_conv's cache and its 'Rep' first call.
class Resample {
 public:
  /// The keys of a resampler of \p channels, relative to its prefix.
  static std::vector<KeyShape> keys(Upsample mode, std::int64_t channels);

  /// The resampler under \p prefix (e.g. "upsamplers.0.") for inputs of \p bands and
  /// \p max_frames frames. Collective.
  Resample(const RowBands& bands, const WeightMap& weights, const std::string& prefix, Upsample mode, int max_frames);

  int in_channels() const { return resample_.cin; }    ///< C
  int out_channels() const { return resample_.cout; }  ///< C / 2
  /// Frames out for \p frames in at the next call: twice as many once upsample3d has run once.
  int output_frames(int frames) const { return time_conv_ && !first_call_ ? 2 * frames : frames; }

  /// out = resample(x): \p x holds the input with one ghost row above and below (N, C,
  /// >= frames, rows + 2, W) and is exchanged here; out is (N, C/2, output_frames(frames),
  /// 2 rows, 2 W). Collective.
  void run(const Activation<>& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
           const Activation<>* out_view = nullptr);
  /// The next call is a first call again (upsample3d's 'Rep' slot is empty).
  void reset();
  /// Traffic of its halo exchanges so far.
  HaloStats halo_stats() const;

 private:
  RowBands bands_, out_bands_;
  ConvWeights<LayerMem> resample_;
  std::optional<CausalConv3d> time_conv_;
  Activation<LayerMem> up_in_;  // time_conv's interleaved output (N, C, 2 max_frames, rows + 2, W)
  HaloPlans x_halos_, up_halos_;
  bool first_call_ = true;
};

}  // namespace khalo::nn
