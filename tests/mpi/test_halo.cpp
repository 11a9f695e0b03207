#include <halo_oracle.hpp>
#include <khalo/halo.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using khalo::Boundary;
using khalo::Decomposition;
using khalo::HaloSpec;
using khalo::ProcessGrid;
using khalo::test::Index;
using khalo::test::ptr_t;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;

template <class P>
class HaloLayouts : public ::testing::Test {};
TYPED_TEST_SUITE(HaloLayouts, khalo::test::LayoutsAndTypes, khalo::test::ParamNames);

struct Widths {
  int low;
  int high;
};

std::string describe(const Index& global, const std::vector<int>& split, Widths w, Boundary b, bool periodic) {
  std::string s = "extents ";
  for (auto e : global) s += std::to_string(e) + " ";
  s += "split ";
  for (auto d : split) s += std::to_string(d) + " ";
  return s + "widths " + std::to_string(w.low) + "/" + std::to_string(w.high) + " boundary " + khalo::to_string(b) +
         (periodic ? " periodic grid" : "");
}

// Runs one configuration; returns false when the plan (rightly) refused it.
template <class Case, class T, int R>
bool run_case(const Index& global, const std::vector<int>& split, Widths w, Boundary b, bool periodic) {
  const auto grid = ProcessGrid::balanced(MPI_COMM_WORLD, static_cast<int>(split.size()), periodic);
  const Decomposition dec(grid, global, split);
  HaloSpec spec;
  for (int d : split) spec.set(d, w.low, w.high, b);
  auto v = Case::template make<ptr_t<T, R>>("v", khalo::test::local_extents(dec, spec));
  khalo::test::fill_owned(v, dec, spec);
  const std::string what = describe(global, split, w, b, periodic);
  std::int64_t min_band = global[static_cast<std::size_t>(split[0])];
  for (int d : split) {
    for (int c = 0; c < grid.dims()[static_cast<std::size_t>(dec.grid_dim_of(d))]; ++c) {
      min_band = std::min(min_band, dec.owned_at(d, c).size());
    }
  }
  try {
    khalo::Halo<Exec> halo(dec, spec, v);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what), 0) << what;
    // Again, after scrambling the ghosts: same values, no new buffers.
    const auto allocations = halo.stats().allocations;
    khalo::test::fill_owned(v, dec, spec);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what + " (second exchange)"), 0) << what;
    EXPECT_EQ(halo.stats().allocations, allocations) << what;
    return true;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("fewer than"), std::string::npos) << what << ": " << e.what();
    EXPECT_LE(min_band, std::max(w.low, w.high)) << what << ": refused although every band is thick enough";
    return false;
  }
}

template <class Case, class T, int R>
void run_rank(const std::vector<std::vector<int>>& splits) {
  const int p = world_size();
  int ran = 0;
  int refused = 0;
  for (const auto& split : splits) {
    for (Widths w : {Widths{1, 1}, Widths{2, 1}, Widths{0, 2}, Widths{3, 3}}) {
      for (Boundary b : {Boundary::zero, Boundary::replicate, Boundary::reflect, Boundary::periodic, Boundary::none}) {
        for (bool periodic_grid : {false, true}) {
          // Uneven bands, and bands one layer thick.
          for (std::int64_t n : {std::int64_t{2 * p + 3}, std::int64_t{p}}) {
            Index global(static_cast<std::size_t>(R));
            for (int d = 0; d < R; ++d) global[static_cast<std::size_t>(d)] = 2 + (d % 2);
            for (int d : split) global[static_cast<std::size_t>(d)] = n + d % 2;
            if (run_case<Case, T, R>(global, split, w, b, periodic_grid)) {
              ++ran;
            } else {
              ++refused;
            }
          }
        }
      }
    }
  }
  EXPECT_GT(ran, refused);
}

// A band one layer thick, with no ghost layers in that dimension, has extent 1
// there: its stride says nothing, so it may infer another stride order than a
// thicker band of the same layout. The plan must not call that a disagreement.
template <class Case, class T>
void run_thin_band_without_ghosts() {
  const int p = world_size();
  const ProcessGrid grid(MPI_COMM_WORLD, {p, 1});
  const Decomposition dec(grid, {p + 1, 4, 3}, {0, 1});  // rank 0 owns 2 layers of dimension 0, the others 1
  HaloSpec spec(1);
  spec.set(0, 0, 0);
  auto v = Case::template make<T***>("v", khalo::test::local_extents(dec, spec));
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "thin band"), 0);
}

