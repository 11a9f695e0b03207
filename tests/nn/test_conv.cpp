// The decoder's convolutions against a plain double-precision loop, for every
// kernel shape, memory format and tile path (channels-last tiles, contiguous row
// tiles and their edge columns, partial tiles, channel sub-ranges, residual,
// fused upsampling), and bit for bit against themselves when the rows are
// split over several launches (what a rank band and the split-phase overlap do).
// Which kernel a launch runs is checked through the ConvKernel that conv returns:
// every Cout and W gets a tile of at least 8 output channels.
#include <khalo/nn/conv.hpp>

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using khalo::MemoryFormat;
using khalo::nn::Activation;
using khalo::nn::ConvAlgorithm;
using khalo::nn::ConvKernel;
using khalo::nn::ConvKernelFamily;
using khalo::nn::ConvLaunch;
using khalo::nn::ConvWeights;
using khalo::nn::Strided5;
using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;

struct Case {
  int cin, cout, kt, kh, kw, frames, rows, width;
  bool upsample = false, residual = false;
  int cout_begin = 0, cout_count = 0;  // 0: all of cout
};

std::string name(const Case& c, MemoryFormat f) {
  return khalo::to_string(f) + " cin " + std::to_string(c.cin) + " cout " + std::to_string(c.cout) + " k " +
         std::to_string(c.kt) + "x" + std::to_string(c.kh) + "x" + std::to_string(c.kw) + " W " +
         std::to_string(c.width) + (c.upsample ? " up" : "") + (c.residual ? " residual" : "") + " channels [" +
         std::to_string(c.cout_begin) + ", +" + std::to_string(c.cout_count) + ")";
}

// Random values in [-1, 1), or (integers) small integers in [-3, 3], whose sums over any
// convolution here are exact in float32: the result must then equal the reference exactly.
float random_value(std::mt19937& rng, bool integers) {
  if (integers) return static_cast<float>(std::uniform_int_distribution<int>(-3, 3)(rng));
  return std::uniform_real_distribution<float>(-1.0f, 1.0f)(rng);
}

std::vector<float> random_vector(std::size_t n, std::mt19937& rng, bool integers) {
  std::vector<float> v(n);
  for (auto& x : v) x = random_value(rng, integers);
  return v;
}

// A host tensor filled with random values, copied to an activation in `format`.
Activation<Mem> random_activation(const std::vector<std::int64_t>& ext, MemoryFormat format, std::mt19937& rng,
                                  bool integers) {
  auto a = khalo::nn::make_activation<Mem>("a", ext, format);
  auto h = Kokkos::create_mirror_view(a);
  for (std::int64_t n = 0; n < ext[0]; ++n)
    for (std::int64_t c = 0; c < ext[1]; ++c)
      for (std::int64_t t = 0; t < ext[2]; ++t)
        for (std::int64_t y = 0; y < ext[3]; ++y)
          for (std::int64_t x = 0; x < ext[4]; ++x) h(n, c, t, y, x) = random_value(rng, integers);
  Kokkos::deep_copy(a, h);
  return a;
}

std::int64_t half_floor(std::int64_t a) { return (a + 2) / 2 - 1; }

struct ConvRun {
  Case c;
  MemoryFormat format;
  std::vector<float> w, b;
  Activation<Mem> in, out, res;
  ConvWeights<Mem> weights;
  int out_rows, out_width, count;
  bool exact;
  int batch;
  ConvAlgorithm algorithm = ConvAlgorithm::automatic;

  ConvRun(const Case& cs, MemoryFormat f, MemoryFormat packing, std::uint32_t seed, bool integers = false,
          int batches = 1)
      : c(cs), format(f), exact(integers), batch(batches) {
    std::mt19937 rng(seed);
    w = random_vector(static_cast<std::size_t>(c.cout) * c.cin * c.kt * c.kh * c.kw, rng, integers);
    b = random_vector(static_cast<std::size_t>(c.cout), rng, integers);
    weights = ConvWeights<Mem>::from_torch(w, b, c.cout, c.cin, c.kt, c.kh, c.kw, packing);
    count = c.cout_count > 0 ? c.cout_count : c.cout;
    const int in_rows = c.upsample ? c.rows + 2 : c.rows + c.kh - 1;
    out_rows = c.upsample ? 2 * c.rows : c.rows;
    out_width = c.upsample ? 2 * c.width : c.width;
    in = random_activation({batch, c.cin, c.frames + c.kt - 1, in_rows, c.width}, f, rng, integers);
    out = khalo::nn::make_activation<Mem>("out", {batch, count, c.frames, out_rows, out_width}, f);
    if (c.residual) res = random_activation({batch, count, c.frames, out_rows, out_width}, f, rng, integers);
  }

