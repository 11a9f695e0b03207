#pragma once
/// \file
/// Weights of one convolution of the decoder stage, packed for the kernel that
/// will read them.

#include <khalo/detail/huge_pages.hpp>
#include <khalo/layout.hpp>
#include <khalo/nn/detail/conv_tuning.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <type_traits>
#include <vector>

namespace khalo::nn {

/// Weights of one convolution, packed in groups of \p pack output channels,
/// each group [cin][taps][pack] or [taps][cin][pack]: the innermost loop runs
/// over contiguous output channels, and the weights reach the kernel in the
/// order its loops read them, one sequential stream. The contiguous row tile
/// runs taps inside input channels (one channel's taps lie together; taps a
/// whole [cin][pack] plane apart alias in L1, the plane is often a multiple of
/// 4 KiB); the channel tile runs input channels inside taps (with [cin][taps]
/// every step of that loop would jump taps x pack floats, past what the
/// prefetchers follow).
///
/// A count of output channels that no tile divides is padded to whole groups
/// with zero weights and zero biases: every tile of a kernel reads whole groups,
/// and stores only the channels that exist.
template <class MemSpace = Kokkos::DefaultExecutionSpace::memory_space>
struct ConvWeights {
  using memory_space = MemSpace;  ///< where the packed weights live

  int cout = 0;                           ///< output channels
  int cin = 0;                            ///< input channels
  int kt = 1;                             ///< taps in time
  int kh = 1;                             ///< taps in rows
  int kw = 1;                             ///< taps in columns
  int pack = 1;                           ///< output channels per packed group
  bool taps_outer = false;                ///< groups are [taps][cin][pack], else [cin][taps][pack]
  Kokkos::View<float*, MemSpace> weight;  ///< packed; padded_cout() x cin x taps floats
  Kokkos::View<float*, MemSpace> bias;    ///< padded_cout() floats, zeros after the first cout

  /// The packing that suits a kt x kh x kw kernel on activations in \p format: groups of 12
  /// output channels, taps inside input channels, for the contiguous row tile (3x3x3 and
  /// 1x1x1 kernels whose Cout is a multiple of 12); else the channel tile's groups (see
  /// detail::channel_pack), taps outside input channels. The fused upsampler (1x3x3) and
  /// time_conv (3x1x1) run the channel tile in every format.
  static int pack_for(int cout, int kt, int kh, int kw, MemoryFormat format) {
    return row_packing(cout, kt, kh, kw, format) ? detail::kRowPack : detail::channel_pack(cout);
  }
  /// Whether \p pack_for packs taps outside input channels (every packing but the row tile's).
  static bool taps_outer_for(int cout, int kt, int kh, int kw, MemoryFormat format) {
    return !row_packing(cout, kt, kh, kw, format);
  }

  /// From PyTorch's layout (cout, cin, kt, kh, kw) (a Conv2d passes kt = 1), in C order,
  /// packed for activations in \p format (any format works; this one runs fastest).
  static ConvWeights from_torch(const std::vector<float>& w, const std::vector<float>& b, int cout, int cin, int kt,
                                int kh, int kw, MemoryFormat format = MemoryFormat::channels_last_3d) {
    const auto taps = static_cast<std::size_t>(kt) * static_cast<std::size_t>(kh) * static_cast<std::size_t>(kw);
    if (cout < 1 || cin < 1 || kt < 1 || kh < 1 || kw < 1) {
      throw std::invalid_argument("khalo::nn::ConvWeights: channels and kernel extents must be >= 1");
    }
    if (w.size() != static_cast<std::size_t>(cout) * static_cast<std::size_t>(cin) * taps ||
        b.size() != static_cast<std::size_t>(cout)) {
      throw std::invalid_argument("khalo::nn::ConvWeights: weight or bias size does not match the shape");
    }
    ConvWeights c;
    c.cout = cout;
    c.cin = cin;
    c.kt = kt;
    c.kh = kh;
    c.kw = kw;
    c.pack = pack_for(cout, kt, kh, kw, format);
    c.taps_outer = taps_outer_for(cout, kt, kh, kw, format);
    const auto P = static_cast<std::size_t>(c.pack), ci_n = static_cast<std::size_t>(cin);
    const auto padded = static_cast<std::size_t>(c.padded_cout());
    const std::size_t size = padded * ci_n * taps;
    // Every element is written below: the huge-page advice (host, >= 4 MiB) precedes that first touch.
    c.weight =
        Kokkos::View<float*, MemSpace>(Kokkos::view_alloc("khalo::conv::weight", Kokkos::WithoutInitializing), size);
    if constexpr (std::is_same_v<MemSpace, Kokkos::HostSpace>) {
      khalo::detail::advise_huge_pages(c.weight.data(), size * sizeof(float));
    }
    c.bias = Kokkos::View<float*, MemSpace>("khalo::conv::bias", padded);
    auto hw = Kokkos::create_mirror_view(c.weight);
    auto hb = Kokkos::create_mirror_view(c.bias);
    for (std::size_t o = 0; o < padded; ++o)
      for (std::size_t i = 0; i < ci_n; ++i)
        for (std::size_t k = 0; k < taps; ++k)
          hw((o / P * ci_n * taps + (c.taps_outer ? k * ci_n + i : i * taps + k)) * P + o % P) =
              o < static_cast<std::size_t>(cout) ? w[(o * ci_n + i) * taps + k] : 0.0f;
    for (std::size_t o = 0; o < padded; ++o) hb(o) = o < static_cast<std::size_t>(cout) ? b[o] : 0.0f;
    Kokkos::deep_copy(c.weight, hw);
    Kokkos::deep_copy(c.bias, hb);
    return c;
  }
  /// Output channels rounded up to whole packed groups.
  int padded_cout() const { return (cout + pack - 1) / pack * pack; }
  /// Multiply-adds per output element.
  std::int64_t macs_per_output() const { return static_cast<std::int64_t>(cin) * kt * kh * kw; }

 private:
  static bool row_packing(int cout, int kt, int kh, int kw, MemoryFormat format) {
    const bool cube = kt == kh && kh == kw && (kw == 1 || kw == 3);
    return format == MemoryFormat::contiguous && cube && cout % detail::kRowPack == 0;
  }
};

}  // namespace khalo::nn
