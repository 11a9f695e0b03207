// safetensors checkpoints: F32, F16 and BF16 tensors read as float32, each in
// its own dtype, keys matched whole; damaged or hostile headers refused with
// the same message on every rank, before anything is allocated.
#include <khalo/error.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <temp_dir.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

namespace {

using khalo::io::SafetensorsFile;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}

// One tensor to write: its dtype, shape and raw little-endian bytes.
struct Raw {
  std::string key;
  std::string dtype;
  std::vector<std::int64_t> shape;
  std::vector<unsigned char> bytes;
};

Raw f32(const std::string& key, std::vector<std::int64_t> shape, const std::vector<float>& v) {
  Raw r{key, "F32", std::move(shape), std::vector<unsigned char>(v.size() * 4)};
  std::memcpy(r.bytes.data(), v.data(), r.bytes.size());
  return r;
}

Raw u16(const std::string& key, const std::string& dtype, std::vector<std::int64_t> shape,
        const std::vector<std::uint16_t>& v) {
  Raw r{key, dtype, std::move(shape), {}};
  for (auto x : v) {
    r.bytes.push_back(static_cast<unsigned char>(x & 0xff));
    r.bytes.push_back(static_cast<unsigned char>(x >> 8));
  }
  return r;
}

// Writes the file on rank 0: the 8-byte length, the JSON header (edited by
// \p edit when given, to damage it), the data.
void write(const std::string& path, const std::vector<Raw>& tensors,
           const std::function<void(nlohmann::json&)>& edit = {}, std::int64_t length_delta = 0) {
  if (world_rank() == 0) {
    nlohmann::json header = nlohmann::json::object();
    header["__metadata__"] = {{"format", "pt"}};
    std::vector<unsigned char> data;
    for (const auto& t : tensors) {
      header[t.key] = {
          {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
      data.insert(data.end(), t.bytes.begin(), t.bytes.end());
    }
    if (edit) edit(header);
    const std::string text = header.dump();
    const std::uint64_t n = text.size() + static_cast<std::uint64_t>(length_delta);
    std::ofstream out(path, std::ios::binary);
    for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
    out << text;
    out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// Opening \p path fails on every rank with the same collective message containing \p what.
void expect_refused(const std::string& path, const std::string& what) {
  std::string message;
  bool collective = false;
  try {
    SafetensorsFile f(MPI_COMM_WORLD, path);
  } catch (const khalo::io::Error& e) {
    message = e.what();
    collective = khalo::is_collective(e);
  }
  EXPECT_NE(message.find(what), std::string::npos) << "got: '" << message << "'";
  EXPECT_TRUE(collective) << message;
  int len = static_cast<int>(message.size()), lo = 0, hi = 0;
  MPI_Allreduce(&len, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&len, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi) << "ranks got different messages; mine: " << message;
}

std::vector<Raw> sample() {
  return {
      f32("decoder.conv_out.weight", {2, 3}, {1, -2, 3, -4, 5, 65536}),
      f32("encoder.conv_out.weight", {1}, {99}),
      // F16: 1, -2, 0.5, 2^-24 (the smallest subnormal), 65504 (the largest finite), -inf
      u16("decoder.norm_out.gamma", "F16", {2, 3}, {0x3c00, 0xc000, 0x3800, 0x0001, 0x7bff, 0xfc00}),
      // BF16: 1, -3, 256, 2^-126
      u16("post_quant_conv.bias", "BF16", {2, 2, 1}, {0x3f80, 0xc040, 0x4380, 0x0080}),
  };
}

TEST(Safetensors, ReadsEachDtypeAsFloat32) {
  khalo::test::SharedTempDir dir;
  const auto path = dir.file("model.safetensors");
  write(path, sample());
  SafetensorsFile f(MPI_COMM_WORLD, path);
  EXPECT_EQ(f.keys().size(), 4u);
  EXPECT_EQ(f.dtype("decoder.norm_out.gamma"), "F16");
  EXPECT_EQ(f.shape("post_quant_conv.bias"), (std::vector<std::int64_t>{2, 2, 1}));
  EXPECT_EQ(f.load("decoder.conv_out.weight", {2, 3}), (std::vector<float>{1, -2, 3, -4, 5, 65536}));
  const auto h = f.load("decoder.norm_out.gamma", {2, 3});
  EXPECT_EQ(h[0], 1.0f);
  EXPECT_EQ(h[1], -2.0f);
  EXPECT_EQ(h[2], 0.5f);
  EXPECT_EQ(h[3], std::ldexp(1.0f, -24));
  EXPECT_EQ(h[4], 65504.0f);
  EXPECT_TRUE(std::isinf(h[5]) && h[5] < 0);
  EXPECT_EQ(f.load("post_quant_conv.bias", {2, 2, 1}), (std::vector<float>{1, -3, 256, std::ldexp(1.0f, -126)}));
}

TEST(Safetensors, KeysMatchWholeNeverBySuffix) {
  khalo::test::SharedTempDir dir;
  const auto path = dir.file("model.safetensors");
  write(path, sample());
  SafetensorsFile f(MPI_COMM_WORLD, path);
  EXPECT_TRUE(f.has("decoder.conv_out.weight"));
  EXPECT_FALSE(f.has("conv_out.weight"));
  EXPECT_FALSE(f.has("decoder.conv_out"));
  EXPECT_EQ(f.load("encoder.conv_out.weight", {1}), std::vector<float>{99});
  EXPECT_THROW(f.load("conv_out.weight", {2, 3}), khalo::io::Error);
  EXPECT_THROW(f.load("decoder.conv_out.weight", {3, 2}), khalo::io::Error);  // wrong shape
}

TEST(Safetensors, OpenTensorSourceTellsTheFormatsApart) {
  khalo::test::SharedTempDir dir;
  const auto path = dir.file("model.safetensors");
  write(path, sample());
  const auto source = khalo::io::open_tensor_source(MPI_COMM_WORLD, path);
  EXPECT_EQ(source->dtype("post_quant_conv.bias"), "BF16");
  const auto golden = std::string(KHALO_GOLDEN_DIR) + "/res_same.weights.h5";
  const auto h5 = khalo::io::open_tensor_source(MPI_COMM_WORLD, golden);
  ASSERT_FALSE(h5->keys().empty());
  EXPECT_EQ(h5->dtype(h5->keys().front()), "F32");
}

TEST(Safetensors, DamagedOrHostileFilesAreRefusedOnEveryRank) {
  khalo::test::SharedTempDir dir;
  const auto path = dir.file("bad.safetensors");
  if (world_rank() == 0) std::ofstream(path, std::ios::binary) << "abc";
  MPI_Barrier(MPI_COMM_WORLD);
  expect_refused(path, "too short");
  write(path, sample(), {}, 1 << 20);  // the length claims more than the file holds
  expect_refused(path, "header claims");
  write(path, sample(), {}, -3);  // the header is cut
  expect_refused(path, "not JSON");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"]["data_offsets"] = {0, 1000000}; });
  expect_refused(path, "outside the file");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"]["shape"] = {2, 4}; });
  expect_refused(path, "needs 32");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"]["dtype"] = "I8"; });
  expect_refused(path, "dtype I8");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"]["shape"] = {1000000, 1000000000}; });
  expect_refused(path, "claims more than");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"]["shape"] = {-2, -3}; });
  expect_refused(path, "not a non-negative integer");
  write(path, sample(), [](nlohmann::json& h) { h["decoder.conv_out.weight"].erase("data_offsets"); });
  expect_refused(path, "lacks dtype");
  expect_refused(dir.file("missing.safetensors"), "cannot open");
}

}  // namespace
