#pragma once
/// \file
/// The team convolution: a kernel shaped for devices (Kokkos TeamPolicy with team
/// scratch, implicit-GEMM style) that also runs on host backends, where it is
/// selectable for tests and comparison (ConvAlgorithm::team).
///
/// One team computes a block of WB output columns x CB output channels of one
/// output row (n, t, h). Per block of CI input channels it stages, in team
/// scratch, the input rows under its taps (zeros outside the row; through the 2x
/// map when upsampling) and the block's weights; each thread then adds them into
/// a register tile of TW columns x TC channels (32 accumulators) and keeps the
/// partial sums in scratch between blocks. Every output element is summed as
/// bias, then input channels, then taps within a channel, whatever the team size
/// or the band a rank holds: bit-identical on any number of ranks (its rounding
/// differs from the host kernels', which sum taps outside input channels).
/// Staging and stores walk the format's fastest dimension (columns in the
/// contiguous format, channels in channels-last), so neighbouring threads touch
/// neighbouring addresses in both.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/detail/conv_common.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace khalo::nn::detail {

/// Output columns and channels per team, input channels per staged block, register tile.
struct TeamConvShape {
  static constexpr int WB = 32, CB = 32, CI = 8, TW = 4, TC = 8;
};

/// Threads per team: Kokkos chooses (0), unless KHALO_CONV_TEAM_SIZE names a
/// size. The knob is for tests: on an OpenMP backend, sizes 2 and 4 make the
/// barriers and the shared scratch really matter (Kokkos' own choice there is 1).
inline int conv_team_size() {
  static const int size = [] {
    const char* v = std::getenv("KHALO_CONV_TEAM_SIZE");
    return v != nullptr ? std::atoi(v) : 0;
  }();
  return size;
}

/// Threads one launch of the team convolution runs for \p l (teams x threads per
/// team when Kokkos picks the team size as it would for a GPU: one thread per
/// register tile).
inline std::int64_t conv_team_threads(const ConvLaunch& l) {
  using S = TeamConvShape;
  const std::int64_t rows = l.row_end - l.row_begin;
  const std::int64_t teams = static_cast<std::int64_t>(l.n) * l.frames * rows * ((l.cout_count + S::CB - 1) / S::CB) *
                             ((l.out_width + S::WB - 1) / S::WB);
  return teams * (S::WB / S::TW) * (S::CB / S::TC);
}

