#include <khalo/layout.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace {

using khalo::MemoryFormat;
using khalo::StrideOrder;
using khalo::test::Index;

std::vector<Index> shapes5() {
  return {{2, 3, 4, 5, 6}, {1, 3, 4, 5, 6}, {2, 1, 4, 5, 6}, {2, 3, 1, 5, 6}, {2, 3, 4, 1, 6},
          {2, 3, 4, 5, 1}, {1, 1, 4, 5, 6}, {1, 3, 1, 1, 6}, {1, 1, 1, 1, 7}, {1, 1, 1, 1, 1}};
}
std::vector<Index> shapes4() {
  return {{2, 3, 5, 6}, {1, 3, 5, 6}, {2, 1, 5, 6}, {2, 3, 1, 6}, {2, 3, 5, 1}, {1, 1, 5, 6}, {1, 1, 1, 1}};
}

// Strides of a dense array in `order`, computed here independently of khalo.
Index reference_strides(const Index& extents, const StrideOrder& order) {
  Index s(extents.size());
  std::int64_t step = 1;
  for (int k = static_cast<int>(order.size()) - 1; k >= 0; --k) {
    s[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])] = step;
    step *= extents[static_cast<std::size_t>(order[static_cast<std::size_t>(k)])];
  }
  return s;
}

template <class View>
Index strides(const View& v) {
  return khalo::detail::strides_of(v);
}

TEST(Layout, FormatNamesRoundTrip) {
  for (auto f : {MemoryFormat::contiguous, MemoryFormat::channels_last, MemoryFormat::channels_last_3d,
                 MemoryFormat::column_major, MemoryFormat::permuted}) {
    EXPECT_EQ(khalo::memory_format_from_string(khalo::to_string(f)), f);
  }
  try {
    khalo::memory_format_from_string("nhwc");
    FAIL() << "an unknown format must throw";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("khalo::memory_format_from_string"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("nhwc"), std::string::npos) << e.what();
  }
  EXPECT_THROW(khalo::format_order(MemoryFormat::channels_last, 5), std::invalid_argument);
  EXPECT_THROW(khalo::format_order(MemoryFormat::permuted, 5), std::invalid_argument);
  EXPECT_EQ(khalo::format_order(MemoryFormat::channels_last_3d, 5), (StrideOrder{0, 2, 3, 4, 1}));
  EXPECT_EQ(khalo::format_order(MemoryFormat::channels_last, 4), (StrideOrder{0, 2, 3, 1}));
  EXPECT_EQ(khalo::format_order(MemoryFormat::column_major, 4), (StrideOrder{3, 2, 1, 0}));
}

TEST(Layout, AllocationInAnOrderReproducesStrides) {
  const Index e{2, 3, 4, 5, 6};
  auto cl = khalo::allocate<float*****>("cl", e, MemoryFormat::channels_last_3d);
  EXPECT_EQ(strides(cl), (Index{360, 1, 90, 18, 3}));  // N D H W C
  for (const auto& shape : shapes5()) {
    for (const StrideOrder& order : {StrideOrder{0, 1, 2, 3, 4}, StrideOrder{0, 2, 3, 4, 1}, StrideOrder{4, 3, 2, 1, 0},
                                     StrideOrder{3, 0, 4, 1, 2}}) {
      auto v = khalo::allocate<double*****>("v", shape, order);
      EXPECT_EQ(strides(v), reference_strides(shape, order));
      EXPECT_TRUE(khalo::is_contiguous(v));
    }
  }
  EXPECT_THROW(khalo::allocate<float***>("bad", {2, 3}, StrideOrder{0, 1}), std::invalid_argument);
  EXPECT_THROW(khalo::allocate<float**>("bad", {2, 3}, StrideOrder{0, 0}), std::invalid_argument);
  // 2^120 elements: the slowest stride (2^80) wraps in 64 bits; it must be refused, not handed
  // to Kokkos as a small (or zero-stride) array.
  const std::int64_t big = std::int64_t{1} << 40;
  EXPECT_THROW(khalo::allocate<float***>("huge", {big, big, big}, StrideOrder{0, 1, 2}), std::length_error);
  EXPECT_THROW(khalo::dense_layout({big, big}, StrideOrder{1, 0}), std::length_error);  // 2^80 elements
}

// Large host Views are allocated uninitialized (to advise huge pages before the first touch)
// and zeroed by khalo: a View allocated where a freed one left ones behind must read zero.
TEST(Layout, AllocationStartsZeroedSmallOrLarge) {
  for (const Index& shape : {Index{1, 3, 4, 5, 6}, Index{1, 64, 4, 64, 130}}) {  // 1.4 KiB, 8.1 MiB
    for (int round = 0; round < 3; ++round) {
      auto v = khalo::allocate<float*****, Kokkos::HostSpace>("v", shape, MemoryFormat::channels_last_3d);
      const float* p = v.data();
      const auto n = static_cast<std::ptrdiff_t>(v.span());
      EXPECT_EQ(std::count(p, p + n, 0.0f), n) << "shape " << shape[1] << ", round " << round;
      Kokkos::deep_copy(v, 1.0f);
    }
  }
}

