#pragma once
/// \file
/// A causal Conv3d layer (docs/decoder.md §1–2) with what it keeps between calls: its packed
/// weights, the cache, and the halo plans of its input buffer (the cached frames in front and
/// ghost rows around, borrowed from the bands' scratch for the length of a call).

#include <khalo/nn/conv.hpp>
#include <khalo/nn/layers/layer.hpp>
#include <khalo/nn/weight_map.hpp>

#include <string>

namespace khalo::nn {

/// What a causal convolution applies to its input before it convolves.
enum class Prologue {
  copy,      ///< nothing
  norm_silu  ///< RMS norm over channels, then SiLU (docs/decoder.md §1)
};

/// A causal Conv3d: zero (or cached) frames in front in time, ghost rows from the halo.
class CausalConv3d {
 public:
  /// Weights `key.weight` (cout, cin, kt, kh, kw), kt and kh in {1, 3} with kw == kh, and
  /// `key.bias` (cout); with Prologue::norm_silu, the norm's gamma under \p gamma_key (cin
  /// values). \p max_frames bounds the frames of one call. Collective (kernels with 3 rows
  /// plan halo exchanges).
  CausalConv3d(const RowBands& bands, const WeightMap& weights, const std::string& key, int max_frames,
               Prologue prologue = Prologue::copy, const std::string& gamma_key = {});

  int in_channels() const { return w_.cin; }    ///< Cin
  int out_channels() const { return w_.cout; }  ///< Cout
  /// Multiply-adds per output element.
  double macs_per_output() const { return static_cast<double>(w_.macs_per_output()); }
  /// The packed weights.
  const ConvWeights<LayerMem>& weights() const { return w_; }

  /// out = conv(prologue(x)) (+ residual when its data is not null) over frames [0, frames):
  /// x is this rank's band (N, cin, frames, rows, W), out and residual (N, cout, frames,
  /// rows, W). In front of the frames: the previous call's last frames when that call kept
  /// them, else zeros. \p keep_cache keeps this call's last frames for the next call.
  /// Collective. Returns the kernel that ran.
  ConvKernel run(const Strided5& x, int frames, const Strided5& out, const Strided5& residual, bool keep_cache);

  /// For launches of one's own (time_conv's interleaved halves): fills the input buffer for
  /// \p frames frames of \p x and returns it, shifted so that (n, c, t, h, w) is the first
  /// tap of output (n, ., t, h, w). Kernels with 3 rows are not exchanged by this call. The
  /// buffer is scratch: nothing between prepare() and finish() may borrow the bands' scratch.
  Strided5 prepare(const Strided5& x, int frames);
  /// After the launches on prepare()'s buffer: keeps the cache when asked.
  void finish(int frames, bool keep_cache);

  /// Forgets the cache: the next call has zeros in front.
  void reset() { cached_ = false; }
  /// Traffic of its halo exchanges so far.
  HaloStats halo_stats() const { return halos_.stats(); }

 private:
  RowBands bands_;
  ConvWeights<LayerMem> w_;
  Prologue prologue_;
  Kokkos::View<float*, LayerMem> gamma_;
  int ghost_ = 0;        // ghost rows each side: kh / 2
  bool direct_ = false;  // 1x1x1 without prologue: reads x itself, keeps no buffer
  int max_frames_ = 0;
  Activation<LayerMem> buffer_;  // (N, cin, 2 + max_frames, rows + 2 ghost, W), borrowed in prepare()
  Activation<LayerMem> cache_;   // (N, cin, 2, rows + 2 ghost, W)
  bool cached_ = false;
  HaloPlans halos_;
};

/// The packed weights of `key.weight` / `key.bias` of \p weights, for activations in \p format.
ConvWeights<LayerMem> conv_weights(const WeightMap& weights, const std::string& key, MemoryFormat format);

/// A host vector on the layers' memory space.
Kokkos::View<float*, LayerMem> device_vector(const std::vector<float>& v, const std::string& label);

}  // namespace khalo::nn
