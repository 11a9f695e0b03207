// The whole decoder against the committed PyTorch reference (float64 truth, weights as
// safetensors in F32, F16, BF16 and mixed), in both layouts, and against itself on one
// rank: bit for bit on any rank count.
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/model.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

namespace {

using khalo::MemoryFormat;
using khalo::nn::Decoder;
using khalo::nn::DecoderWeights;
using khalo::test::world_size;

const std::string golden = KHALO_GOLDEN_DECODER_DIR;

struct Golden {
  std::string name;
  bool normalized = false;
  std::int64_t rows = 0;  // latent rows
};

std::vector<Golden> golden_configs() {
  std::ifstream in(golden + "/manifest.json");
  const auto m = nlohmann::json::parse(in);
  std::vector<Golden> out;
  for (const auto& c : m.at("configs"))
    out.push_back({c.at("name"), c.at("latents_normalized").get<bool>(), c.at("shape").at(3).get<std::int64_t>()});
  return out;
}

struct Decoded {
  std::vector<float> values;  // this rank's band, logical C order
  std::vector<std::int64_t> shape;
  khalo::Range rows;
  std::int64_t frames_seen = 0;  // output frames announced to on_frames
};

Decoded decode(MPI_Comm comm, const Golden& g, MemoryFormat format) {
  const auto file = khalo::io::open_tensor_source(comm, golden + "/" + g.name + ".safetensors");
  const auto weights = DecoderWeights::load(*file);
  khalo::io::SnapshotReader in(comm, golden + "/" + g.name + ".input.h5");
  Decoder model(comm, weights, format, in.info("/data").shape);
  auto band = khalo::nn::make_activation("latent", model.latent_decomposition().local_extents(), format);
  in.read("/data", model.latent_decomposition(), band);
  Decoded d;
  std::int64_t next = 0;
  const auto out = model.run(band, g.normalized, [&](const khalo::nn::DecodedFrames& f) {
    EXPECT_EQ(f.first_frame, next) << "frames arrive in order";
    next += f.frames;
    d.frames_seen += f.frames;
  });
  d.values = khalo::test::to_logical(out);
  d.shape = model.output_shape();
  d.rows = model.output_rows();
  return d;
}

class Model : public ::testing::TestWithParam<MemoryFormat> {};

TEST_P(Model, EqualsThePyTorchReference) {
  for (const auto& g : golden_configs()) {
    if (g.rows < world_size()) continue;  // every rank needs a latent row
    const auto d = decode(MPI_COMM_WORLD, g, GetParam());
    khalo::io::SnapshotReader ref(MPI_COMM_WORLD, golden + "/" + g.name + ".expected.h5");
    ASSERT_EQ(ref.info("/data").shape, d.shape) << g.name;
    EXPECT_EQ(d.frames_seen, d.shape[2]) << g.name;
    std::vector<float> want(d.values.size());
    const auto& s = d.shape;
    ref.read_raw("/data", s, {{0, 0, 0, d.rows.begin, 0}, {s[0], s[1], s[2], d.rows.size(), s[4]}}, want.data(),
                 khalo::io::DType::float32);
    int bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(static_cast<double>(d.values[i]) - want[i]);
      worst = std::max(worst, err);
      bad += !(err <= 1e-4 + 1e-4 * std::fabs(static_cast<double>(want[i])));
    }
    EXPECT_EQ(bad, 0) << g.name << " (" << khalo::to_string(GetParam()) << "): worst abs error " << worst;
  }
}

