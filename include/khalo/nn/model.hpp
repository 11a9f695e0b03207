#pragma once
/// \file
/// The whole Wan 2.1 VAE decoder (docs/decoder.md §5), as diffusers'
/// `AutoencoderKLWan.decode` computes it, distributed over ranks by bands of rows: a
/// sequence of layers built from the keys present in the weights.

#include <khalo/decomposition.hpp>
#include <khalo/nn/layers/attention.hpp>
#include <khalo/nn/layers/layer.hpp>
#include <khalo/nn/layers/up_block.hpp>
#include <khalo/nn/weight_map.hpp>

#include <mpi.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

namespace khalo::io {
class TensorSource;
}

namespace khalo::nn {

/// The shape of a decoder: what the keys of a checkpoint imply.
struct DecoderConfig {
  int z_dim = 0;                       ///< latent channels (post_quant_conv)
  int mid_dim = 0;                     ///< conv_in's output channels, the mid block's width
  int out_dim = 0;                     ///< norm_out / conv_out's input channels
  int out_channels = 3;                ///< conv_out's output channels
  std::vector<StageConfig> up_blocks;  ///< the up-blocks, in order

  /// Wan 2.1's decoder for a base width: widths base x [4, 4, 4, 2, 1], up-blocks
  /// upsample3d, upsample3d, upsample2d, none; up-block i > 0 takes half the previous width.
  static DecoderConfig wan21(int base_dim, int z_dim, int num_res_blocks = 2);
  /// From the keys of \p file (whole state-dict names; encoder keys are ignored). Throws
  /// khalo::io::Error naming what is missing or inconsistent.
  static DecoderConfig infer(const io::TensorSource& file);
  /// Every key and shape of the decoder (whole state-dict names).
  std::vector<KeyShape> keys() const;
  /// Output frames for \p latent_frames: 1 + 2^k (T - 1) with k upsample3d blocks.
  std::int64_t output_frames(std::int64_t latent_frames) const;
  /// Spatial factor: 2^(up-blocks with an upsampler).
  std::int64_t scale() const;
};

/// A decoder's parameters on the host, by whole state-dict key.
struct DecoderWeights : WeightMap {
  DecoderConfig config;  ///< the shape the keys imply
  /// Reads the decoder's tensors (and post_quant_conv's) from \p file, each converted to
  /// float32 on its own. Throws khalo::io::Error naming a missing or mismatched key.
  static DecoderWeights load(const io::TensorSource& file);
  /// Seeded random weights of \p config (the same on every rank).
  static DecoderWeights random(const DecoderConfig& config, std::uint64_t seed);
};

/// Wan 2.1's per-channel latent statistics (z_dim 16): a pipeline's latents are
/// `latents * std + mean` before decoding (--latents-normalized).
extern const std::array<float, 16> kWan21LatentsMean;
/// See kWan21LatentsMean.
extern const std::array<float, 16> kWan21LatentsStd;

/// Output frames of one latent frame, as the decoder hands them over.
struct DecodedFrames {
  const Activation<>* band = nullptr;  ///< this rank's rows of the whole output (N, 3, T_out, rows, W)
  int frames = 0;                      ///< frames [first_frame, first_frame + frames) of *band are new, clamped
  int latent_frame = 0;                ///< which latent frame they came from
  std::int64_t first_frame = 0;        ///< index of the first of them in the whole output
};

/// Time and traffic of a decode, this rank's.
struct DecoderStats {
  HaloStats halo;            ///< every halo exchange of every layer
  AttentionStats attention;  ///< the mid block's attention
};

/// The whole decoder, distributed over ranks by bands of the latent's rows: every layer with
/// its buffers, caches and halo plans, built once and run on any number of latents of the
/// shape it was built for.
class Decoder {
 public:
  /// Collective. \p latent_shape: the global (N, z_dim, T, H, W) of the latent; every rank
  /// must own at least one latent row (std::invalid_argument on every rank otherwise).
  Decoder(MPI_Comm comm, const DecoderWeights& weights, MemoryFormat format, std::vector<std::int64_t> latent_shape);
  ~Decoder();
  Decoder(const Decoder&) = delete;
  Decoder& operator=(const Decoder&) = delete;

  /// The shape of the model.
  const DecoderConfig& config() const;
  /// The latent's decomposition (bands of rows): allocate and fill the latent band with it.
  const Decomposition& latent_decomposition() const;
  /// The global output shape (N, 3, 1 + 4 (T - 1), 8 H, 8 W) for Wan 2.1.
  std::vector<std::int64_t> output_shape() const;
  /// This rank's output rows.
  Range output_rows() const;

  /// Decodes this rank's band of \p latent latent frame by latent frame and returns this
  /// rank's band of the whole output, clamped to [-1, 1]. With \p normalized the latent is
  /// first mapped to `latent * std + mean` (z_dim 16 only). \p on_frames sees the new
  /// output frames after each latent frame; \p on_layer every layer, timed (a fence and a
  /// reduction after each) when \p time_layers (LayerLog). Collective.
  Activation<> run(const Activation<>& latent, bool normalized = false,
                   const std::function<void(const DecodedFrames&)>& on_frames = {},
                   const std::function<void(const LayerEvent&)>& on_layer = {}, bool time_layers = true);

  /// Traffic and time of every call so far.
  DecoderStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace khalo::nn