  // Output rows [r0, r1) in one launch; the kernel it ran.
  ConvKernel launch(int r0, int r1) const {
    const ConvKernel k = khalo::nn::conv(Exec(), launch_of(r0, r1), weights, c.upsample, algorithm);
    Exec().fence();
    return k;
  }

  ConvLaunch launch_of(int r0, int r1) const {
    ConvLaunch l;
    l.in = khalo::nn::strided(in);
    l.out = khalo::nn::strided(out);
    if (c.residual) l.residual = khalo::nn::strided(res);
    l.n = batch;
    l.frames = c.frames;
    l.row_begin = r0;
    l.row_end = r1;
    l.out_width = out_width;
    l.in_width = c.width;
    l.cout_begin = c.cout_begin;
    l.cout_count = count;
    return l;
  }

  std::vector<float> output() const {
    auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
    std::vector<float> v;
    for (int n = 0; n < batch; ++n)
      for (int o = 0; o < count; ++o)
        for (int t = 0; t < c.frames; ++t)
          for (int y = 0; y < out_rows; ++y)
            for (int x = 0; x < out_width; ++x) v.push_back(h(n, o, t, y, x));
    return v;
  }

  // The definition, in double: bias + sum over taps and input channels, zero outside the row.
  void check_against_reference() const {
    auto hin = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), in);
    auto hout = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out);
    auto hres = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), res);
    int bad = 0;
    for (int n = 0; n < batch; ++n)
      for (int o = 0; o < count && bad < 5; ++o) {
        const int co = c.cout_begin + o;
        for (int t = 0; t < c.frames; ++t)
          for (int y = 0; y < out_rows; ++y)
            for (int x = 0; x < out_width; ++x) {
              double sum = b[static_cast<std::size_t>(co)], mag = std::fabs(sum);
              for (int ci = 0; ci < c.cin; ++ci)
                for (int a = 0; a < c.kt; ++a)
                  for (int p = 0; p < c.kh; ++p)
                    for (int q = 0; q < c.kw; ++q) {
                      const std::int64_t row = c.upsample ? half_floor(y - 1 + p) + 1 : y + p;
                      const std::int64_t col = c.upsample ? half_floor(x - 1 + q) : x + q - c.kw / 2;
                      if (col < 0 || col >= c.width) continue;
                      const double wv =
                          w[((static_cast<std::size_t>(co) * c.cin + ci) * c.kt + a) * c.kh * c.kw + p * c.kw + q];
                      const double term = wv * hin(n, ci, t + a, row, col);
                      sum += term;
                      mag += std::fabs(term);
                    }
              if (c.residual) {
                sum += hres(n, o, t, y, x);
                mag += std::fabs(hres(n, o, t, y, x));
              }
              const double got = hout(n, o, t, y, x);
              if (exact ? got != sum : std::fabs(got - sum) > 1e-6 * mag + 1e-7) {
                ADD_FAILURE() << name(c, format) << ": out(" << n << ", " << o << ", " << t << ", " << y << ", " << x
                              << ") = " << got << ", expected " << sum;
                ++bad;
              }
            }
      }
  }
};

