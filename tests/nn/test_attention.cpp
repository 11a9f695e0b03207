// The mid block's spatial self-attention: against a double-precision single-rank oracle
// computed here from the global input, in both memory formats; bit for bit the same on any
// number of ranks; in place as out of place; errors thrown on every rank.
#include <khalo/error.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/nn/layers/attention.hpp>
#include <temp_dir.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

using khalo::MemoryFormat;
using khalo::nn::AttentionWeights;
using khalo::nn::SpatialAttention;
using khalo::test::Index;
using khalo::test::world_rank;
using khalo::test::world_size;
using Shape = std::vector<std::int64_t>;
using khalo::test::rows_of;

struct Case {
  const char* name;
  Shape shape;           // global (N, C, T, H, W)
  double qk_gain = 1.0;  // multiplies the q and k weights: large scores test the softmax's max subtraction
};

// Odd H and W, C not a multiple of 8, N = T = 2; then several key blocks (128 keys) and query
// blocks (32 queries) with C past one 32-channel tile; then scores of several hundred.
const Case kCases[] = {
    {"small", {2, 12, 2, 7, 5}}, {"blocks", {1, 40, 1, 13, 23}}, {"large_scores", {1, 12, 1, 9, 7}, 30.0}};

// An input value that is a function of the global index, small and exact in float32.
double input_at(const Index& global) {
  return static_cast<double>(static_cast<std::int64_t>(khalo::test::value_at(global)) % 251 - 125) / 64.0;
}

AttentionWeights weights_for(const Case& k) {
  auto w = AttentionWeights::random(static_cast<int>(k.shape[1]), 2026);
  const auto C = static_cast<std::size_t>(k.shape[1]);
  for (std::size_t i = 0; i < 2 * C * C; ++i) w.qkv_weight[i] = static_cast<float>(w.qkv_weight[i] * k.qk_gain);
  return w;
}

// The oracle, in double on the whole array: out (N, C, T, H, W) in C order.
std::vector<double> reference(const Case& k, const AttentionWeights& w) {
  const auto N = k.shape[0], C = k.shape[1], T = k.shape[2], H = k.shape[3], W = k.shape[4];
  const std::int64_t G = H * W;
  std::vector<double> out(static_cast<std::size_t>(N * C * T * G));
  auto at = [&](std::int64_t n, std::int64_t c, std::int64_t t, std::int64_t p) {
    return static_cast<std::size_t>(((n * C + c) * T + t) * G + p);
  };
  for (std::int64_t n = 0; n < N; ++n)
    for (std::int64_t t = 0; t < T; ++t) {
      std::vector<double> x(static_cast<std::size_t>(G * C)), qkv(static_cast<std::size_t>(G * 3 * C));
      for (std::int64_t p = 0; p < G; ++p) {
        double ss = 0;
        for (std::int64_t c = 0; c < C; ++c) {
          const double v = input_at({n, c, t, p / W, p % W});
          x[static_cast<std::size_t>(p * C + c)] = v;
          ss += v * v;
        }
        const double norm = std::max(std::sqrt(ss), 1e-12);
        std::vector<double> y(static_cast<std::size_t>(C));
        for (std::int64_t c = 0; c < C; ++c)
          y[static_cast<std::size_t>(c)] = x[static_cast<std::size_t>(p * C + c)] / norm *
                                           std::sqrt(static_cast<double>(C)) * w.gamma[static_cast<std::size_t>(c)];
        for (std::int64_t o = 0; o < 3 * C; ++o) {
          double s = w.qkv_bias[static_cast<std::size_t>(o)];
          for (std::int64_t c = 0; c < C; ++c)
            s +=
                static_cast<double>(w.qkv_weight[static_cast<std::size_t>(o * C + c)]) * y[static_cast<std::size_t>(c)];
          qkv[static_cast<std::size_t>(p * 3 * C + o)] = s;
        }
      }
      for (std::int64_t i = 0; i < G; ++i) {
        std::vector<double> s(static_cast<std::size_t>(G));
        double top = -1e300;
        for (std::int64_t j = 0; j < G; ++j) {
          double d = 0;
          for (std::int64_t c = 0; c < C; ++c)
            d += qkv[static_cast<std::size_t>(i * 3 * C + c)] * qkv[static_cast<std::size_t>(j * 3 * C + C + c)];
          s[static_cast<std::size_t>(j)] = d / std::sqrt(static_cast<double>(C));
          top = std::max(top, s[static_cast<std::size_t>(j)]);
        }
        double sum = 0;
        std::vector<double> a(static_cast<std::size_t>(C), 0.0);
        for (std::int64_t j = 0; j < G; ++j) {
          const double e = std::exp(s[static_cast<std::size_t>(j)] - top);
          sum += e;
          for (std::int64_t c = 0; c < C; ++c)
            a[static_cast<std::size_t>(c)] += e * qkv[static_cast<std::size_t>(j * 3 * C + 2 * C + c)];
        }
        for (std::int64_t o = 0; o < C; ++o) {
          double z = w.proj_bias[static_cast<std::size_t>(o)];
          for (std::int64_t c = 0; c < C; ++c)
            z += static_cast<double>(w.proj_weight[static_cast<std::size_t>(o * C + c)]) *
                 a[static_cast<std::size_t>(c)] / sum;
          out[at(n, o, t, i)] = x[static_cast<std::size_t>(i * C + o)] + z;
        }
      }
    }
  return out;
}

