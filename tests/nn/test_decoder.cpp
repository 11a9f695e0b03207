// The decoder stage against the committed PyTorch reference, in both layouts,
// and against itself on one rank: bit for bit on any rank count.
#include <khalo/io/snapshot.hpp>
#include <khalo/io/weights.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstring>
#include <fstream>

namespace {

using khalo::MemoryFormat;
using khalo::nn::Activation;
using khalo::nn::DecoderStage;
using khalo::nn::StageWeights;
using khalo::test::world_rank;
using khalo::test::world_size;

const std::string golden = KHALO_GOLDEN_DIR;

struct Golden {
  std::string name;
  int chunks;  // 0: whole clip
};

std::vector<Golden> golden_configs() {
  std::ifstream in(golden + "/manifest.json");
  const auto m = nlohmann::json::parse(in);
  std::vector<Golden> out;
  for (const auto& c : m.at("configs"))
    out.push_back({c.at("name"), c.at("chunks").is_null() ? 0 : c.at("chunks").get<int>()});
  return out;
}

// Runs a golden configuration on `comm`; returns this rank's output band in logical C order.
std::vector<float> decode(MPI_Comm comm, const Golden& g, MemoryFormat format, DecoderStage** keep = nullptr) {
  khalo::io::WeightsFile wf(comm, golden + "/" + g.name + ".weights.h5");
  const auto weights = StageWeights::load(wf);
  khalo::io::SnapshotReader in(comm, golden + "/" + g.name + ".input.h5");
  auto* stage = new DecoderStage(comm, weights, format, in.info("/data").shape);
  auto band = khalo::nn::make_activation("in", stage->input_decomposition().local_extents(), format);
  in.read("/data", stage->input_decomposition(), band);
  const auto out = stage->run(band, g.chunks);
  auto values = khalo::test::to_logical(out);
  if (keep != nullptr) {
    *keep = stage;
  } else {
    delete stage;
  }
  return values;
}

class Decoder : public ::testing::TestWithParam<MemoryFormat> {};

TEST_P(Decoder, EqualsThePyTorchReference) {
  for (const auto& g : golden_configs()) {
    DecoderStage* stage = nullptr;
    const auto got = decode(MPI_COMM_WORLD, g, GetParam(), &stage);
    const auto shape = stage->output_shape(g.chunks);
    const auto rows = stage->output_rows();
    delete stage;
    khalo::io::SnapshotReader ref(MPI_COMM_WORLD, golden + "/" + g.name + ".expected.h5");
    ASSERT_EQ(ref.info("/data").shape, shape) << g.name;
    std::vector<float> want(got.size());
    ref.read_raw("/data", shape, {{0, 0, 0, rows.begin, 0}, {shape[0], shape[1], shape[2], rows.size(), shape[4]}},
                 want.data(), khalo::io::DType::float32);
    int bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < got.size(); ++i) {
      const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
      worst = std::max(worst, err);
      bad += err > 1e-5 + 1e-4 * std::fabs(static_cast<double>(want[i]));
    }
    EXPECT_EQ(bad, 0) << g.name << " (" << khalo::to_string(GetParam()) << "): worst abs error " << worst;
  }
}

TEST_P(Decoder, BitIdenticalToOneRank) {
  for (const auto& g : golden_configs()) {
    DecoderStage* stage = nullptr;
    const auto distributed = decode(MPI_COMM_WORLD, g, GetParam(), &stage);
    const auto shape = stage->output_shape(g.chunks);
    const auto rows = stage->output_rows();
    delete stage;
    const auto alone = decode(MPI_COMM_SELF, g, GetParam());  // this rank decodes everything by itself
    const auto mine = khalo::test::rows_of(alone, shape, rows.begin, rows.end - rows.begin);
    ASSERT_EQ(mine.size(), distributed.size());
    EXPECT_EQ(std::memcmp(mine.data(), distributed.data(), mine.size() * sizeof(float)), 0)
        << g.name << ": " << world_size() << " ranks differ from one";
  }
}

INSTANTIATE_TEST_SUITE_P(Layouts, Decoder, ::testing::Values(MemoryFormat::contiguous, MemoryFormat::channels_last_3d),
                         [](const auto& info) { return khalo::to_string(info.param); });

