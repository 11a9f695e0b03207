// khalo-compare's engine: ULP distance across zero and at infinity, NaN rules,
// tolerances, a single flipped bit in 10^7 elements, the first divergent layer.
#include <khalo/decomposition.hpp>
#include <khalo/io/compare.hpp>
#include <temp_dir.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <limits>

namespace {

namespace fs = std::filesystem;
using khalo::io::compare_files;
using khalo::io::CompareOptions;
using khalo::io::SnapshotWriter;
using khalo::test::world_rank;
using khalo::test::world_size;

class Compare : public ::testing::Test {
 protected:
  std::string file(const std::string& n) const { return dir_.file(n); }

  // Writes 1-D datasets (global values, every rank its balanced part).
  template <class T>
  void write(const std::string& path, const std::vector<std::pair<std::string, std::vector<T>>>& sets) {
    SnapshotWriter w(MPI_COMM_WORLD, path);
    for (const auto& [name, values] : sets) {
      const auto n = static_cast<std::int64_t>(values.size());
      const auto r = khalo::balanced_split(n, world_size(), world_rank());
      w.write_raw(name, {n}, {{r.begin}, {r.size()}}, values.data() + r.begin, khalo::io::dtype_of<T>(), "contiguous",
                  std::nullopt);
    }
    w.commit();
  }
  khalo::test::SharedTempDir dir_;
};

TEST(Ulp, AcrossZeroAndInfinity) {
  const float tiny = std::numeric_limits<float>::denorm_min();
  EXPECT_EQ(khalo::io::ulp_distance(1.0f, std::nextafter(1.0f, 2.0f)), 1u);
  EXPECT_EQ(khalo::io::ulp_distance(-tiny, tiny), 2u);
  EXPECT_EQ(khalo::io::ulp_distance(-0.0f, 0.0f), 0u);
  EXPECT_EQ(khalo::io::ulp_distance(-tiny, 0.0f), 1u);
  EXPECT_EQ(khalo::io::ulp_distance(std::numeric_limits<float>::infinity(), std::numeric_limits<float>::max()), 1u);
  EXPECT_EQ(khalo::io::ulp_distance(-1.0, std::nextafter(-1.0, 0.0)), 1u);
  EXPECT_EQ(
      khalo::io::ulp_distance(-std::numeric_limits<double>::denorm_min(), std::numeric_limits<double>::denorm_min()),
      2u);
}

TEST_F(Compare, NanNeverEqualUnlessAsked) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  write<float>(file("a.h5"), {{"/x", {1.0f, nan, inf, -0.0f}}});
  write<float>(file("b.h5"), {{"/x", {1.0f, nan, inf, 0.0f}}});
  CompareOptions o;
  auto c = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o);
  EXPECT_EQ(c.datasets[0].mismatches, 1);  // the NaN; -0 == +0 numerically
  EXPECT_TRUE(c.datasets[0].nan_seen);
  EXPECT_EQ(c.datasets[0].first_mismatch, (std::vector<std::int64_t>{1}));
  o.nan_equal = true;
  EXPECT_TRUE(compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o).equal());
  o.bitwise = true;  // bits: the NaNs match, -0 and +0 do not
  c = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o);
  EXPECT_EQ(c.datasets[0].mismatches, 1);
  EXPECT_EQ(c.datasets[0].first_mismatch, (std::vector<std::int64_t>{3}));
}

TEST_F(Compare, Tolerances) {
  const double x = 1.0;
  const double y = std::nextafter(std::nextafter(1.0, 2.0), 2.0);  // 2 ULP away
  write<double>(file("a.h5"), {{"/v", {x, 100.0}}});
  write<double>(file("b.h5"), {{"/v", {y, 100.5}}});
  CompareOptions o;
  auto c = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o);
  EXPECT_EQ(c.datasets[0].mismatches, 2);
  EXPECT_DOUBLE_EQ(c.datasets[0].max_abs, 0.5);
  EXPECT_NEAR(c.datasets[0].max_rel, 0.5 / 100.5, 1e-15);
  o.max_ulp = 2;
  EXPECT_EQ(compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o).datasets[0].mismatches, 1);
  o.max_ulp.reset();
  o.rtol = 0.005;  // 0.5 <= 0.005 * 100.5
  EXPECT_TRUE(compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o).equal());
  o.rtol = 0;
  o.atol = 0.49;
  EXPECT_EQ(compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o).datasets[0].mismatches, 1);
}