// Runs the layer on `comm` over this rank's band of the global input; returns the band's
// output in logical C order, and the band's first row and rows.
struct Band {
  std::vector<float> values;
  std::int64_t first_row = 0, rows = 0;
};

Band run_layer(MPI_Comm comm, const Case& k, const AttentionWeights& w, MemoryFormat format, bool in_place = false,
               int max_frames = 0) {
  const auto dec = khalo::row_decomposition(comm, k.shape);
  const int frames = static_cast<int>(k.shape[2]);
  SpatialAttention layer(dec, w, max_frames > 0 ? max_frames : frames);
  const auto local = dec.local_extents();
  auto x = khalo::nn::make_activation("x", local, format);
  const std::int64_t r0 = dec.owned(3).begin;
  khalo::test::fill(x, [&](const Index& i) { return input_at({i[0], i[1], i[2], i[3] + r0, i[4]}); });
  if (in_place) {
    layer.run(khalo::nn::strided(x), khalo::nn::strided(x), frames);
    return {khalo::test::to_logical(x), r0, local[3]};
  }
  auto out = khalo::nn::make_activation("out", local, format);
  layer.run(khalo::nn::strided(x), khalo::nn::strided(out), frames);
  return {khalo::test::to_logical(out), r0, local[3]};
}

class Attention : public ::testing::TestWithParam<MemoryFormat> {};

TEST_P(Attention, EqualsTheDoubleReference) {
  for (const auto& k : kCases) {
    const auto w = weights_for(k);
    // One frame more than run uses: the buffers are sized for max_frames, a call may use fewer.
    const auto got = run_layer(MPI_COMM_WORLD, k, w, GetParam(), false, static_cast<int>(k.shape[2]) + 1);
    const auto want = rows_of(reference(k, w), k.shape, got.first_row, got.rows);
    ASSERT_EQ(got.values.size(), want.size());
    int bad = 0;
    double worst = 0;
    for (std::size_t i = 0; i < want.size(); ++i) {
      const double err = std::fabs(static_cast<double>(got.values[i]) - want[i]) / std::max(1.0, std::fabs(want[i]));
      worst = std::max(worst, err);
      bad += !(err <= 1e-5);  // NaN counts as bad
    }
    EXPECT_EQ(bad, 0) << k.name << " (" << khalo::to_string(GetParam()) << "): worst relative error " << worst;
  }
}

TEST_P(Attention, BitIdenticalToOneRank) {
  for (const auto& k : kCases) {
    const auto w = weights_for(k);
    const auto distributed = run_layer(MPI_COMM_WORLD, k, w, GetParam());
    const auto alone = run_layer(MPI_COMM_SELF, k, w, GetParam());  // this rank computes everything by itself
    const auto mine = rows_of(alone.values, k.shape, distributed.first_row, distributed.rows);
    ASSERT_EQ(mine.size(), distributed.values.size());
    EXPECT_EQ(std::memcmp(mine.data(), distributed.values.data(), mine.size() * sizeof(float)), 0)
        << k.name << ": " << world_size() << " ranks differ from one";
  }
}