TEST_P(Model, BitIdenticalToOneRank) {
  if (world_size() == 1) GTEST_SKIP() << "needs 2 ranks or more";
  for (const auto& g : golden_configs()) {
    if (g.rows < world_size()) continue;
    const auto distributed = decode(MPI_COMM_WORLD, g, GetParam());
    const auto alone = decode(MPI_COMM_SELF, g, GetParam());  // this rank decodes everything by itself
    const auto mine = khalo::test::rows_of(alone.values, distributed.shape, distributed.rows.begin,
                                           distributed.rows.end - distributed.rows.begin);
    ASSERT_EQ(mine.size(), distributed.values.size());
    EXPECT_EQ(std::memcmp(mine.data(), distributed.values.data(), mine.size() * sizeof(float)), 0)
        << g.name << ": " << world_size() << " ranks differ from one";
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, Model, ::testing::Values(MemoryFormat::contiguous, MemoryFormat::channels_last_3d),
                         [](const auto& info) { return khalo::to_string(info.param); });

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST(ModelConfig, Wan21Shapes) {
  const auto c = khalo::nn::DecoderConfig::wan21(96, 16);
  ASSERT_EQ(c.up_blocks.size(), 4u);
  EXPECT_EQ(c.mid_dim, 384);
  EXPECT_EQ(c.out_dim, 96);
  EXPECT_EQ(c.up_blocks[1].in_dim, 192);
  EXPECT_EQ(c.up_blocks[1].out_dim, 384);
  EXPECT_EQ(c.up_blocks[2].upsample, khalo::nn::Upsample::upsample2d);
  EXPECT_EQ(c.output_frames(21), 81);
  EXPECT_EQ(c.scale(), 8);
}

TEST(ModelErrors, SameMessageOnEveryRank) {
  const auto config = khalo::nn::DecoderConfig::wan21(2, 4, 0);
  const auto weights = DecoderWeights::random(config, 1);
  const int P = world_size();
  // Channels that do not match the weights.
  EXPECT_NE(error_of([&] {
              Decoder(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 5, 1, P, 2});
            }).find("the decoder takes 4"),
            std::string::npos);
  // A band thinner than the halo.
  if (P > 1) {
    EXPECT_NE(error_of([&] {
                Decoder(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 4, 1, P - 1, 2});
              }).find("would hold none"),
              std::string::npos);
  }
  // Normalized latents need Wan 2.1's 16 channels.
  Decoder model(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 4, 1, P, 2});
  auto band =
      khalo::nn::make_activation("latent", model.latent_decomposition().local_extents(), MemoryFormat::contiguous);
  EXPECT_NE(error_of([&] { model.run(band, true); }).find("needs Wan 2.1's 16 latent channels"), std::string::npos);
}

}  // namespace

// The layers' transient buffers come from one scratch per slot, shared by every resolution
// built from one RowBands: sized for the largest reservation, and one slot never lends the
// memory of another (a conv's input buffer and a block's conv1 output are in use together).
TEST(Scratch, SharedAcrossResolutionsSizedForTheLargest) {
  const khalo::ProcessGrid grid(MPI_COMM_WORLD, {world_size()});
  const khalo::Decomposition dec(grid, {1, 4, 2, 4 * world_size(), 6}, {3});
  const khalo::nn::RowBands low(dec, MemoryFormat::channels_last_3d);
  const khalo::nn::RowBands high = low.upsampled();
  using khalo::nn::ScratchSlot;
  low.reserve(ScratchSlot::conv_input, 8, 3, 1);
  high.reserve(ScratchSlot::conv_input, 4, 6, 1);  // the larger: 4 x 6 x 10 x 12 floats
  low.reserve(ScratchSlot::block, 8, 1);
  const auto a = low.borrow(ScratchSlot::conv_input, 8, 3, 1);
  const auto b = high.borrow(ScratchSlot::conv_input, 4, 6, 1);
  const auto c = low.borrow(ScratchSlot::block, 8, 1);
  EXPECT_EQ(a.data(), b.data());
  EXPECT_NE(a.data(), c.data());
  EXPECT_EQ(b.span(), 4u * 6u * 10u * 12u);
  // Every float of the largest borrow is writable (ASan checks the bound).
  Kokkos::deep_copy(b, 1.0f);
  EXPECT_EQ(b.extent(3), 10u);
}
