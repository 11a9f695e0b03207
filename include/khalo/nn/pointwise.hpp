#pragma once
/// \file
/// Pointwise parts of the decoder: RMS norm over channels (fused with SiLU, or alone), and
/// frame copies for the causal cache.

#include <khalo/detail/block.hpp>
#include <khalo/detail/math.hpp>
#include <khalo/detail/strides.hpp>
#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <vector>

namespace khalo::nn {

namespace detail {

/// The body of rms_norm at one (n, t, h, w). A named functor rather than a KOKKOS_LAMBDA:
/// rms_norm is a header template, and for_each_index copies its body (the comment above
/// RunPieces in khalo/detail/block.hpp says why nvcc's lambdas must not cross such templates).
struct RmsNormAt {
  Strided5 in, out;
  const float* gamma;
  int C;
  float scale;
  bool silu;
  KOKKOS_INLINE_FUNCTION void operator()(int n, int, int t, int h, int w) const {
    const float* x = in.data + in.offset(n, 0, t, h, w);
    float* y = out.data + out.offset(n, 0, t, h, w);
    float ss = 0.0f;
    for (int c = 0; c < C; ++c) ss += x[c * in.stride[1]] * x[c * in.stride[1]];
    float norm = khalo::detail::sqrt(ss);
    norm = norm > 1e-12f ? norm : 1e-12f;
    for (int c = 0; c < C; ++c) {
      const float v = x[c * in.stride[1]] / norm * scale * gamma[c];
      y[c * out.stride[1]] = silu ? v / (1.0f + khalo::detail::exp(-v)) : v;
    }
  }
};

}  // namespace detail

/// out = x / max(||x||_2, 1e-12) * sqrt(C) * gamma over channels at every (n, t, h, w) of the
/// region n < N, t < T, h < H, w < W (docs/decoder.md §1), then SiLU when \p silu (the residual
/// blocks and norm_out; the attention block's norm has none).
template <class Exec>
void rms_norm(const Exec& exec, Strided5 in, Strided5 out, const float* gamma, int N, int C, int T, int H, int W,
              bool silu = false) {
  const float scale = khalo::detail::sqrt(static_cast<float>(C));
  for_each_index(silu ? "khalo::nn::rms_norm_silu" : "khalo::nn::rms_norm", exec, N, 1, T, H, W,
                 detail::RmsNormAt{in, out, gamma, C, scale, silu});
}

/// rms_norm followed by SiLU.
template <class Exec>
void rms_norm_silu(const Exec& exec, Strided5 in, Strided5 out, const float* gamma, int N, int C, int T, int H, int W) {
  rms_norm(exec, in, out, gamma, N, C, T, H, W, true);
}

namespace detail {

// Frames [first, first + count) of \p s over N x C x H x W, walked in \p order (slowest
// first). The block kernels copy whole runs of memory; a walk in logical order (w
// fastest) strode a channels-last tensor C floats per element and took a third of the stage.
inline khalo::detail::BlockWalk frame_walk(const Strided5& s, const std::vector<int>& order, int first, int count,
                                           int N, int C, int H, int W, bool merge) {
  const khalo::detail::Extents strides(s.stride.data(), s.stride.data() + 5);
  const khalo::detail::Block block{{0, 0, first, 0, 0}, {N, C, count, H, W}};
  return khalo::detail::make_walk(strides, order, block, merge);
}

inline std::vector<int> order_of(const Strided5& s) {
  return khalo::detail::order_by_stride(khalo::detail::Extents(s.stride.data(), s.stride.data() + 5), {0, 1, 2, 3, 4});
}

}  // namespace detail

/// Copies frames [from, from + count) of \p src onto frames [to, to + count) of
/// \p dst, over N x C x H x W (the causal cache). Any two memory formats.
template <class Exec>
void copy_frames(const Exec& exec, Strided5 src, int from, Strided5 dst, int to, int count, int N, int C, int H,
                 int W) {
  // Both walks in dst's order, unmerged: element i of one is element i of the other.
  const auto order = detail::order_of(dst);
  khalo::detail::copy_block(exec, src.data, detail::frame_walk(src, order, from, count, N, C, H, W, false), dst.data,
                            detail::frame_walk(dst, order, to, count, N, C, H, W, false));
}

/// Sets frames [from, from + count) of \p dst to zero over N x C x H x W.
template <class Exec>
void zero_frames(const Exec& exec, Strided5 dst, int from, int count, int N, int C, int H, int W) {
  khalo::detail::zero_block(exec, dst.data,
                            detail::frame_walk(dst, detail::order_of(dst), from, count, N, C, H, W, true));
}

}  // namespace khalo::nn