// Inference must give a format whose dense strides are the View's; where
// several formats store a shape identically (size-1 extents), the declared
// layout's, then contiguous, wins.
template <int R>
void check_inference(const std::vector<Index>& shapes, const std::vector<MemoryFormat>& formats) {
  using khalo::test::ptr_t;
  for (const auto& shape : shapes) {
    for (auto f : formats) {
      auto v = khalo::allocate<ptr_t<float, R>>("v", shape, f);
      const MemoryFormat got = khalo::memory_format(v);
      EXPECT_EQ(strides(v), reference_strides(shape, khalo::format_order(got, R)))
          << "format " << khalo::to_string(f) << " inferred as " << khalo::to_string(got);
      bool distinguishable = true;
      for (auto earlier : formats) {
        if (earlier == f) break;
        if (reference_strides(shape, khalo::format_order(earlier, R)) == strides(v)) distinguishable = false;
      }
      if (distinguishable) {
        EXPECT_EQ(got, f) << "shape with " << shape.size() << " dims";
      }
    }
    // Declared layouts: LayoutRight is contiguous and LayoutLeft column-major, whatever the shape.
    auto r = khalo::test::RightCase::make<ptr_t<float, R>>("r", shape);
    auto l = khalo::test::LeftCase::make<ptr_t<float, R>>("l", shape);
    EXPECT_EQ(khalo::memory_format(r), MemoryFormat::contiguous);
    EXPECT_EQ(khalo::memory_format(l), MemoryFormat::column_major);
    auto p = khalo::test::PermutedCase::make<ptr_t<float, R>>("p", shape);
    const auto pf = khalo::memory_format(p);
    // Dims of extent 1 may sit anywhere; the others must be stored in the inferred order.
    const Index want = reference_strides(shape, khalo::stride_order(p));
    for (std::size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] > 1) {
        EXPECT_EQ(strides(p)[d], want[d]) << "dimension " << d;
      }
    }
    const bool no_unit_extent = std::find(shape.begin(), shape.end(), 1) == shape.end();
    if (pf == MemoryFormat::permuted && no_unit_extent) {
      EXPECT_EQ(khalo::stride_order(p), khalo::test::PermutedCase::order(R));
    }
  }
}

TEST(Layout, FormatInferenceRank5) {
  check_inference<5>(shapes5(), {MemoryFormat::contiguous, MemoryFormat::channels_last_3d, MemoryFormat::column_major});
}

TEST(Layout, FormatInferenceRank4) {
  check_inference<4>(shapes4(), {MemoryFormat::contiguous, MemoryFormat::channels_last, MemoryFormat::column_major});
}

TEST(Layout, InferenceOfSubviewsKeepsTheParentsOrder) {
  auto cl = khalo::allocate<float*****>("cl", {2, 8, 4, 6, 5}, MemoryFormat::channels_last_3d);
  auto band = Kokkos::subview(cl, Kokkos::ALL, Kokkos::ALL, Kokkos::ALL, std::make_pair(1, 4), Kokkos::ALL);
  EXPECT_EQ(khalo::memory_format(band), MemoryFormat::channels_last_3d);
  EXPECT_FALSE(khalo::is_contiguous(band));
  auto right = khalo::test::RightCase::make<float*****>("r", {2, 8, 4, 6, 5});
  auto rband = Kokkos::subview(right, Kokkos::ALL, Kokkos::ALL, Kokkos::ALL, std::make_pair(1, 4), Kokkos::ALL);
  EXPECT_EQ(khalo::memory_format(rband), MemoryFormat::contiguous);
}

TEST(Layout, StrideOrderOfEveryRank) {
  using khalo::test::LeftCase;
  using khalo::test::PermutedCase;
  using khalo::test::RightCase;
  auto check = [](auto right, auto left, auto perm, int rank) {
    EXPECT_EQ(khalo::stride_order(right), khalo::format_order(MemoryFormat::contiguous, rank));
    EXPECT_EQ(khalo::stride_order(left), khalo::format_order(MemoryFormat::column_major, rank));
    EXPECT_EQ(khalo::stride_order(perm), PermutedCase::order(rank));
  };
  check(RightCase::make<int*>("r", {5}), LeftCase::make<int*>("l", {5}), PermutedCase::make<int*>("p", {5}), 1);
  check(RightCase::make<int**>("r", {2, 3}), LeftCase::make<int**>("l", {2, 3}), PermutedCase::make<int**>("p", {2, 3}),
        2);
  check(RightCase::make<int***>("r", {2, 3, 4}), LeftCase::make<int***>("l", {2, 3, 4}),
        PermutedCase::make<int***>("p", {2, 3, 4}), 3);
  const Index e6{2, 3, 2, 3, 2, 2};
  check(RightCase::make<int******>("r", e6), LeftCase::make<int******>("l", e6), PermutedCase::make<int******>("p", e6),
        6);
  const Index e7{2, 3, 2, 3, 2, 2, 3};
  check(RightCase::make<int*******>("r", e7), LeftCase::make<int*******>("l", e7),
        PermutedCase::make<int*******>("p", e7), 7);
  const Index e8{2, 3, 2, 3, 2, 2, 3, 2};
  check(RightCase::make<int********>("r", e8), LeftCase::make<int********>("l", e8),
        PermutedCase::make<int********>("p", e8), 8);
  // Size-1 extents: the declared layout decides.
  EXPECT_EQ(khalo::stride_order(RightCase::make<int***>("r", {1, 1, 4})), (StrideOrder{0, 1, 2}));
  EXPECT_EQ(khalo::stride_order(LeftCase::make<int***>("l", {4, 1, 1})), (StrideOrder{2, 1, 0}));
}

