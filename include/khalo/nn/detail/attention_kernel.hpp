#pragma once
/// \file
/// The kernels of khalo::nn::SpatialAttention (src/nn/layers/attention.cpp): the gathered keys
/// and values into panels in global position order, and softmax(q k^T / sqrt(C)) v for a
/// rank's queries. Not public.

#include <khalo/detail/math.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>

namespace khalo::nn::detail {

// The attention kernel's blocking. Each work item takes kQueryBlock queries of one frame and
// walks the keys in blocks of kKeyBlock, in global position order; a register tile is kRows
// queries by kLanes keys (scores) or channels (weighted sum). Key blocks start at multiples
// of kKeyBlock of the global position, so every query sees the same blocks on any number of
// ranks: its scores are summed over channels in order, its softmax is updated block after
// block, its weighted sum over keys in global order.
constexpr int kQueryBlock = 32;
constexpr int kKeyBlock = 128;
#if defined(KOKKOS_ENABLE_CUDA)
constexpr int kRows = 4;  // 8 rows take 255 registers and spill 1.1 KiB per thread on sm_90
#else
constexpr int kRows = 8;  // 16 of the 32 AVX-512 registers accumulate
#endif
constexpr int kLanes = 32;
static_assert(kQueryBlock % kRows == 0 && kKeyBlock % kLanes == 0, "tiles must divide blocks");

/// The sizes the kernels share, per frame f = n * frames + t, positions p = h * W + w.
struct AttentionShape {
  std::int64_t F = 0;   ///< frames of the call (N x frames)
  std::int64_t P = 0;   ///< this rank's positions per frame (rows x W)
  std::int64_t G = 0;   ///< global positions per frame (H x W)
  int C = 0;            ///< channels
  std::int64_t Cp = 0;  ///< channels padded to kLanes
  std::int64_t Pq = 0;  ///< this rank's positions padded to kQueryBlock
  std::int64_t Gk = 0;  ///< global positions padded to kKeyBlock
  std::int64_t W = 0;   ///< positions per row
};

/// Keys and values of every rank (\p recv: rank bands in rank order, each k (F, band
/// positions, C) then v) into panels in global position order: keys (F, Gk / kLanes, C,
/// kLanes), values (F, Cp / kLanes, G, kLanes). \p band_of_row (H): the band holding a global
/// row; \p band_first, \p band_len: each band's first row and rows.
template <class Exec>
void attention_panels(const Exec& exec, const AttentionShape& s, const float* recv,
                      const Kokkos::View<int*, typename Exec::memory_space>& band_of_row,
                      const Kokkos::View<std::int64_t*, typename Exec::memory_space>& band_first,
                      const Kokkos::View<std::int64_t*, typename Exec::memory_space>& band_len, float* keys_t,
                      float* values) {
  const std::int64_t F = s.F, G = s.G, Cp = s.Cp, Gk = s.Gk, Wl = s.W;
  const int C = s.C;
  Kokkos::parallel_for(
      "khalo::attention::unpack", Kokkos::RangePolicy<Exec>(exec, 0, F * G), KOKKOS_LAMBDA(const std::int64_t i) {
        const std::int64_t f = i / G, pos = i % G;
        const int band = band_of_row(pos / Wl);
        const std::int64_t first = band_first(band), band_positions = band_len(band) * Wl;
        const float* k = recv + 2 * F * C * Wl * first + (f * band_positions + pos - first * Wl) * C;
        const float* v = k + F * band_positions * C;
        float* kt = keys_t + f * C * Gk + (pos / kLanes) * C * kLanes + pos % kLanes;
        float* vv = values + f * G * Cp + pos * kLanes;
        for (int c = 0; c < C; ++c) {
          kt[c * kLanes] = k[c];
          vv[(c / kLanes) * G * kLanes + c % kLanes] = v[c];
        }
      });
}

/// acc = softmax(q k^T / sqrt(C)) v for this rank's queries \p qd (F, Pq, Cp), over the
/// panels of attention_panels(); \p accd (F, Pq, Cp).
template <class Exec>
void attention_softmax(const Exec& exec, const AttentionShape& s, const float* qd, const float* keys_t,
                       const float* values, float* accd) {
  const std::int64_t F = s.F, P = s.P, G = s.G, Cp = s.Cp, Pq = s.Pq, Gk = s.Gk;
  const int C = s.C;
  const float scale = 1.0f / khalo::detail::sqrt(static_cast<float>(C));
  const std::int64_t blocks = Pq / kQueryBlock;
  Kokkos::parallel_for(
      "khalo::attention::softmax", Kokkos::RangePolicy<Exec>(exec, 0, F * blocks),
      KOKKOS_LAMBDA(const std::int64_t item) {
        const std::int64_t f = item / blocks, q0 = (item % blocks) * kQueryBlock;
        const float* qb = qd + (f * Pq + q0) * Cp;
        float* ab = accd + (f * Pq + q0) * Cp;
        const float* kf = keys_t + f * C * Gk;
        const float* vf = values + f * G * Cp;
        // Row chunks past the band's last query hold padding: skip them.
        const std::int64_t left = P - q0;
        const int live = left >= kQueryBlock ? kQueryBlock : static_cast<int>((left + kRows - 1) / kRows * kRows);
        float mx[kQueryBlock], sum[kQueryBlock], alpha[kQueryBlock];
        float s[kQueryBlock][kKeyBlock];
        for (int r = 0; r < live; ++r) {
          mx[r] = -3.0e38f;
          sum[r] = 0.0f;
          for (std::int64_t c = 0; c < Cp; ++c) ab[r * Cp + c] = 0.0f;
        }
        for (std::int64_t j0 = 0; j0 < G; j0 += kKeyBlock) {
          const int kb = static_cast<int>(G - j0 < kKeyBlock ? G - j0 : kKeyBlock);
          // Scores: each summed over channels in order, then scaled.
          for (int jt = 0; jt < kb; jt += kLanes) {
            for (int r0 = 0; r0 < live; r0 += kRows) {
              float a[kRows][kLanes] = {};
              for (int c = 0; c < C; ++c) {
                const float* k = kf + ((j0 + jt) / kLanes * C + c) * kLanes;
                for (int r = 0; r < kRows; ++r) {
                  const float qv = qb[(r0 + r) * Cp + c];
                  for (int l = 0; l < kLanes; ++l) a[r][l] += qv * k[l];
                }
              }
              for (int r = 0; r < kRows; ++r)
                for (int l = 0; l < kLanes; ++l) s[r0 + r][jt + l] = a[r][l] * scale;
            }
          }
          // Online softmax: the running maximum and sum, updated once per key block.
          for (int r = 0; r < live; ++r) {
            float top = mx[r];
            for (int j = 0; j < kb; ++j) top = s[r][j] > top ? s[r][j] : top;
            alpha[r] = khalo::detail::exp(mx[r] - top);
            float block_sum = 0.0f;
            for (int j = 0; j < kb; ++j) {
              const float p = khalo::detail::exp(s[r][j] - top);
              s[r][j] = p;
              block_sum += p;
            }
            sum[r] = sum[r] * alpha[r] + block_sum;
            mx[r] = top;
          }
          // Weighted values, keys in order.
          for (std::int64_t c0 = 0; c0 < Cp; c0 += kLanes) {
            for (int r0 = 0; r0 < live; r0 += kRows) {
              float a[kRows][kLanes];
              for (int r = 0; r < kRows; ++r)
                for (int l = 0; l < kLanes; ++l) a[r][l] = ab[(r0 + r) * Cp + c0 + l] * alpha[r0 + r];
              for (int j = 0; j < kb; ++j) {
                const float* v = vf + (c0 / kLanes * G + j0 + j) * kLanes;
                for (int r = 0; r < kRows; ++r) {
                  const float p = s[r0 + r][j];
                  for (int l = 0; l < kLanes; ++l) a[r][l] += p * v[l];
                }
              }
              for (int r = 0; r < kRows; ++r)
                for (int l = 0; l < kLanes; ++l) ab[(r0 + r) * Cp + c0 + l] = a[r][l];
            }
          }
        }
        for (int r = 0; r < live; ++r)
          for (std::int64_t c = 0; c < Cp; ++c) ab[r * Cp + c] /= sum[r];
      });
}

}  // namespace khalo::nn::detail