std::vector<Case> cases() {
  std::vector<Case> v;
  for (int width : {5, 16, 19, 32, 33, 40, 70}) {
    v.push_back({24, 24, 3, 3, 3, 2, 3, width});                // contiguous: 24 x 16 or 12 x 32 tiles
    v.push_back({12, 48, 3, 3, 3, 1, 2, width, false, true});   // 48-channel tiles, residual
    v.push_back({16, 36, 1, 1, 1, 2, 2, width});                // shortcut
    v.push_back({12, 24, 3, 1, 1, 2, 2, width, false, false});  // time_conv
  }
  for (int width : {8, 19, 64}) {
    v.push_back({100, 48, 3, 3, 3, 1, 2, width, false, true});  // several input-channel blocks, residual
  }
  v.push_back({12, 48, 3, 1, 1, 2, 2, 40, false, false, 24, 24});  // the second half of time_conv's channels
  v.push_back({10, 6, 3, 3, 3, 2, 3, 37});                         // no tile divides: padded 8-channel tiles
  v.push_back({12, 48, 3, 1, 1, 2, 2, 19, false, false, 4, 20});   // channels no tile divides: partial tiles
  v.push_back({8, 48, 3, 3, 3, 1, 2, 19, false, true, 12, 30});    // the same, residual, both packings
  v.push_back({12, 24, 1, 3, 3, 1, 3, 7, true});                   // upsampler Conv2d, 2x rows and columns
  v.push_back({24, 12, 1, 3, 3, 1, 2, 20, true, true});
  v.push_back({12, 48, 1, 3, 3, 2, 2, 29, true});  // upsampler: 48-channel tiles, interior and edge tiles
  return v;
}

TEST(Conv, EqualsTheDefinitionInEveryFormatAndPacking) {
  std::uint32_t seed = 1;
  for (const auto& c : cases()) {
    for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
      for (auto packing : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
        ConvRun r(c, f, packing, seed++);
        r.launch(0, r.out_rows);
        r.check_against_reference();
      }
    }
  }
}

TEST(Conv, RowsInSeveralLaunchesGiveTheSameBits) {
  std::uint32_t seed = 100;
  for (const auto& c : cases()) {
    for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
      ConvRun r(c, f, f, seed++);
      r.launch(0, r.out_rows);
      const auto whole = r.output();
      Kokkos::deep_copy(r.out, 0.0f);
      for (int y = r.out_rows - 1; y >= 0; --y) r.launch(y, y + 1);  // one row per launch, last first
      EXPECT_EQ(whole, r.output()) << name(c, f);
    }
  }
}

// Both tile kernels keep partial sums in the output before they add the residual, so a residual
// that shares memory with the output would be read after it was overwritten: refused up front.
TEST(Conv, RefusesAResidualThatOverlapsTheOutput) {
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
    ConvRun r({100, 48, 3, 3, 3, 1, 2, 19, false, true}, f, f, 7);
    ConvLaunch l = r.launch_of(0, r.out_rows);
    EXPECT_NO_THROW(khalo::nn::conv(Exec(), l, r.weights)) << khalo::to_string(f);  // its own residual tensor
    l.residual = l.out;                                                             // in place
    EXPECT_THROW(khalo::nn::conv(Exec(), l, r.weights), std::invalid_argument) << khalo::to_string(f);
    l.residual = l.out.shifted(0, 0, 0, 1, 0);  // one row further on: overlaps all but a row
    EXPECT_THROW(khalo::nn::conv(Exec(), l, r.weights), std::invalid_argument) << khalo::to_string(f);
  }
}

// Every output-channel count and every width gets a tile of at least 8 channels, in both
// formats, for every kernel shape, and the result equals the reference exactly (small integers).
TEST(ConvKernels, EveryCoutAndWidthGetsATileOfAtLeastEightChannels) {
  std::uint32_t seed = 300;
  struct Shape {
    int kt, kh, kw;
    bool up;
  };
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
    for (const Shape& k : {Shape{3, 3, 3, false}, Shape{1, 1, 1, false}, Shape{3, 1, 1, false}, Shape{1, 3, 3, true}}) {
      for (int cout : {3, 6, 12, 20, 24, 36, 72, 96}) {
        for (int width : {5, 8, 15, 16, 24, 33}) {
          const Case c{5, cout, k.kt, k.kh, k.kw, 2, 2, width, k.up, cout % 2 == 0};
          ConvRun r(c, f, f, seed++, true);
          const ConvKernel got = r.launch(0, r.out_rows);
          EXPECT_GE(got.cout_tile, 8) << name(c, f) << ": " << got.name();
          EXPECT_EQ(got, khalo::nn::conv_kernel_for(r.launch_of(0, r.out_rows), r.weights, c.upsample))
              << name(c, f) << ": " << got.name();
          r.check_against_reference();
        }
      }
    }
  }
}

