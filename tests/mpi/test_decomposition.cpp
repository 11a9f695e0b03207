#include <khalo/decomposition.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <numeric>
#include <vector>

namespace {

using khalo::Decomposition;
using khalo::ProcessGrid;
using khalo::Range;
using khalo::Side;
using khalo::test::world_rank;
using khalo::test::world_size;

// Every rank's values of f(), gathered on every rank.
std::vector<int> all_ranks(int mine) {
  std::vector<int> all(static_cast<std::size_t>(world_size()));
  MPI_Allgather(&mine, 1, MPI_INT, all.data(), 1, MPI_INT, MPI_COMM_WORLD);
  return all;
}

template <class F>
void expect_throw_named(F f, const std::string& name) {
  try {
    f();
    ADD_FAILURE() << "expected std::invalid_argument from " << name;
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
  }
}

TEST(Split, BalancedAndCoveringOnce) {
  for (std::int64_t n = 0; n <= 11; ++n) {
    for (int p = 1; p <= 5; ++p) {
      std::int64_t next = 0;
      for (int i = 0; i < p; ++i) {
        const Range r = khalo::balanced_split(n, p, i);
        EXPECT_EQ(r.begin, next);
        EXPECT_EQ(r.size(), n / p + (i < n % p ? 1 : 0)) << "n=" << n << " p=" << p << " i=" << i;
        next = r.end;
      }
      EXPECT_EQ(next, n);
    }
  }
  EXPECT_THROW(khalo::balanced_split(4, 0, 0), std::invalid_argument);
  EXPECT_THROW(khalo::balanced_split(4, 2, 2), std::invalid_argument);
}

TEST(ProcessGrid, ChosenDimsHoldEveryRank) {
  for (int nd = 1; nd <= 3; ++nd) {
    auto g = ProcessGrid::balanced(MPI_COMM_WORLD, nd);
    EXPECT_EQ(g.ndims(), nd);
    EXPECT_EQ(g.size(), world_size());
    EXPECT_EQ(g.rank(), world_rank());  // no reordering
    EXPECT_EQ(g.rank_at(g.coords()), g.rank());
  }
}

TEST(ProcessGrid, NeighboursAgreePairwise) {
  for (bool periodic : {false, true}) {
    for (int nd = 1; nd <= 2; ++nd) {
      ProcessGrid g(MPI_COMM_WORLD, std::vector<int>(static_cast<std::size_t>(nd), 0),
                    std::vector<bool>(static_cast<std::size_t>(nd), periodic));
      for (int d = 0; d < nd; ++d) {
        const auto lows = all_ranks(g.neighbor(d, Side::low));
        const auto highs = all_ranks(g.neighbor(d, Side::high));
        for (int r = 0; r < world_size(); ++r) {
          const int hi = highs[static_cast<std::size_t>(r)];
          if (hi != MPI_PROC_NULL) EXPECT_EQ(lows[static_cast<std::size_t>(hi)], r);
          const int lo = lows[static_cast<std::size_t>(r)];
          if (lo != MPI_PROC_NULL) EXPECT_EQ(highs[static_cast<std::size_t>(lo)], r);
        }
        const int c = g.coords()[static_cast<std::size_t>(d)];
        const int n = g.dims()[static_cast<std::size_t>(d)];
        EXPECT_EQ(g.neighbor(d, Side::low) == MPI_PROC_NULL, !periodic && c == 0);
        EXPECT_EQ(g.neighbor(d, Side::high) == MPI_PROC_NULL, !periodic && c == n - 1);
        // Forcing the wrap gives the far side even on a non-periodic grid.
        EXPECT_NE(g.neighbor(d, Side::low, true), MPI_PROC_NULL);
      }
    }
  }
}

TEST(ProcessGrid, BadDimsThrowOnEveryRank) {
  const int p = world_size();
  expect_throw_named([&] { ProcessGrid(MPI_COMM_WORLD, {p + 1}); }, "khalo::ProcessGrid");
  expect_throw_named([&] { ProcessGrid(MPI_COMM_WORLD, {p, 2}); }, "khalo::ProcessGrid");
  expect_throw_named([&] { ProcessGrid(MPI_COMM_WORLD, {p}, {true, false}); }, "khalo::ProcessGrid");
  expect_throw_named([&] { ProcessGrid(MPI_COMM_WORLD, std::vector<int>{}); }, "khalo::ProcessGrid");
  // Ranks that disagree on the grid all throw, none waits.
  if (world_size() > 1) expect_throw_named([&] { ProcessGrid(MPI_COMM_WORLD, {0}, {world_rank() == 0}); }, "disagree");
}

TEST(Decomposition, OwnedRangesCoverEveryExtentOnce) {
  const int p = world_size();
  for (std::int64_t n :
       {std::int64_t{1}, std::int64_t{p - 1}, std::int64_t{p}, std::int64_t{p + 1}, std::int64_t{3 * p + 2}}) {
    if (n < 1) continue;
    Decomposition dec = khalo::row_decomposition(MPI_COMM_WORLD, {2, 3, n, 5});
    EXPECT_EQ(dec.split_dims(), std::vector<int>{2});
    const Range mine = dec.owned(2);
    const auto begins = all_ranks(static_cast<int>(mine.begin));
    const auto ends = all_ranks(static_cast<int>(mine.end));
    std::vector<int> hits(static_cast<std::size_t>(n), 0);
    for (int r = 0; r < p; ++r) {
      for (int i = begins[static_cast<std::size_t>(r)]; i < ends[static_cast<std::size_t>(r)]; ++i) {
        ++hits[static_cast<std::size_t>(i)];
      }
      EXPECT_LE(ends[static_cast<std::size_t>(r)] - begins[static_cast<std::size_t>(r)], n / p + 1);
    }
    EXPECT_EQ(hits, std::vector<int>(static_cast<std::size_t>(n), 1)) << "n=" << n;
    EXPECT_EQ(dec.owned(0), (Range{0, 2}));
    EXPECT_EQ(dec.local_extents()[2], mine.size());
    EXPECT_EQ(dec.to_global(2, dec.to_local(2, mine.begin + 0)), mine.begin);
  }
}

TEST(Decomposition, ThreeDimensionalGrid) {
  auto grid = ProcessGrid::balanced(MPI_COMM_WORLD, 3);
  Decomposition dec(grid, {7, 5, 6}, {0, 1, 2});
  std::int64_t mine = 1;
  for (int d = 0; d < 3; ++d) mine *= dec.owned(d).size();
  std::int64_t total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
  EXPECT_EQ(total, 7 * 5 * 6);
  for (int d = 0; d < 3; ++d) {
    const int g = dec.grid_dim_of(d);
    EXPECT_EQ(dec.neighbor(d, Side::high), grid.neighbor(g, Side::high));
  }
}

TEST(Decomposition, BadInputThrowsOnEveryRank) {
  auto grid = ProcessGrid::balanced(MPI_COMM_WORLD, 1);
  expect_throw_named([&] { Decomposition(grid, {4, 0, 3}, {1}); }, "khalo::Decomposition");
  expect_throw_named([&] { Decomposition(grid, {4, 5, 3}, {3}); }, "khalo::Decomposition");
  expect_throw_named([&] { Decomposition(grid, {4, 5, 3}, {0, 1}); }, "khalo::Decomposition");
  if (world_size() > 1) expect_throw_named([&] { Decomposition(grid, {4, 5 + world_rank(), 3}, {1}); }, "disagree");
  expect_throw_named([&] { khalo::row_decomposition(MPI_COMM_WORLD, {4}); }, "khalo::row_decomposition");
  // Only rank 0 errs: all still throw, with rank 0's message.
  expect_throw_named([&] { Decomposition(grid, {4, world_rank() == 0 ? -1 : 5, 3}, {0}); }, "khalo::Decomposition");
}

}  // namespace
