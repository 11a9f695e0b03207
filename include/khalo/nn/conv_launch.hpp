#pragma once
/// \file
/// What one convolution launch computes: which tensors, which output rows,
/// frames and channels.

#include <khalo/nn/tensor.hpp>

#include <cstdint>

namespace khalo::nn {

/// One convolution launch: output rows [row_begin, row_end) of every frame, output channels
/// [cout_begin, cout_begin + cout_count) of the weights. The tensors live in the weights'
/// memory space (khalo::nn::conv checks at compile time that the execution space reaches it).
struct ConvLaunch {
  Strided5 in;   ///< input, shifted so that (n, c, t, h, w) is the first tap of output (n, ., t, h, w)
  Strided5 out;  ///< output (n, c, t, h, w); c counts from cout_begin
  /// Added to the output when its data is not null (same indexing as out). The address ranges
  /// that the launch reaches in it and in out must not intersect, nor may those of in and out
  /// (conv throws): partial sums over blocks of input channels are stored in out before the
  /// residual is added and while the input is still read.
  Strided5 residual;
  int n = 1;           ///< batch
  int frames = 1;      ///< output frames
  int row_begin = 0;   ///< first output row to compute
  int row_end = 0;     ///< one past the last output row to compute
  int out_width = 0;   ///< output columns
  int in_width = 0;    ///< input columns (the kernels pad W with zeros beyond them)
  int cout_begin = 0;  ///< first output channel of the weights this launch computes
  int cout_count = 0;  ///< output channels this launch computes
  /// Upsampling only: global index of this band's first input row (for the 2x row map).
  std::int64_t up_first_row = 0;
};

}  // namespace khalo::nn