// The kernels the decoder's layers run, by name: the cases the issue found on the 1-channel
// kernel (the upsampler and time_conv in the contiguous format, contiguous W < 16,
// channels-last Cout a multiple of 24 but not of 48) and the ones that were right already.
TEST(ConvKernels, TheDecodersLayersRunTheirTiles) {
  struct Expect {
    MemoryFormat format;
    Case c;
    std::string kernel;
  };
  const auto contiguous = MemoryFormat::contiguous, channels_last = MemoryFormat::channels_last_3d;
  const std::vector<Expect> expects = {
      {contiguous, {8, 48, 1, 3, 3, 1, 2, 8, true}, "channel_tile 8x48"},     // upsampler, C = 96 -> 48
      {contiguous, {8, 12, 1, 3, 3, 1, 2, 8, true}, "channel_tile 8x12"},     // upsampler, Cout = 12
      {contiguous, {8, 24, 1, 3, 3, 1, 2, 8, true}, "channel_tile 8x24"},     // upsampler, Cout = 24
      {contiguous, {8, 192, 3, 1, 1, 1, 2, 8}, "channel_tile 8x48"},          // time_conv, C = 96 -> 192
      {contiguous, {8, 24, 3, 3, 3, 1, 2, 8}, "row_tile 8x12"},               // W < 16
      {contiguous, {8, 12, 1, 1, 1, 1, 2, 5}, "row_tile 8x12"},               // W < 16, shortcut
      {contiguous, {8, 24, 3, 3, 3, 1, 2, 16}, "row_tile 16x24"},             // 16 <= W < 32
      {contiguous, {8, 36, 3, 3, 3, 1, 2, 20}, "row_tile 16x12"},             // 16 <= W < 32, Cout not of 24
      {contiguous, {8, 96, 3, 3, 3, 1, 2, 40}, "row_tile 32x12"},             // the residual convs
      {contiguous, {8, 3, 3, 3, 3, 1, 2, 40}, "channel_tile 8x8"},            // RGB: padded to 8
      {channels_last, {8, 24, 3, 3, 3, 1, 2, 8}, "channel_tile 8x24"},        // Cout of 24, not of 48
      {channels_last, {8, 72, 3, 3, 3, 1, 2, 8}, "channel_tile 8x24"},        //
      {channels_last, {8, 96, 3, 3, 3, 1, 2, 8}, "channel_tile 8x48"},        // the residual convs
      {channels_last, {8, 48, 1, 3, 3, 1, 2, 8, true}, "channel_tile 8x48"},  // upsampler
      {channels_last, {8, 3, 3, 3, 3, 1, 2, 8}, "channel_tile 8x8"},          // RGB: padded to 8
  };
  // Device memory: the team kernel runs every shape (conv_kernel_for), the tiles above are the host's.
  constexpr bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible;
  std::uint32_t seed = 900;
  for (const auto& e : expects) {
    ConvRun r(e.c, e.format, e.format, seed++, true);
    EXPECT_EQ(r.launch(0, r.out_rows).name(), host ? e.kernel : "team 32x32") << name(e.c, e.format);
    r.check_against_reference();
  }
}

// The kernels write outputs while other outputs still read the input: an input whose address
// range meets the output's is refused, for every kernel shape, in both formats.
TEST(Conv, RefusesAnInputThatOverlapsTheOutput) {
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
    for (const Case& c : {Case{12, 12, 3, 3, 3, 1, 2, 19}, Case{12, 12, 1, 1, 1, 1, 2, 19},
                          Case{12, 24, 3, 1, 1, 1, 2, 19}, Case{12, 12, 1, 3, 3, 1, 2, 19, true}}) {
      ConvRun r(c, f, f, 11, true);
      ConvLaunch l = r.launch_of(0, r.out_rows);
      EXPECT_NO_THROW(khalo::nn::conv(Exec(), l, r.weights, c.upsample)) << name(c, f);  // separate tensors
      ConvLaunch in_place = l;
      in_place.out = l.in;  // the input's own first elements
      EXPECT_THROW(khalo::nn::conv(Exec(), in_place, r.weights, c.upsample), std::invalid_argument) << name(c, f);
      // The input is batch 0 of a 6-batch tensor (the slowest dimension in both formats);
      // the output starts at the last element the launch reads, then one element later.
      auto big = khalo::nn::make_activation<Mem>(
          "big",
          {6, c.cin, static_cast<std::int64_t>(r.in.extent(2)), static_cast<std::int64_t>(r.in.extent(3)), c.width}, f);
      ConvLaunch shared = l;
      shared.in = khalo::nn::strided(big);
      const std::size_t batch = big.span() / 6;
      shared.out.data = big.data() + batch - 1;
      EXPECT_THROW(khalo::nn::conv(Exec(), shared, r.weights, c.upsample), std::invalid_argument) << name(c, f);
      shared.out.data = big.data() + batch;
      EXPECT_NO_THROW(khalo::nn::conv(Exec(), shared, r.weights, c.upsample)) << name(c, f);
    }
  }
}

