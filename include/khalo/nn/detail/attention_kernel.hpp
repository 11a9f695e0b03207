#pragma once
/// \file
/// The kernels of khalo::nn::SpatialAttention (src/nn/layers/attention.cpp): the gathered keys
/// and values into panels in global position order, and softmax(q k^T / sqrt(C)) v for a
/// rank's queries. Not public.

#include <khalo/detail/math.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
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

/// One query's online softmax over one key block: its \p kb scores become exp(score - max),
/// the running maximum \p mx and sum \p sum take the block in, and \p alpha is the factor that
/// rescales what was accumulated before it. Keys in order, so that every kernel gets the same bits.
KOKKOS_INLINE_FUNCTION void softmax_block(float* score, int kb, float& mx, float& sum, float& alpha) {
  float top = mx;
  for (int j = 0; j < kb; ++j) top = score[j] > top ? score[j] : top;
  alpha = khalo::detail::exp(mx - top);
  float block_sum = 0.0f;
  for (int j = 0; j < kb; ++j) {
    const float p = khalo::detail::exp(score[j] - top);
    score[j] = p;
    block_sum += p;
  }
  sum = sum * alpha + block_sum;
  mx = top;
}

/// acc = softmax(q k^T / sqrt(C)) v for this rank's queries \p qd (F, Pq, Cp), over the
/// panels of attention_panels(); \p accd (F, Pq, Cp). One work item per query block, its
/// scores in a register and stack tile: the host's kernel (on a GPU a thread would hold 254
/// registers and a 16 KiB stack frame, and a frame has a few hundred query blocks).
template <class Exec>
void attention_softmax_tiles(const Exec& exec, const AttentionShape& s, const float* qd, const float* keys_t,
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
          for (int r = 0; r < live; ++r) softmax_block(s[r], kb, mx[r], sum[r], alpha[r]);
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

/// attention_softmax_tiles' arithmetic as a team kernel: one team per query block, the block's
/// scores, running maxima, sums and rescale factors in team scratch, the threads over (key, row
/// chunk) for the scores, over rows for the softmax and over (channel, row chunk) for the
/// weighted sum. Each score, maximum, sum and output element is still made by one thread in the
/// same order as the tile kernel (channels in order, keys in order), so both give the same bits
/// and the result stays independent of the rank count. A functor: see the note above RunPieces
/// in khalo/detail/block.hpp.
template <class Exec>
struct AttentionTeamKernel {
  using Member = typename Kokkos::TeamPolicy<Exec>::member_type;
  AttentionShape s;
  const float* qd;
  const float* keys_t;
  const float* values;
  float* accd;
  float scale;
  std::int64_t blocks;

  /// Team scratch: the scores (kQueryBlock x kKeyBlock), then maxima, sums and factors.
  static constexpr std::size_t scratch_floats = kQueryBlock * kKeyBlock + 3 * kQueryBlock;

  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    const std::int64_t item = team.league_rank();
    const std::int64_t f = item / blocks, q0 = (item % blocks) * kQueryBlock;
    const std::int64_t Cp = s.Cp, G = s.G;
    const int C = s.C;
    const float* qb = qd + (f * s.Pq + q0) * Cp;
    float* ab = accd + (f * s.Pq + q0) * Cp;
    const float* kf = keys_t + f * C * s.Gk;
    const float* vf = values + f * G * Cp;
    const std::int64_t left = s.P - q0;
    const int live = left >= kQueryBlock ? kQueryBlock : static_cast<int>((left + kRows - 1) / kRows * kRows);
    const int chunks = live / kRows;
    auto* sc = static_cast<float*>(team.team_scratch(0).get_shmem(scratch_floats * sizeof(float)));
    float* mx = sc + kQueryBlock * kKeyBlock;
    float* sum = mx + kQueryBlock;
    float* alpha = sum + kQueryBlock;
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, live), [&](const int r) {
      mx[r] = -3.0e38f;
      sum[r] = 0.0f;
    });
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, static_cast<std::int64_t>(live) * Cp),
                         [&](const std::int64_t i) { ab[i] = 0.0f; });
    team.team_barrier();
    for (std::int64_t j0 = 0; j0 < G; j0 += kKeyBlock) {
      const int kb = static_cast<int>(G - j0 < kKeyBlock ? G - j0 : kKeyBlock);
      // Scores: a thread per (key, chunk of kRows queries), channels in order.
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, kb * chunks), [&](const int i) {
        const int j = i % kb, r0 = i / kb * kRows;
        const float* k = kf + (j0 + j) / kLanes * C * kLanes + (j0 + j) % kLanes;
        float a[kRows] = {};
        for (int c = 0; c < C; ++c) {
          const float kv = k[c * kLanes];
          for (int r = 0; r < kRows; ++r) a[r] += qb[(r0 + r) * Cp + c] * kv;
        }
        for (int r = 0; r < kRows; ++r) sc[(r0 + r) * kKeyBlock + j] = a[r] * scale;
      });
      team.team_barrier();
      // Online softmax: a thread per query, keys in order.
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, live),
                           [&](const int r) { softmax_block(sc + r * kKeyBlock, kb, mx[r], sum[r], alpha[r]); });
      team.team_barrier();
      // Weighted values: a thread per (channel, chunk of kRows queries), keys in order.
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, Cp * chunks), [&](const std::int64_t i) {
        const std::int64_t c = i % Cp;
        const int r0 = static_cast<int>(i / Cp) * kRows;
        const float* v = vf + (c / kLanes) * G * kLanes + c % kLanes;
        float a[kRows];
        for (int r = 0; r < kRows; ++r) a[r] = ab[(r0 + r) * Cp + c] * alpha[r0 + r];
        for (int j = 0; j < kb; ++j) {
          const float vv = v[(j0 + j) * kLanes];
          for (int r = 0; r < kRows; ++r) a[r] += sc[(r0 + r) * kKeyBlock + j] * vv;
        }
        for (int r = 0; r < kRows; ++r) ab[(r0 + r) * Cp + c] = a[r];
      });
      team.team_barrier();
    }
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, static_cast<std::int64_t>(live) * Cp),
                         [&](const std::int64_t i) { ab[i] /= sum[i / Cp]; });
  }
};

/// attention_softmax_tiles' result by AttentionTeamKernel (see there).
template <class Exec>
void attention_softmax_team(const Exec& exec, const AttentionShape& s, const float* qd, const float* keys_t,
                            const float* values, float* accd) {
  using Kernel = AttentionTeamKernel<Exec>;
  const std::int64_t blocks = s.Pq / kQueryBlock;
  const Kernel kernel{s, qd, keys_t, values, accd, 1.0f / khalo::detail::sqrt(static_cast<float>(s.C)), blocks};
  Kokkos::TeamPolicy<Exec> policy(exec, static_cast<int>(s.F * blocks), Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(Kernel::scratch_floats * sizeof(float)));
  Kokkos::parallel_for("khalo::attention::softmax_team", policy, kernel);
}

/// acc = softmax(q k^T / sqrt(C)) v (see attention_softmax_tiles): the tile kernel where the
/// memory is the host's, the team kernel on a device. Both give the same bits.
template <class Exec>
void attention_softmax(const Exec& exec, const AttentionShape& s, const float* qd, const float* keys_t,
                       const float* values, float* accd) {
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible) {
    attention_softmax_tiles(exec, s, qd, keys_t, values, accd);
  } else {
    attention_softmax_team(exec, s, qd, keys_t, values, accd);
  }
}

}  // namespace khalo::nn::detail