/// conv_team's kernel: one team per block of WB output columns x CB channels of one output row.
/// A functor, not a KOKKOS_LAMBDA: conv_team is a header template that several translation units
/// instantiate (khalo/detail/block.hpp says why nvcc's lambdas must not be).
template <int KT, int KH, int KW, bool UP, class Member, class Scratch>
struct ConvTeamKernel {
  static constexpr int WB = TeamConvShape::WB, CB = TeamConvShape::CB, CI = TeamConvShape::CI, TW = TeamConvShape::TW,
                       TC = TeamConvShape::TC;
  static constexpr int taps = KT * KH * KW;
  static constexpr int span = UP ? WB / 2 + 2 : WB + KW - 1;  // input columns a team reads per row
  static constexpr int subtiles = (WB / TW) * (CB / TC);
  ConvLaunch l;
  PackedWeights wt;
  int wblocks, cblocks, rows;
  std::size_t nx, nw, np;
  bool in_channels_last, out_channels_last;

  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    std::int64_t r = team.league_rank();
    const int wb = static_cast<int>(r % wblocks);
    r /= wblocks;
    const int cb = static_cast<int>(r % cblocks);
    r /= cblocks;
    const int h = l.row_begin + static_cast<int>(r % rows);
    r /= rows;
    const int t = static_cast<int>(r % l.frames);
    const int n = static_cast<int>(r / l.frames);
    const int w0 = wb * WB;
    const int oc0 = cb * CB;  // the launch's channel of the block's first
    const int co0 = l.cout_begin + oc0;
    const int valid_c = l.cout_count - oc0 < CB ? l.cout_count - oc0 : CB;
    Scratch xs(team.team_scratch(0), nx), ws(team.team_scratch(0), nw), ps(team.team_scratch(0), np);
    // Partial sums [CB][WB] start at the bias.
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, CB * WB), [&](const int k) {
      const int o = k / WB;
      ps(k) = o < valid_c ? wt.bias[co0 + o] : 0.0f;
    });
    const int cin = wt.cin;
    for (int c0 = 0; c0 < cin; c0 += CI) {
      team.team_barrier();
      // Input rows [ci][kt][kh][span]: column j is input column w0 - KW/2 + j (w0/2 - 1 + j upsampled).
      // Neighbouring threads take neighbouring addresses: columns in the contiguous format,
      // input channels in channels-last (then CI floats in a row, a 32-byte segment).
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, static_cast<int>(nx)), [&](const int k) {
        int j, rk, cl;
        if (in_channels_last) {
          cl = k % CI;
          j = k / CI % span;
          rk = k / CI / span;
        } else {
          j = k % span;
          rk = k / span % (KT * KH);
          cl = k / span / (KT * KH);
        }
        const int ci = c0 + cl;
        const int kt = rk / KH, kh = rk % KH;
        const std::int64_t col = UP ? w0 / 2 - 1 + j : w0 - KW / 2 + j;
        std::int64_t row = h + kh;
        if (UP) row = half_floor(2 * l.up_first_row + h - 1 + kh) - l.up_first_row + 1;
        xs((cl * KT * KH + rk) * span + j) =
            ci < cin && col >= 0 && col < l.in_width ? l.in(n, ci, t + kt, row, col) : 0.0f;
      });
      // Weights [ci][tap][CB].
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, static_cast<int>(nw)), [&](const int k) {
        const int o = k % CB;
        const int tap = k / CB % taps;
        const int ci = c0 + k / CB / taps;
        ws(k) = ci < cin && o < valid_c ? wt.at(co0 + o)[tap * wt.tap + ci * wt.ci] : 0.0f;
      });
      team.team_barrier();
      // Each thread: register tiles of TW columns x TC channels, columns fastest across threads.
      Kokkos::parallel_for(Kokkos::TeamThreadRange(team, subtiles), [&](const int s) {
        const int i0 = s % (WB / TW) * TW, o0 = s / (WB / TW) * TC;
        float acc[TC][TW];
        for (int o = 0; o < TC; ++o)
          for (int i = 0; i < TW; ++i) acc[o][i] = ps((o0 + o) * WB + i0 + i);
        for (int ci = 0; ci < CI; ++ci) {
          for (int kt = 0; kt < KT; ++kt)
            for (int kh = 0; kh < KH; ++kh)
              for (int kw = 0; kw < KW; ++kw) {
                const int tap = (kt * KH + kh) * KW + kw;
                const float* x = &xs((ci * KT * KH + kt * KH + kh) * span);
                const float* wv = &ws((ci * taps + tap) * CB + o0);
                for (int i = 0; i < TW; ++i) {
                  const int j = UP ? static_cast<int>(half_floor(i0 + i - 1 + kw)) + 1 : i0 + i + kw;
                  const float xv = x[j];
                  for (int o = 0; o < TC; ++o) acc[o][i] += xv * wv[o];
                }
              }
        }
        for (int o = 0; o < TC; ++o)
          for (int i = 0; i < TW; ++i) ps((o0 + o) * WB + i0 + i) = acc[o][i];
      });
    }
    team.team_barrier();
    // Stores: neighbouring threads take neighbouring addresses in either format.
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, CB * WB), [&](const int k) {
      const int o = out_channels_last ? k % CB : k / WB;
      const int i = out_channels_last ? k / CB : k % WB;
      if (o >= valid_c || w0 + i >= l.out_width) return;
      float v = ps(o * WB + i);
      if (l.residual.data != nullptr) v += l.residual(n, oc0 + o, t, h, w0 + i);
      l.out(n, oc0 + o, t, h, w0 + i) = v;
    });
  }
};

template <int KT, int KH, int KW, bool UP, class Exec>
void conv_team(const Exec& exec, const ConvLaunch& L, const PackedWeights& W) {
  using S = TeamConvShape;
  constexpr int WB = S::WB, CB = S::CB, CI = S::CI;
  constexpr int taps = KT * KH * KW;
  constexpr int span = UP ? WB / 2 + 2 : WB + KW - 1;  // input columns a team reads per row
  static_assert(S::TW * S::TC <= 64, "at most 64 accumulators per thread");
  const int rows = L.row_end - L.row_begin;
  if (L.n <= 0 || L.frames <= 0 || rows <= 0 || L.out_width <= 0 || L.cout_count <= 0) return;
  const int wblocks = (L.out_width + WB - 1) / WB;
  const int cblocks = (L.cout_count + CB - 1) / CB;
  const std::int64_t league = static_cast<std::int64_t>(L.n) * L.frames * rows * cblocks * wblocks;
  using Scratch = Kokkos::View<float*, typename Exec::scratch_memory_space, Kokkos::MemoryUnmanaged>;
  const std::size_t nx = static_cast<std::size_t>(CI) * KT * KH * span, nw = static_cast<std::size_t>(CI) * taps * CB,
                    np = static_cast<std::size_t>(CB) * WB;
  const std::size_t bytes = Scratch::shmem_size(nx) + Scratch::shmem_size(nw) + Scratch::shmem_size(np);
  using Policy = Kokkos::TeamPolicy<Exec>;
  Policy policy = conv_team_size() > 0 ? Policy(exec, static_cast<int>(league), conv_team_size())
                                       : Policy(exec, static_cast<int>(league), Kokkos::AUTO);
  policy.set_scratch_size(0, Kokkos::PerTeam(bytes));
  const bool in_channels_last = L.in.stride[1] == 1, out_channels_last = L.out.stride[1] == 1;
  using Kernel = ConvTeamKernel<KT, KH, KW, UP, typename Policy::member_type, Scratch>;
  Kokkos::parallel_for("khalo::nn::conv_team", policy,
                       Kernel{L, W, wblocks, cblocks, rows, nx, nw, np, in_channels_last, out_channels_last});
}

}  // namespace khalo::nn::detail