TEST(DecoderLayouts, ContiguousAndChannelsLastAgree) {
  const Golden g{"up3d_chunks3", 3};
  const auto a = decode(MPI_COMM_WORLD, g, MemoryFormat::contiguous);
  const auto b = decode(MPI_COMM_WORLD, g, MemoryFormat::channels_last_3d);
  ASSERT_EQ(a.size(), b.size());
  for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-5 + 1e-5 * std::fabs(a[i])) << i;
}

// Only halo-sized traffic: every exchange sends one row of one frame range per
// neighbour, nothing else (no concatenation, no gathering, no conversion).
TEST(DecoderTraffic, OnlyHaloRows) {
  khalo::nn::StageConfig c;
  c.in_dim = 6;
  c.out_dim = 4;
  c.num_res_blocks = 1;
  c.upsample = khalo::nn::Upsample::upsample3d;
  const auto weights = StageWeights::random(c, 7);
  const std::int64_t N = 1, T = 5, H = 3 * world_size() + 1, W = 6;
  DecoderStage stage(MPI_COMM_WORLD, weights, MemoryFormat::channels_last_3d, {N, c.in_dim, T, H, W});
  auto band =
      khalo::nn::make_activation("in", stage.input_decomposition().local_extents(), MemoryFormat::channels_last_3d);
  khalo::nn::fill_random_input(band, stage.input_decomposition(), 3);
  const int chunks = 2;  // frames 3 + 2
  (void)stage.run(band, chunks);
  const auto& dec = stage.input_decomposition();
  const int neighbours =
      (dec.neighbor(3, khalo::Side::low) != MPI_PROC_NULL) + (dec.neighbor(3, khalo::Side::high) != MPI_PROC_NULL);
  std::int64_t want = 0;
  for (int frames : khalo::nn::chunk_sizes(T, chunks)) {
    const std::int64_t row = N * W * frames * 4;  // one row of one channel over the chunk's frames, in bytes
    want += row * (c.in_dim + c.out_dim);         // block 0: conv1 on in_dim, conv2 on out_dim
    want += row * (c.out_dim + c.out_dim);        // block 1
  }
  // Upsampler conv input: the first chunk's frames as they are, the second's doubled by time_conv.
  const auto sizes = khalo::nn::chunk_sizes(T, chunks);
  want += N * W * 4 * c.out_dim * (sizes[0] + 2 * sizes[1]);
  EXPECT_EQ(stage.halo_stats().bytes_sent, neighbours * want);
}

template <class F>
std::string error_of(F f) {
  try {
    f();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "no error";
}

TEST(DecoderErrors, SameMessageOnEveryRank) {
  khalo::nn::StageConfig c;
  c.in_dim = c.out_dim = 4;
  const auto weights = StageWeights::random(c, 1);
  // More chunks than frames.
  DecoderStage stage(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 4, 2, 2 * world_size(), 3});
  auto band = khalo::nn::make_activation("in", stage.input_decomposition().local_extents(), MemoryFormat::contiguous);
  EXPECT_NE(error_of([&] { stage.run(band, 3); }).find("3 chunks for 2 frame(s)"), std::string::npos);
  // A band thinner than the halo: fewer rows than ranks.
  if (world_size() > 1) {
    EXPECT_NE(error_of([&] {
                DecoderStage(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 4, 2, world_size() - 1, 3});
              }).find("would hold none"),
              std::string::npos);
  }
  // Channels that do not match the weights.
  EXPECT_NE(error_of([&] {
              DecoderStage(MPI_COMM_WORLD, weights, MemoryFormat::contiguous, {1, 5, 2, 4, 3});
            }).find("the stage takes 4"),
            std::string::npos);
  // Weights under a prefix that holds none.
  khalo::io::WeightsFile wf(MPI_COMM_WORLD, golden + "/res_same.weights.h5", "decoder.up_blocks.7.");
  EXPECT_NE(error_of([&] { StageWeights::load(wf); }).find("missing key 'resnets.0.conv1.weight'"), std::string::npos);
}

}  // namespace