// The team kernel (ConvAlgorithm::team, selectable on host), against the definition in double:
// every case above (odd widths, Cout and Cin that no tile divides, channel sub-ranges, residual,
// upsampling), both formats and packings, a batch of 2; exact on small integers.
TEST(ConvTeam, EqualsTheDefinition) {
  std::uint32_t seed = 500;
  for (const auto& c : cases()) {
    for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
      for (auto packing : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
        for (bool integers : {false, true}) {
          ConvRun r(c, f, packing, seed++, integers, 2);
          r.algorithm = ConvAlgorithm::team;
          EXPECT_EQ(r.launch(0, r.out_rows).name(), "team 32x32") << name(c, f);
          r.check_against_reference();
        }
      }
    }
  }
}

// Per algorithm, rows computed in several launches (a rank's band, the halo overlap) give the
// same bits as one launch.
TEST(ConvTeam, RowsInSeveralLaunchesGiveTheSameBits) {
  std::uint32_t seed = 700;
  for (const auto& c : cases()) {
    for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last_3d}) {
      ConvRun r(c, f, f, seed++, false, 2);
      r.algorithm = ConvAlgorithm::team;
      r.launch(0, r.out_rows);
      const auto whole = r.output();
      Kokkos::deep_copy(r.out, 0.0f);
      for (int y = r.out_rows - 1; y >= 0; --y) r.launch(y, y + 1);
      EXPECT_EQ(whole, r.output()) << name(c, f);
    }
  }
}

// Rows per work item: with fewer rows than the parts that would give every thread 4 items,
// every row is an item of its own (the formula gave up to 4 rows per item there, leaving
// threads idle); with many rows, as many as keep the partial sums in a quarter of L2.
TEST(ConvTuning, RowsPerItem) {
  using khalo::nn::detail::rows_per_item;
  // rows, items per row (batch x frames x channel tiles), width, channel tile, threads
  EXPECT_EQ(rows_per_item(1, 1, 64, 48, 1), 1);
  EXPECT_EQ(rows_per_item(2, 1, 64, 48, 1), 1);  // 4 parts wanted, 2 rows
  EXPECT_EQ(rows_per_item(3, 1, 64, 48, 2), 1);  // 8 parts wanted, 3 rows
  EXPECT_EQ(rows_per_item(3, 2, 64, 48, 2), 1);  // 4 parts wanted, 3 rows
  EXPECT_EQ(rows_per_item(8, 1, 64, 48, 1), 2);  // 4 parts of 2 rows
  EXPECT_EQ(rows_per_item(9, 1, 64, 48, 1), 3);  // 4 parts wanted: 3 items of 3 rows
  // Enough items per row for every thread: rows as the L2 budget allows (64 Ki floats).
  EXPECT_EQ(rows_per_item(64, 4, 64, 48, 1), 21);
  EXPECT_EQ(rows_per_item(10, 4, 64, 48, 1), 10);
  EXPECT_EQ(rows_per_item(64, 4, 4096, 48, 1), 1);
}

}  // namespace

// Enough parallelism for a GPU: a launch of the team convolution over the Wan stage's per-rank
// band (1, 96, 4, 60, 104) runs at least 64k threads, one full wave of an H200's 132 SMs at 128
// registers per thread.
TEST(ConvTeam, WanStageLaunchFillsAGpu) {
  khalo::nn::ConvLaunch l;
  l.n = 1;
  l.frames = 4;
  l.row_begin = 0;
  l.row_end = 60;
  l.out_width = l.in_width = 104;
  l.cout_begin = 0;
  l.cout_count = 96;
  EXPECT_GE(khalo::nn::detail::conv_team_threads(l), 65536);
}