template <class Src, class Dst>
void expect_same_values(const Src& a, const Dst& b) {
  EXPECT_EQ(khalo::test::to_logical(a), khalo::test::to_logical(b));
}

TEST(Layout, DeepCopyBetweenFormatsKeepsEveryValue) {
  const Index e{2, 3, 4, 5, 3};
  auto src = khalo::allocate<double*****>("src", e, MemoryFormat::channels_last_3d);
  khalo::test::fill(src, khalo::test::value_at);
  auto right = khalo::test::RightCase::make<double*****>("right", e);
  auto left = khalo::test::LeftCase::make<double*****>("left", e);
  auto perm = khalo::test::PermutedCase::make<double*****>("perm", e);
  auto back = khalo::allocate<double*****>("back", e, MemoryFormat::channels_last_3d);
  Kokkos::deep_copy(right, src);
  Kokkos::deep_copy(left, right);
  Kokkos::deep_copy(perm, left);
  Kokkos::deep_copy(back, perm);
  expect_same_values(src, right);
  expect_same_values(src, left);
  expect_same_values(src, perm);
  expect_same_values(src, back);
  std::vector<double> logical;
  khalo::test::for_each_index(e, [&](const Index& i) { logical.push_back(khalo::test::value_at(i)); });
  EXPECT_EQ(khalo::test::to_logical(back), logical);
}

// The seed problem: a buffer allocated like a channels-last tensor is
// channels-last, so a copy between the two leaves memory in the same order.
TEST(Layout, AllocateLikeChannelsLastDoesNotPermuteMemory) {
  for (const auto& shape : shapes5()) {
    auto x = khalo::allocate<float*****>("x", shape, MemoryFormat::channels_last_3d);
    khalo::test::fill(x, khalo::test::value_at);
    auto like = khalo::allocate_like(x, "like");
    EXPECT_EQ(strides(like), strides(x));
    EXPECT_EQ(khalo::memory_format(like), khalo::memory_format(x));
    Kokkos::deep_copy(like, x);
    auto hx = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
    auto hl = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), like);
    ASSERT_EQ(hx.span(), hl.span());
    EXPECT_EQ(std::memcmp(hx.data(), hl.data(), hx.span() * sizeof(float)), 0);
  }
  // A band of rows like x: only the H extent changes, the order stays.
  auto x = khalo::allocate<float*****>("x", {1, 16, 2, 8, 8}, MemoryFormat::channels_last_3d);
  auto rows = khalo::allocate_like(x, "rows", {1, 16, 2, 1, 8});
  EXPECT_EQ(khalo::memory_format(rows), MemoryFormat::channels_last_3d);
  EXPECT_EQ(strides(rows), reference_strides({1, 16, 2, 1, 8}, {0, 2, 3, 4, 1}));
}

TEST(Layout, BlockContiguity) {
  // Rows of an NDHWC tensor with N = D = 1 are contiguous; of NCDHW they are not (C > 1).
  auto cl = khalo::allocate<float*****>("cl", {1, 4, 1, 6, 5}, MemoryFormat::channels_last_3d);
  auto ct = khalo::test::RightCase::make<float*****>("ct", {1, 4, 1, 6, 5});
  EXPECT_TRUE(khalo::is_block_contiguous(cl, {0, 0, 0, 2, 0}, {1, 4, 1, 3, 5}));
  EXPECT_FALSE(khalo::is_block_contiguous(ct, {0, 0, 0, 2, 0}, {1, 4, 1, 3, 5}));
  EXPECT_TRUE(khalo::is_block_contiguous(ct, {0, 2, 0, 0, 0}, {1, 2, 1, 6, 5}));
  EXPECT_TRUE(khalo::is_block_contiguous(ct, {0, 1, 0, 3, 0}, {1, 1, 1, 2, 5}));
  EXPECT_FALSE(khalo::is_block_contiguous(ct, {0, 1, 0, 3, 1}, {1, 1, 1, 2, 4}));
  EXPECT_TRUE(khalo::is_block_contiguous(ct, {0, 1, 0, 3, 1}, {1, 1, 1, 1, 4}));
  EXPECT_TRUE(khalo::is_block_contiguous(ct, {0, 0, 0, 0, 0}, {0, 0, 0, 0, 0}));
  EXPECT_THROW(khalo::is_block_contiguous(ct, {0, 0, 0, 5, 0}, {1, 1, 1, 2, 5}), std::invalid_argument);
}

}  // namespace
