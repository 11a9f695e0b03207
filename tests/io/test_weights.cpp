// Weights files: keys, exact shapes, a prefix selecting one stage of a whole
// checkpoint, and messages that name the missing or mismatched key.
#include <khalo/io/weights.hpp>
#include <temp_dir.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <filesystem>

namespace {

using khalo::io::WeightsFile;
using khalo::test::world_rank;
using khalo::test::world_size;

const std::string golden = KHALO_GOLDEN_DIR;

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const khalo::io::Error& e) {
    return e.what();
  }
  return "no error";
}

TEST(Weights, GoldenStageKeysAndShapes) {
  WeightsFile w(MPI_COMM_WORLD, golden + "/res_shortcut.weights.h5");
  EXPECT_TRUE(w.has("resnets.0.conv_shortcut.weight"));
  EXPECT_FALSE(w.has("resnets.1.conv_shortcut.weight"));
  EXPECT_EQ(w.shape("resnets.0.conv1.weight"), (std::vector<std::int64_t>{4, 8, 3, 3, 3}));
  EXPECT_EQ(w.shape("resnets.0.norm1.gamma"), (std::vector<std::int64_t>{8, 1, 1, 1}));
  const auto bias = w.load("resnets.0.conv1.bias", {4});
  EXPECT_EQ(bias.size(), 4u);
  EXPECT_NE(bias[0], 0.0f);
}

TEST(Weights, MessagesNameTheKey) {
  WeightsFile w(MPI_COMM_WORLD, golden + "/res_same.weights.h5");
  EXPECT_NE(error_of([&] {
              w.load("resnets.0.conv_shortcut.weight", {4, 4, 1, 1, 1});
            }).find("missing key 'resnets.0.conv_shortcut.weight'"),
            std::string::npos);
  const std::string e = error_of([&] { w.load("resnets.0.conv1.weight", {8, 4, 3, 3, 3}); });
  EXPECT_NE(e.find("key 'resnets.0.conv1.weight' has shape (4, 4, 3, 3, 3), expected (8, 4, 3, 3, 3)"),
            std::string::npos)
      << e;
}

TEST(Weights, PrefixSelectsAStage) {
  khalo::test::SharedTempDir dir;
  const std::string path = dir.file("ckpt.h5");
  {
    khalo::io::SnapshotWriter out(MPI_COMM_WORLD, path);
    const std::vector<float> a{1, 2, 3}, b{4, 5};
    const bool root = world_rank() == 0;
    out.write_raw("decoder.up_blocks.0.resnets.0.conv1.bias", {3}, {{0}, {root ? 3 : 0}}, a.data(),
                  khalo::io::DType::float32, "contiguous", std::nullopt);
    out.write_raw("decoder.up_blocks.1.resnets.0.conv1.bias", {2}, {{0}, {root ? 2 : 0}}, b.data(),
                  khalo::io::DType::float32, "contiguous", std::nullopt);
    out.commit();
  }
  WeightsFile w(MPI_COMM_WORLD, path, "decoder.up_blocks.1.");
  EXPECT_EQ(w.keys(), std::vector<std::string>{"resnets.0.conv1.bias"});
  EXPECT_EQ(w.load("resnets.0.conv1.bias", {2}), (std::vector<float>{4, 5}));
  const std::string e = error_of([&] { w.shape("resnets.0.conv2.bias"); });
  EXPECT_NE(e.find("dataset '/decoder.up_blocks.1.resnets.0.conv2.bias'"), std::string::npos) << e;
}

}  // namespace