TEST_P(Attention, InPlaceEqualsOutOfPlace) {
  const auto& k = kCases[0];
  const auto w = weights_for(k);
  const auto apart = run_layer(MPI_COMM_WORLD, k, w, GetParam());
  const auto in_place = run_layer(MPI_COMM_WORLD, k, w, GetParam(), true);
  ASSERT_EQ(apart.values.size(), in_place.values.size());
  EXPECT_EQ(std::memcmp(apart.values.data(), in_place.values.data(), apart.values.size() * sizeof(float)), 0);
}

INSTANTIATE_TEST_SUITE_P(Layouts, Attention,
                         ::testing::Values(MemoryFormat::contiguous, MemoryFormat::channels_last_3d),
                         [](const auto& info) { return khalo::to_string(info.param); });

// A band with no rows (4 ranks, 3 rows) sends nothing and computes nothing; the others agree with one rank.
TEST(AttentionBands, EmptyBandTakesPart) {
  const Case k{"thin", {1, 12, 1, 3, 5}};
  if (world_size() < 4) GTEST_SKIP() << "needs 4 ranks for an empty band";
  const auto w = weights_for(k);
  const auto distributed = run_layer(MPI_COMM_WORLD, k, w, MemoryFormat::contiguous);
  const auto alone = run_layer(MPI_COMM_SELF, k, w, MemoryFormat::contiguous);
  const auto mine = rows_of(alone.values, k.shape, distributed.first_row, distributed.rows);
  ASSERT_EQ(mine.size(), distributed.values.size());
  // The empty band's vectors have no data (memcmp must not see their null pointers).
  if (!mine.empty()) {
    EXPECT_EQ(std::memcmp(mine.data(), distributed.values.data(), mine.size() * sizeof(float)), 0);
  }
}

// Weights of another channel count on the last rank alone: every rank throws the same message.
TEST(AttentionErrors, ChannelMismatchThrowsOnEveryRank) {
  const Shape shape{1, 12, 1, 7, 5};
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, shape);
  const auto w = AttentionWeights::random(world_rank() == world_size() - 1 ? 13 : 12, 1);
  try {
    SpatialAttention layer(dec, w, 1);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(khalo::is_collective(e));
    EXPECT_EQ(std::string(e.what()).rfind("khalo::nn::SpatialAttention: ", 0), 0u) << e.what();
    EXPECT_NE(std::string(e.what()).find("13"), std::string::npos) << e.what();
  }
}

TEST(AttentionErrors, TooManyFramesThrowsOnEveryRank) {
  const Shape shape{1, 12, 3, 7, 5};
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, shape);
  SpatialAttention layer(dec, AttentionWeights::random(12, 1), 2);
  auto x = khalo::nn::make_activation("x", dec.local_extents(), MemoryFormat::contiguous);
  EXPECT_THROW(layer.run(khalo::nn::strided(x), khalo::nn::strided(x), 3), std::invalid_argument);
  EXPECT_THROW(layer.run(khalo::nn::strided(x), khalo::nn::strided(x), 0), std::invalid_argument);
}

// Keys and values of 1000 latent frames, 4.8e9 floats, do not fit MPI's int counts: refused
// on every rank, naming the sizes, before anything is allocated.
TEST(AttentionErrors, GatherPastIntMaxThrowsOnEveryRank) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 384, 1, 60, 104});
  try {
    SpatialAttention layer(dec, AttentionWeights::random(384, 1), 1000);
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_TRUE(khalo::is_collective(e));
    EXPECT_NE(std::string(e.what()).find("4792320000 floats"), std::string::npos) << e.what();
  }
}

// out one row below x in the same tensor: a partial overlap, refused on every rank.
TEST(AttentionErrors, PartialOverlapThrowsOnEveryRank) {
  const Shape shape{1, 12, 1, 4 * world_size(), 5};
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, shape);
  SpatialAttention layer(dec, AttentionWeights::random(12, 1), 1);
  auto local = dec.local_extents();
  local[3] += 1;
  auto x = khalo::nn::make_activation("x", local, MemoryFormat::contiguous);
  const auto s = khalo::nn::strided(x);
  EXPECT_THROW(layer.run(s, s.shifted(0, 0, 0, 1, 0), 1), std::invalid_argument);
}