TYPED_TEST(HaloLayouts, ThinBandWithoutGhosts) {
  run_thin_band_without_ghosts<typename TypeParam::layout_case, typename TypeParam::value_type>();
}

TEST(HaloPadded, ThinBandWithoutGhosts) {
  run_thin_band_without_ghosts<khalo::test::PaddedCase, float>();
  run_thin_band_without_ghosts<khalo::test::PaddedCase, double>();
}

// The exchange a Halo started keeps what it needs: the Halo may be moved, or
// destroyed, before wait().
TEST(HaloLifetime, MovedOrDestroyedWhileInFlight) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, 2 * world_size() + 1, 5});
  const HaloSpec spec(1);
  auto v = khalo::test::ChannelsLastCase::make<float*****>("v", khalo::test::local_extents(dec, spec));
  khalo::test::fill_owned(v, dec, spec);
  auto first = std::make_unique<khalo::Halo<Exec>>(dec, spec, v);
  auto in_flight = first->start(Exec(), v);
  khalo::Halo<Exec> moved(std::move(*first));
  EXPECT_THROW(first->stats(), std::logic_error);
  first.reset();
  in_flight.wait();
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "moved while in flight"), 0);

  khalo::test::fill_owned(v, dec, spec);
  auto again = moved.start(Exec(), v);
  EXPECT_THROW({ auto second = moved.start(Exec(), v); }, std::logic_error);  // one exchange at a time
  { khalo::Halo<Exec> gone(std::move(moved)); }
  again.wait();
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "destroyed while in flight"), 0);
}

// A periodic dimension that one rank spans has its phase first (phase_order), so the faces
// that go through MPI span its ghost layers. Edges and corners must still hold what the
// dimension-ordered oracle says, beside every boundary policy of the split dimension, with the
// one-rank dimension listed before or after it; a one-rank dimension with any other policy
// keeps its place (a zero fill first would differ from the oracle beside Boundary::none).
TEST(HaloMixed, OneRankDimensionBesideEveryBoundary) {
  const int p = world_size();
  const std::vector<Boundary> all = {Boundary::zero, Boundary::replicate, Boundary::reflect, Boundary::periodic,
                                     Boundary::none};
  for (Boundary split_b : all) {
    for (Boundary one_b : all) {
      for (bool one_first : {false, true}) {
        // Array dimension 0 split over the p ranks, dimension 1 over one.
        const ProcessGrid grid(MPI_COMM_WORLD, one_first ? std::vector<int>{1, p} : std::vector<int>{p, 1});
        const Decomposition dec(grid, {2 * p + 1, 4, 3}, one_first ? std::vector<int>{1, 0} : std::vector<int>{0, 1});
        HaloSpec spec;
        spec.set(0, 1, 1, split_b);
        spec.set(1, 2, 1, one_b);
        auto v = khalo::test::RightCase::make<float***>("v", khalo::test::local_extents(dec, spec));
        khalo::test::fill_owned(v, dec, spec);
        khalo::Halo<Exec> halo(dec, spec, v);
        halo.exchange(Exec(), v);
        const std::string what = std::string("split ") + khalo::to_string(split_b) + ", one rank " +
                                 khalo::to_string(one_b) + (one_first ? ", one-rank dimension first" : "");
        EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what), 0) << what;
      }
    }
  }
}

TYPED_TEST(HaloLayouts, Rank2) {
  run_rank<typename TypeParam::layout_case, typename TypeParam::value_type, 2>({{0}, {1}, {0, 1}});
}
TYPED_TEST(HaloLayouts, Rank3) {
  run_rank<typename TypeParam::layout_case, typename TypeParam::value_type, 3>({{1}, {2, 1}, {0, 1, 2}});
}
TYPED_TEST(HaloLayouts, Rank4) {
  run_rank<typename TypeParam::layout_case, typename TypeParam::value_type, 4>({{2}, {2, 3}});
}
TYPED_TEST(HaloLayouts, Rank5) {
  run_rank<typename TypeParam::layout_case, typename TypeParam::value_type, 5>({{3}, {2, 3, 4}});
}

}  // namespace
