#pragma once
/// \file
/// One Wan 2.1 VAE decoder up-block (docs/decoder.md §1), distributed over ranks by
/// bands of rows: (num_res_blocks + 1) residual blocks, then an optional
/// upsample2d / upsample3d resampler; whole-clip or chunked causal decoding.
/// Convolutions read their ghost rows where the halo exchange put them; no
/// tensor is ever concatenated or converted to another layout.

#include <khalo/decomposition.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/nn/layers/up_block.hpp>
#include <khalo/nn/tensor.hpp>
#include <khalo/nn/weight_map.hpp>

#include <mpi.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace khalo::nn {

/// An up-block's parameters on the host, by PyTorch state-dict key relative to the block
/// (docs/weights.md §1), with the configuration they imply.
struct StageWeights : WeightMap {
  StageConfig config;  ///< the shape the keys imply

  /// Reads the stage from a weights file; the shape of the stage (blocks,
  /// channels, shortcut, upsampler) comes from the keys and shapes present.
  /// Throws khalo::io::Error naming any missing or mismatched key.
  static StageWeights load(const io::TensorSource& file);
  /// Seeded random weights for \p config (the same on every rank).
  static StageWeights random(const StageConfig& config, std::uint64_t seed);
  /// The keys and shapes a stage of \p config has.
  static std::vector<KeyShape> expected_keys(const StageConfig& config) { return config.keys(); }
};

/// A stage distributed over \p comm by bands of rows of the input.
class DecoderStage {
 public:
  /// Collective. \p input_shape is the global (N, C, T, H, W) of the input;
  /// every rank must own at least one row (std::invalid_argument otherwise, on every rank).
  DecoderStage(MPI_Comm comm, const StageWeights& weights, MemoryFormat format, std::vector<std::int64_t> input_shape);
  ~DecoderStage();
  DecoderStage(const DecoderStage&) = delete;
  DecoderStage& operator=(const DecoderStage&) = delete;

  /// The input decomposition (bands of rows): allocate and fill the input band with it.
  const Decomposition& input_decomposition() const;
  /// Global output shape for \p chunks (0 = whole clip).
  std::vector<std::int64_t> output_shape(int chunks) const;
  /// This rank's first output row and row count.
  Range output_rows() const;

  /// Decodes this rank's band of \p input (extents: the input decomposition's
  /// local extents) in \p chunks consecutive chunks (0: the whole clip at once)
  /// and returns this rank's band of the output. \p on_layer sees every layer, timed when
  /// \p time_layers (LayerLog). Collective.
  Activation<> run(const Activation<>& input, int chunks, const std::function<void(const LayerEvent&)>& on_layer = {},
                   bool time_layers = true);

  /// Halo traffic of all exchanges so far (sum over this rank's plans).
  HaloStats halo_stats() const;
  /// The stage's shape.
  const StageConfig& config() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Frames per chunk when \p frames are split into \p chunks like numpy.array_split.
std::vector<int> chunk_sizes(int frames, int chunks);

/// Fills this rank's band of an (N, C, T, H, W) input with seeded values in
/// [-1, 1) that depend only on the global index (so any decomposition agrees).
void fill_random_input(const Activation<>& band, const Decomposition& dec, std::uint64_t seed);

}  // namespace khalo::nn