TEST_F(Compare, FindsOneFlippedBitInTenMillion) {
  const std::int64_t n = 10'000'000;
  const std::int64_t where = 7'654'321;
  const auto r = khalo::balanced_split(n, world_size(), world_rank());
  std::vector<float> mine(static_cast<std::size_t>(r.size()));
  for (std::int64_t i = 0; i < r.size(); ++i)
    mine[static_cast<std::size_t>(i)] = std::sin(static_cast<float>(r.begin + i));
  for (int flip = 0; flip < 2; ++flip) {
    if (flip && where >= r.begin && where < r.end) {
      auto& v = mine[static_cast<std::size_t>(where - r.begin)];
      std::uint32_t bits = 0;
      std::memcpy(&bits, &v, 4);
      bits ^= 1u << 3;  // a low mantissa bit
      std::memcpy(&v, &bits, 4);
    }
    SnapshotWriter w(MPI_COMM_WORLD, file(flip ? "b.h5" : "a.h5"));
    // As (10, 1000, 1000): the index comes back as a logical multi-index.
    khalo::io::Hyperslab slab{{0, 0, 0}, {10, 1000, 1000}};
    const auto rows = khalo::balanced_split(10, world_size(), world_rank());
    std::vector<float> all;  // rows of 10^6 elements
    const khalo::Range my_rows = rows;
    slab.offset[0] = my_rows.begin;
    slab.count[0] = my_rows.size();
    // Rebuild the slab's values from the generator (+ the flip) to avoid a gather.
    all.resize(static_cast<std::size_t>(my_rows.size() * 1'000'000));
    for (std::int64_t i = 0; i < static_cast<std::int64_t>(all.size()); ++i) {
      const std::int64_t g = my_rows.begin * 1'000'000 + i;
      all[static_cast<std::size_t>(i)] = std::sin(static_cast<float>(g));
      if (flip && g == where) {
        std::uint32_t bits = 0;
        std::memcpy(&bits, &all[static_cast<std::size_t>(i)], 4);
        bits ^= 1u << 3;
        std::memcpy(&all[static_cast<std::size_t>(i)], &bits, 4);
      }
    }
    w.write_raw("/data", {10, 1000, 1000}, slab, all.data(), khalo::io::DType::float32, "contiguous", std::nullopt);
    w.commit();
  }
  CompareOptions o;
  o.bitwise = true;
  const auto c = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), o);
  ASSERT_EQ(c.datasets.size(), 1u);
  EXPECT_EQ(c.datasets[0].elements, n);
  EXPECT_EQ(c.datasets[0].mismatches, 1);
  EXPECT_EQ(c.datasets[0].max_ulp, 8u);
  EXPECT_EQ(c.datasets[0].first_mismatch, (std::vector<std::int64_t>{7, 654, 321}));
}

TEST_F(Compare, FirstDivergentLayerInWritingOrder) {
  // Written z first, a second: the order of the run, not of the names.
  write<float>(file("a.h5"), {{"/layers/z_conv1", {1, 2, 3}}, {"/layers/a_conv2", {4, 5, 6}}, {"/out", {7}}});
  write<float>(file("b.h5"), {{"/layers/z_conv1", {1, 2, 3.5f}}, {"/layers/a_conv2", {4, 5, 7}}, {"/extra", {0}}});
  const auto c = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), CompareOptions{});
  ASSERT_TRUE(c.first_divergent.has_value());
  EXPECT_EQ(*c.first_divergent, "/layers/z_conv1");
  EXPECT_EQ(c.only_in_a, std::vector<std::string>{"/out"});
  EXPECT_EQ(c.only_in_b, std::vector<std::string>{"/extra"});
  CompareOptions one;
  one.dataset = "layers/a_conv2";
  const auto d = compare_files(MPI_COMM_WORLD, file("a.h5"), file("b.h5"), one);
  ASSERT_EQ(d.datasets.size(), 1u);
  EXPECT_EQ(d.datasets[0].first_mismatch, (std::vector<std::int64_t>{2}));
}

TEST_F(Compare, ErrorsOnEveryRank) {
  write<float>(file("f.h5"), {{"/x", {1, 2}}});
  write<double>(file("d.h5"), {{"/x", {1, 2}}});
  write<float>(file("s.h5"), {{"/x", {1, 2, 3}}});
  write<float>(file("o.h5"), {{"/y", {1, 2}}});
  auto message = [&](const std::string& a, const std::string& b, CompareOptions o = {}) {
    try {
      compare_files(MPI_COMM_WORLD, file(a), file(b), o);
    } catch (const khalo::io::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message("f.h5", "d.h5").find("is float32"), std::string::npos);
  EXPECT_NE(message("f.h5", "s.h5").find("has shape (2)"), std::string::npos);
  EXPECT_NE(message("f.h5", "o.h5").find("no dataset in common"), std::string::npos);
  EXPECT_NE(message("f.h5", "missing.h5").find("no such file"), std::string::npos);
  CompareOptions named;
  named.dataset = "/nope";
  EXPECT_NE(message("f.h5", "f.h5", named).find("no such dataset"), std::string::npos);
}

}  // namespace
