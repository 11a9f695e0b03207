#pragma once
/// \file
/// Convolutions of the decoder stage, on any Kokkos backend and for any
/// memory format: causal Conv3d (3x3x3, 1x1x1, 3x1x1; stride 1; bias) and the
/// upsampler's per-frame Conv2d 3x3 fused with nearest 2x upsampling. This
/// header checks a launch, chooses its kernel and runs it; the weights' packing
/// is in conv_weights.hpp, the kernels in detail/conv_host_*.hpp.
///
/// The input carries what padding needs: KT-1 leading frames (zeros or the
/// causal cache) and, for KH = 3, one ghost row above and below (from the halo
/// exchange, or zeros at the edge of the image). W is padded in the kernel.
/// Every output element is summed in one fixed order for a given kernel family
/// (bias, then taps and input channels), whatever the tile, the block sizes or
/// the band a rank holds, and the family depends on the shapes, the format and
/// the packing only: results are bit-identical on any number of ranks.

#include <khalo/nn/conv_launch.hpp>
#include <khalo/nn/conv_weights.hpp>
#include <khalo/nn/detail/conv_common.hpp>
#include <khalo/nn/detail/conv_device.hpp>
#include <khalo/nn/detail/conv_host_channel_tile.hpp>
#include <khalo/nn/detail/conv_host_row_tile.hpp>
#include <khalo/nn/detail/conv_tuning.hpp>
#include <khalo/nn/tensor.hpp>

#include <Kokkos_Core.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>

namespace khalo::nn {

/// The kernels a convolution can run.
enum class ConvKernelFamily {
  channel_tile,  ///< host: vectorized over output channels; any strides (detail/conv_host_channel_tile.hpp)
  row_tile,      ///< host: vectorized along W; contiguous rows only (detail/conv_host_row_tile.hpp)
  team,          ///< any backend: TeamPolicy with team scratch (detail/conv_device.hpp)
};

/// Which kernels conv may choose from: the host kernels where the host can reach the
/// weights' memory, the team kernel elsewhere (automatic), or one of them by name.
enum class ConvAlgorithm { automatic, host, team };

/// The kernel one launch runs, and its register tile: width_tile output positions along W
/// times cout_tile output channels.
struct ConvKernel {
  ConvKernelFamily family = ConvKernelFamily::channel_tile;  ///< which kernel family
  int width_tile = 0;                                        ///< W positions of one tile
  int cout_tile = 0;                                         ///< output channels of one tile

