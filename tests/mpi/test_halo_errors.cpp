// Bad plans end every rank with the same clear std::invalid_argument at plan
// time; nothing hangs (each ctest has a timeout).
#include <halo_oracle.hpp>
#include <khalo/halo.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

namespace {

using khalo::Boundary;
using khalo::HaloSpec;
using khalo::test::world_rank;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;
using Right5 = Kokkos::View<float*****, Kokkos::LayoutRight>;

// The message every rank got, gathered: all must be equal and contain `what`.
template <class F>
void expect_same_error_everywhere(F f, const std::string& what) {
  std::string message;
  try {
    f();
  } catch (const std::invalid_argument& e) {
    message = e.what();
  }
  EXPECT_NE(message.find(what), std::string::npos) << "rank " << world_rank() << " got: '" << message << "'";
  EXPECT_NE(message.find("khalo::Halo"), std::string::npos) << message;
  int len = static_cast<int>(message.size());
  int min_len = 0;
  int max_len = 0;
  MPI_Allreduce(&len, &min_len, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&len, &max_len, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(min_len, max_len) << "ranks got different messages; mine: " << message;
}

Right5 band(const khalo::Decomposition& dec, int low, int high, std::int64_t extra = 0) {
  auto e = dec.local_extents();
  e[3] += low + high + extra;
  return khalo::test::RightCase::make<float*****>("band", e);
}

TEST(HaloErrors, NeighbourThinnerThanTheWidth) {
  const int p = world_size();
  // One layer per rank, two ghost layers: every inner side is too thin.
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, p, 3});
  auto v = band(dec, 2, 2);
  if (p > 1) {
    expect_same_error_everywhere([&] { khalo::Halo<Exec> h(dec, HaloSpec(2), v); }, "fewer than");
  }
  // Reflect needs one layer more than the width, even on a single rank.
  auto w = band(dec, 1, 1);
  expect_same_error_everywhere([&] { khalo::Halo<Exec> h(dec, HaloSpec(1, Boundary::reflect), w); }, "fewer than");
}

TEST(HaloErrors, WrongExtentOnOneRank) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  auto v = band(dec, 1, 1, world_rank() == world_size() - 1 ? 1 : 0);
  expect_same_error_everywhere([&] { khalo::Halo<Exec> h(dec, HaloSpec(1), v); }, "expected");
}

TEST(HaloErrors, RanksDisagreeOnWidths) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  const int w = world_rank() == 0 ? 2 : 1;
  auto v = band(dec, w, w);
  expect_same_error_everywhere([&] { khalo::Halo<Exec> h(dec, HaloSpec(w), v); }, "disagree on the halo widths");
}

TEST(HaloErrors, RanksDisagreeOnTypes) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  auto e = dec.local_extents();
  e[3] += 2;
  expect_same_error_everywhere(
      [&] {
        if (world_rank() == 0) {
          auto v = khalo::test::RightCase::make<double*****>("d", e);
          khalo::Halo<Exec> h(dec, HaloSpec(1), v);
        } else {
          auto v = khalo::test::RightCase::make<float*****>("f", e);
          khalo::Halo<Exec> h(dec, HaloSpec(1), v);
        }
      },
      "element type");
}

TEST(HaloErrors, RanksDisagreeOnLayouts) {
  if (world_size() < 2) GTEST_SKIP() << "needs two ranks";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  auto e = dec.local_extents();
  e[3] += 2;
  expect_same_error_everywhere(
      [&] {
        auto v = world_rank() == 0 ? khalo::allocate<float*****>("cl", e, khalo::MemoryFormat::channels_last_3d)
                                   : khalo::allocate<float*****>("ct", e, khalo::MemoryFormat::contiguous);
        khalo::Halo<Exec> h(dec, HaloSpec(1), v);
      },
      "memory layout");
}

TEST(HaloErrors, RankOfViewAndDecompositionDiffer) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {2, 4 * world_size(), 3});
  auto v = khalo::test::RightCase::make<float**>("v", {2, 3});
  expect_same_error_everywhere([&] { khalo::Halo<Exec> h(dec, HaloSpec(1), v); }, "rank");
}

TEST(HaloErrors, WrongNumberOfFieldsAtExchange) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  auto v = band(dec, 1, 1);
  khalo::Halo<Exec> h(dec, HaloSpec(1), v);
  EXPECT_THROW(h.exchange(Exec(), v, v), std::invalid_argument);
  h.exchange(Exec(), v);  // the plan still works
}

// A message beyond MPI's int count is found while the plan is built, by the
// ranks that would send or receive it, and reported on every rank alike: the
// others must not go on into the handshake and wait there.
TEST(HaloErrors, MessageBeyondMpiIntCountOnSomeRanks) {
  if (world_size() != 4) GTEST_SKIP() << "needs a 2 x 2 grid";
  // Dimension 0 is exchanged; its face spans the owned layers of dimension 1, which are 2 in
  // grid column 0 and 1 in column 1. One layer of the face is just below 2^31 bytes, so only
  // column 0's messages exceed INT_MAX.
  constexpr std::int64_t kRow = (std::int64_t{1} << 29) - 16;  // floats
  const khalo::Decomposition dec(khalo::ProcessGrid(MPI_COMM_WORLD, {2, 2}), {4, 3, kRow}, {0, 1});
  HaloSpec spec(1);
  spec.set(1, 0, 0);
  const auto e = khalo::test::local_extents(dec, spec);
  // Planning never reads the View, so one float stands in for its memory.
  float stand_in = 0.0f;
  Kokkos::View<float***, Kokkos::LayoutRight, Kokkos::HostSpace, Kokkos::MemoryTraits<Kokkos::Unmanaged>> v(
      &stand_in, static_cast<std::size_t>(e[0]), static_cast<std::size_t>(e[1]), static_cast<std::size_t>(e[2]));
  expect_same_error_everywhere(
      [&] { khalo::Halo<Kokkos::DefaultHostExecutionSpace, Kokkos::HostSpace> h(dec, spec, v); },
      "exceeds MPI's int count");
}

}  // namespace
