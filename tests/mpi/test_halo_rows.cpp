// The seed-parity API: k boundary rows of an unpadded band, exchanged into
// buffers in the band's own format; zeros and no copy on open sides.
#include <khalo/decomposition.hpp>
#include <khalo/halo_rows.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

namespace {

using khalo::test::Index;
using khalo::test::ptr_t;
using khalo::test::world_rank;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;

template <class P>
class HaloRowsLayouts : public ::testing::Test {};
TYPED_TEST_SUITE(HaloRowsLayouts, khalo::test::LayoutsAndTypes, khalo::test::ParamNames);

// Expected value at (n, c, d, global row h, w): zero outside the tensor.
double expected(const Index& i, std::int64_t H) { return i[3] < 0 || i[3] >= H ? 0.0 : khalo::test::value_at(i); }

template <class View>
int count_wrong(const View& v, std::int64_t first_row, std::int64_t H) {
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
  int wrong = 0;
  khalo::test::for_each_index(khalo::detail::extents_of(v), [&](const Index& i) {
    Index g = i;
    g[3] += first_row;
    const auto want = static_cast<typename View::non_const_value_type>(expected(g, H));
    wrong += h.data()[khalo::test::offset_of(h, i)] != want;
  });
  return wrong;
}

TYPED_TEST(HaloRowsLayouts, RowsMatchTheGlobalTensor) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  for (int k : {1, 2}) {
    const std::int64_t H = 3 * world_size() + 1;  // uneven bands
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, H, 4});
    const khalo::Range rows = dec.owned(3);
    auto band = Case::template make<ptr_t<T, 5>>("band", dec.local_extents());
    khalo::test::fill(band, [&](Index i) {
      i[3] += rows.begin;
      return khalo::test::value_at(i);
    });
    khalo::HaloRows<decltype(band), Exec> halo(MPI_COMM_WORLD, band, k);
    halo.exchange(Exec(), band);
    halo.exchange(Exec(), band);  // twice: persistent buffers, same result
    EXPECT_EQ(count_wrong(halo.top(), rows.begin - k, H), 0) << "top, k=" << k;
    EXPECT_EQ(count_wrong(halo.bottom(), rows.end, H), 0) << "bottom, k=" << k;
    // The buffers extend the band without a layout conversion.
    EXPECT_EQ(khalo::stride_order(halo.top()), khalo::stride_order(band));
    auto padded = halo.allocate_padded(band, "padded");
    halo.assemble(Exec(), band, padded);
    EXPECT_EQ(count_wrong(padded, rows.begin - k, H), 0) << "assembled, k=" << k;
    EXPECT_EQ(khalo::stride_order(padded), khalo::stride_order(band));
    // Open sides: nothing sent, nothing received, nothing packed.
    const int n = (world_rank() > 0) + (world_rank() < world_size() - 1);
    const std::int64_t row_bytes = 3 * 2 * 4 * k * static_cast<std::int64_t>(sizeof(T));
    EXPECT_EQ(halo.stats().messages, 2 * n);
    EXPECT_EQ(halo.stats().bytes_sent, 2 * n * row_bytes);
    EXPECT_EQ(halo.stats().bytes_received, 2 * n * row_bytes);
    EXPECT_LE(halo.stats().faces_packed, 2 * n);
  }
}

TEST(HaloRows, ChannelsLastRowsAreSentWithoutPacking) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 8, 1, 2 * world_size(), 5});
  auto band = khalo::allocate<float*****>("band", dec.local_extents(), khalo::MemoryFormat::channels_last_3d);
  khalo::HaloRows<decltype(band), Exec> halo(MPI_COMM_WORLD, band, 1);
  halo.exchange(Exec(), band);
  EXPECT_EQ(khalo::memory_format(halo.top()), khalo::MemoryFormat::channels_last_3d);
  if (halo.staged()) GTEST_SKIP() << khalo::test::kStagedSkip;
  EXPECT_EQ(halo.stats().faces_packed, 0);
}

TEST(HaloRows, ThinBandThrowsOnEveryRank) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  // Rank 0 holds one row; k = 2.
  const std::int64_t h = world_rank() == 0 ? 1 : 4;
  auto band = khalo::allocate<float*****>("band", {1, 2, 1, h, 3}, khalo::MemoryFormat::contiguous);
  std::string message;
  try {
    khalo::HaloRows<decltype(band), Exec> halo(MPI_COMM_WORLD, band, 2);
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("khalo::HaloRows: rank 0 holds 1 row(s)"), std::string::npos) << message;
}

TEST(HaloRows, DisagreeingWidthThrowsOnEveryRank) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  auto band = khalo::allocate<float*****>("band", {1, 2, 1, 4, 3 + world_rank()}, khalo::MemoryFormat::contiguous);
  EXPECT_THROW((khalo::HaloRows<decltype(band), Exec>(MPI_COMM_WORLD, band, 1)), std::invalid_argument);
}

}  // namespace
