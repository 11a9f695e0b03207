#pragma once
/// \file
/// Pointwise parts of the stage: RMS norm over channels fused with SiLU, and
/// frame copies for the causal cache.

#include <khalo/detail/math.hpp>
#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace khalo::nn {

/// out = silu(x / max(||x||_2, 1e-12) * sqrt(C) * gamma) over channels at every
/// (n, t, h, w) of the region n < N, t < T, h < H, w < W (design.md 5.5).
template <class Exec>
void rms_norm_silu(const Exec& exec, Strided5 in, Strided5 out, const float* gamma, int N, int C, int T, int H, int W) {
  const std::int64_t items = static_cast<std::int64_t>(N) * T * H * W;
  const float scale = khalo::detail::sqrt(static_cast<float>(C));
  Kokkos::parallel_for(
      "khalo::nn::rms_norm_silu", Kokkos::RangePolicy<Exec>(exec, 0, items), KOKKOS_LAMBDA(const std::int64_t i) {
        std::int64_t r = i;
        const int w = static_cast<int>(r % W);
        r /= W;
        const int h = static_cast<int>(r % H);
        r /= H;
        const int t = static_cast<int>(r % T);
        const int n = static_cast<int>(r / T);
        const float* x = in.data + in.offset(n, 0, t, h, w);
        float* y = out.data + out.offset(n, 0, t, h, w);
        float ss = 0.0f;
        for (int c = 0; c < C; ++c) ss += x[c * in.stride[1]] * x[c * in.stride[1]];
        float norm = khalo::detail::sqrt(ss);
        norm = norm > 1e-12f ? norm : 1e-12f;
        for (int c = 0; c < C; ++c) {
          const float v = x[c * in.stride[1]] / norm * scale * gamma[c];
          y[c * out.stride[1]] = v / (1.0f + khalo::detail::exp(-v));
        }
      });
}

namespace detail {

// Calls f(n, c, t, h, w) for t in [0, count) over N x C x H x W, one work item each.
template <class Exec, class F>
void for_each_frame_element(const Exec& exec, const char* label, int N, int C, int count, int H, int W, F f) {
  const std::int64_t items = static_cast<std::int64_t>(N) * C * count * H * W;
  Kokkos::parallel_for(
      label, Kokkos::RangePolicy<Exec>(exec, 0, items), KOKKOS_LAMBDA(const std::int64_t i) {
        std::int64_t r = i;
        const int w = static_cast<int>(r % W);
        r /= W;
        const int h = static_cast<int>(r % H);
        r /= H;
        const int t = static_cast<int>(r % count);
        r /= count;
        const int c = static_cast<int>(r % C);
        f(static_cast<int>(r / C), c, t, h, w);
      });
}

struct CopyFrame {
  Strided5 src, dst;
  int from, to;
  KOKKOS_INLINE_FUNCTION void operator()(int n, int c, int t, int h, int w) const {
    dst(n, c, to + t, h, w) = src(n, c, from + t, h, w);
  }
};

struct ZeroFrame {
  Strided5 dst;
  int from;
  KOKKOS_INLINE_FUNCTION void operator()(int n, int c, int t, int h, int w) const { dst(n, c, from + t, h, w) = 0.0f; }
};

}  // namespace detail

/// Copies frames [from, from + count) of \p src onto frames [to, to + count) of
/// \p dst, over N x C x H x W (the causal cache).
template <class Exec>
void copy_frames(const Exec& exec, Strided5 src, int from, Strided5 dst, int to, int count, int N, int C, int H,
                 int W) {
  detail::for_each_frame_element(exec, "khalo::nn::copy_frames", N, C, count, H, W,
                                 detail::CopyFrame{src, dst, from, to});
}

/// Sets frames [from, from + count) of \p dst to zero over N x C x H x W.
template <class Exec>
void zero_frames(const Exec& exec, Strided5 dst, int from, int count, int N, int C, int H, int W) {
  detail::for_each_frame_element(exec, "khalo::nn::zero_frames", N, C, count, H, W, detail::ZeroFrame{dst, from});
}

}  // namespace khalo::nn