TEST(AttentionWeightsTest, ExpectedKeysAreDiffusersNames) {
  const auto keys = AttentionWeights::expected_keys(384);
  ASSERT_EQ(keys.size(), 5u);
  EXPECT_EQ(keys[0].first, "norm.gamma");
  EXPECT_EQ(keys[0].second, (Shape{384, 1, 1}));
  EXPECT_EQ(keys[1].first, "to_qkv.weight");
  EXPECT_EQ(keys[1].second, (Shape{1152, 384, 1, 1}));
  EXPECT_EQ(keys[3].first, "proj.weight");
}

// A safetensors file of the block's tensors under diffusers' full names, written on rank 0;
// \p skip leaves one key out, \p qkv_shape overrides to_qkv.weight's stored shape.
void write_checkpoint(const std::string& path, const AttentionWeights& w, const std::string& skip = {},
                      Shape qkv_shape = {}) {
  if (world_rank() == 0) {
    const std::string prefix = "decoder.mid_block.attentions.0.";
    const std::vector<const std::vector<float>*> values = {&w.gamma, &w.qkv_weight, &w.qkv_bias, &w.proj_weight,
                                                           &w.proj_bias};
    nlohmann::json header = nlohmann::json::object();
    std::vector<char> data;
    const auto keys = AttentionWeights::expected_keys(w.channels);
    for (std::size_t i = 0; i < keys.size(); ++i) {
      if (keys[i].first == skip) continue;
      const auto& v = *values[i];
      const auto shape = keys[i].first == "to_qkv.weight" && !qkv_shape.empty() ? qkv_shape : keys[i].second;
      header[prefix + keys[i].first] = {
          {"dtype", "F32"}, {"shape", shape}, {"data_offsets", {data.size(), data.size() + v.size() * 4}}};
      const auto* bytes = reinterpret_cast<const char*>(v.data());
      data.insert(data.end(), bytes, bytes + v.size() * 4);
    }
    const std::string text = header.dump();
    const std::uint64_t n = text.size();
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << text;
    out.write(data.data(), static_cast<std::streamsize>(data.size()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST(AttentionWeightsTest, LoadsDiffusersKeysFromSafetensors) {
  khalo::test::SharedTempDir dir;
  const auto path = dir.file("mid.safetensors");
  const auto w = AttentionWeights::random(6, 3);
  write_checkpoint(path, w);
  khalo::io::SafetensorsFile file(MPI_COMM_WORLD, path);
  const auto got = AttentionWeights::load(file, "decoder.mid_block.attentions.0.");
  EXPECT_EQ(got.channels, 6);
  EXPECT_EQ(got.gamma, w.gamma);
  EXPECT_EQ(got.qkv_weight, w.qkv_weight);
  EXPECT_EQ(got.qkv_bias, w.qkv_bias);
  EXPECT_EQ(got.proj_weight, w.proj_weight);
  EXPECT_EQ(got.proj_bias, w.proj_bias);
}

TEST(AttentionWeightsTest, NamesTheMissingOrMisshapedKey) {
  khalo::test::SharedTempDir dir;
  const auto w = AttentionWeights::random(6, 3);
  auto message_of = [&](const std::string& name, const std::string& skip, const Shape& qkv_shape) {
    const auto path = dir.file(name);
    write_checkpoint(path, w, skip, qkv_shape);
    khalo::io::SafetensorsFile file(MPI_COMM_WORLD, path);
    try {
      AttentionWeights::load(file, "decoder.mid_block.attentions.0.");
    } catch (const khalo::io::Error& e) {
      return std::string(e.what());
    }
    return std::string("no exception");
  };
  EXPECT_NE(message_of("a.safetensors", "proj.bias", {}).find("proj.bias"), std::string::npos);
  EXPECT_NE(message_of("b.safetensors", "to_qkv.weight", {}).find("to_qkv.weight"), std::string::npos);
  EXPECT_NE(message_of("c.safetensors", {}, {6, 18, 1, 1}).find("to_qkv.weight"), std::string::npos);
}

}  // namespace