  /// "channel_tile 8x48", "row_tile 32x12", "team 32x32": family, then W positions x output
  /// channels (for the team kernel: per team).
  std::string name() const {
    const char* f = family == ConvKernelFamily::row_tile ? "row_tile "
                    : family == ConvKernelFamily::team   ? "team "
                                                         : "channel_tile ";
    return f + std::to_string(width_tile) + "x" + std::to_string(cout_tile);
  }
  friend bool operator==(const ConvKernel& a, const ConvKernel& b) {
    return a.family == b.family && a.width_tile == b.width_tile && a.cout_tile == b.cout_tile;
  }
  friend bool operator!=(const ConvKernel& a, const ConvKernel& b) { return !(a == b); }
};

namespace detail {

inline int gcd(int a, int b) { return b == 0 ? a : gcd(b, a % b); }

/// The byte addresses [lo, hi) that a box of \p extent elements from element \p first of
/// \p s spans, as integers (the data may live on a device; pointers to different objects
/// may not be compared).
struct AddressRange {
  std::uintptr_t lo = 0, hi = 0;
  bool meets(const AddressRange& o) const { return lo < o.hi && o.lo < hi; }
};

inline AddressRange address_range(const Strided5& s, const std::int64_t (&first)[5], const std::int64_t (&extent)[5]) {
  std::int64_t lo = 0;
  for (int d = 0; d < 5; ++d) lo += first[d] * s.stride[d];
  std::int64_t hi = lo;
  for (int d = 0; d < 5; ++d) {
    const std::int64_t reach = (extent[d] - 1) * s.stride[d];
    (reach < 0 ? lo : hi) += reach;
  }
  const auto base = reinterpret_cast<std::uintptr_t>(s.data);
  return {base + static_cast<std::uintptr_t>(lo) * sizeof(float),
          base + static_cast<std::uintptr_t>(hi + 1) * sizeof(float)};
}

/// What a launch writes of its output (and reads of its residual, same indexing).
inline AddressRange output_range(const Strided5& s, const ConvLaunch& l) {
  return address_range(s, {0, 0, 0, l.row_begin, 0},
                       {l.n, l.cout_count, l.frames, l.row_end - l.row_begin, l.out_width});
}

/// What a launch reads of its input: cin channels, frames + kt - 1 frames, the rows under
/// its taps (through the 2x row map when upsampling), in_width columns.
inline AddressRange input_range(const ConvLaunch& l, int cin, int kt, int kh, bool upsample) {
  std::int64_t r0 = l.row_begin, r1 = l.row_end - 1 + kh - 1;
  if (upsample) {
    const std::int64_t f = l.up_first_row;
    r0 = half_floor(2 * f + l.row_begin - 1) - f + 1;
    r1 = half_floor(2 * f + l.row_end - 1 + 1) - f + 1;
  }
  return address_range(l.in, {0, 0, 0, r0, 0}, {l.n, cin, l.frames + kt - 1, r1 - r0 + 1, l.in_width});
}

/// The row tile for a launch, or a tile of width 0 when it cannot take it: a 3x3x3 or
/// 1x1x1 kernel on contiguous rows of equal width, weights packed for it, whole groups of
/// 12 output channels.
inline ConvKernel row_tile_for(const ConvLaunch& l, const PackedWeights& w, int kt, int kh, int kw, bool upsample) {
  const bool shape = !upsample && kt == kh && kh == kw && (kw == 1 || kw == 3);
  const bool rows = l.in.stride[4] == 1 && l.out.stride[4] == 1 &&
                    (l.residual.data == nullptr || l.residual.stride[4] == 1) && l.in_width == l.out_width;
  if (!shape || !rows || w.pack != kRowPack || w.taps_outer || l.cout_begin % kRowPack != 0 ||
      l.cout_count % kRowPack != 0) {
    return {ConvKernelFamily::row_tile, 0, 0};
  }
  const bool pairs = l.cout_count % (2 * kRowPack) == 0;
  if (l.out_width >= 32) return {ConvKernelFamily::row_tile, 32, 12};
  if (l.out_width >= 16) return {ConvKernelFamily::row_tile, 16, pairs ? 24 : 12};
  return {ConvKernelFamily::row_tile, 8, 12};
}

/// The channel tile for a launch: the widest tile that divides the packing, the launch's
/// first channel and its count; else (a sub-range of channels that no tile divides) the
/// packing's own width, whose tiles then reach past the launch's channels and store only
/// theirs. Always at least 8 channels wide.
inline ConvKernel channel_tile_for(const ConvLaunch& l, const PackedWeights& w) {
  const int fit = channel_tile(gcd(w.pack, gcd(l.cout_begin, l.cout_count)));
  return {ConvKernelFamily::channel_tile, 8, fit > 0 ? fit : channel_tile(w.pack)};
}

template <int KT, int KH, int KW, bool UP, class Exec>
void run_channel_tile(const Exec& exec, const ConvLaunch& l, const PackedWeights& w, int cout_tile) {
  switch (cout_tile) {
    case 48: return conv_channel_tile<8, 48, KT, KH, KW, UP>(exec, l, w);
    case 32: return conv_channel_tile<8, 32, KT, KH, KW, UP>(exec, l, w);
    case 24: return conv_channel_tile<8, 24, KT, KH, KW, UP>(exec, l, w);
    case 16: return conv_channel_tile<8, 16, KT, KH, KW, UP>(exec, l, w);
    case 12: return conv_channel_tile<8, 12, KT, KH, KW, UP>(exec, l, w);
    case 8: return conv_channel_tile<8, 8, KT, KH, KW, UP>(exec, l, w);
    default: break;
  }
  throw std::logic_error("khalo::nn::conv: no channel tile of " + std::to_string(cout_tile) + " channels");
}

template <int KTW, class Exec>
void run_row_tile(const Exec& exec, const ConvLaunch& l, const PackedWeights& w, const ConvKernel& k) {
  constexpr int KT = KTW, KW = KTW;
  if (k.width_tile == 32 && k.cout_tile == 12) return conv_row_tile<12, 32, KT, KW>(exec, l, w);
  if (k.width_tile == 16 && k.cout_tile == 24) return conv_row_tile<24, 16, KT, KW>(exec, l, w);
  if (k.width_tile == 16 && k.cout_tile == 12) return conv_row_tile<12, 16, KT, KW>(exec, l, w);
  if (k.width_tile == 8 && k.cout_tile == 12) return conv_row_tile<12, 8, KT, KW>(exec, l, w);
  throw std::logic_error("khalo::nn::conv: no row tile " + k.name());
}

}  // namespace detail

/// The kernel that conv runs for launch \p l with weights \p w.
template <class MemSpace>
ConvKernel conv_kernel_for(const ConvLaunch& l, const ConvWeights<MemSpace>& w, bool upsample = false,
                           ConvAlgorithm algorithm = ConvAlgorithm::automatic) {
  constexpr bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
  if (algorithm == ConvAlgorithm::team || (algorithm == ConvAlgorithm::automatic && !host)) {
    return {ConvKernelFamily::team, detail::TeamConvShape::WB, detail::TeamConvShape::CB};
  }
  if (!host) throw std::invalid_argument("khalo::nn::conv: the host kernels cannot reach these weights");
  const detail::PackedWeights pw(w);
  const ConvKernel rows = detail::row_tile_for(l, pw, w.kt, w.kh, w.kw, upsample);
  return rows.width_tile > 0 ? rows : detail::channel_tile_for(l, pw);
}

/// Runs one convolution launch and returns the kernel it ran. \p upsample selects the fused
/// nearest-2x Conv2d (weights with kt = 1, kh = kw = 3); \p algorithm, the kernels to choose
/// from. Throws std::invalid_argument for
/// channels outside the weights, an unsupported kernel shape, or an output whose addresses
/// meet those of the input or the residual.
template <class Exec, class MemSpace>
ConvKernel conv(const Exec& exec, const ConvLaunch& l, const ConvWeights<MemSpace>& w, bool upsample = false,
                ConvAlgorithm algorithm = ConvAlgorithm::automatic) {
  static_assert(Kokkos::SpaceAccessibility<Exec, MemSpace>::accessible,
                "khalo::nn::conv: the weights (and the launch's tensors, which live in the same memory space) "
                "must be accessible from the execution space");
  if (l.cout_begin < 0 || l.cout_count < 0 || l.cout_begin + l.cout_count > w.cout) {
    throw std::invalid_argument("khalo::nn::conv: output channels outside the weights");
  }
  const bool k333 = w.kt == 3 && w.kh == 3 && w.kw == 3, k111 = w.kt == 1 && w.kh == 1 && w.kw == 1;
  const bool k311 = w.kt == 3 && w.kh == 1 && w.kw == 1, k133 = w.kt == 1 && w.kh == 3 && w.kw == 3;
  if (upsample && !k133) throw std::invalid_argument("khalo::nn::conv: upsampling needs a 3x3 kernel");
  if (!upsample && !k333 && !k111 && !k311) {
    throw std::invalid_argument("khalo::nn::conv: unsupported kernel " + std::to_string(w.kt) + "x" +
                                std::to_string(w.kh) + "x" + std::to_string(w.kw));
  }
  const bool empty = l.n <= 0 || l.cout_count <= 0 || l.frames <= 0 || l.row_end <= l.row_begin || l.out_width <= 0;
  if (!empty) {
    const auto out = detail::output_range(l.out, l);
    if (l.residual.data != nullptr && detail::output_range(l.residual, l).meets(out)) {
      throw std::invalid_argument(
          "khalo::nn::conv: the residual overlaps the output (the kernels keep partial "
          "sums in the output before they add the residual)");
    }
    if (l.in_width > 0 && detail::input_range(l, w.cin, w.kt, w.kh, upsample).meets(out)) {
      throw std::invalid_argument(
          "khalo::nn::conv: the input overlaps the output (the kernels write outputs while other outputs "
          "still read the input)");
    }
  }
  const detail::PackedWeights pw(w);
  const ConvKernel k = conv_kernel_for(l, w, upsample, algorithm);
  if (k.family == ConvKernelFamily::team) {
    if (upsample) detail::conv_team<1, 3, 3, true>(exec, l, pw);
    if (!upsample && k333) detail::conv_team<3, 3, 3, false>(exec, l, pw);
    if (k111) detail::conv_team<1, 1, 1, false>(exec, l, pw);
    if (k311) detail::conv_team<3, 1, 1, false>(exec, l, pw);
    return k;
  }
  if constexpr (!Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible) {
    return k;  // not reached: conv_kernel_for chose the team kernel
  } else if (k.family == ConvKernelFamily::row_tile) {
    if (k333) detail::run_row_tile<3>(exec, l, pw, k);
    if (k111) detail::run_row_tile<1>(exec, l, pw, k);
  } else if (upsample) {
    detail::run_channel_tile<1, 3, 3, true>(exec, l, pw, k.cout_tile);
  } else if (k333) {
    detail::run_channel_tile<3, 3, 3, false>(exec, l, pw, k.cout_tile);
  } else if (k111) {
    detail::run_channel_tile<1, 1, 1, false>(exec, l, pw, k.cout_tile);
  } else {
    detail::run_channel_tile<3, 1, 1, false>(exec, l, pw, k.cout_tile);
  }
  return k;
}

}  // namespace khalo::nn
