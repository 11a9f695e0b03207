// What an exchange costs: nothing on a side without a neighbour, no pack for
// a contiguous face, no allocation on a repeated shape, one message per
// neighbour for several fields; and split-phase equals blocking.
#include <halo_oracle.hpp>
#include <khalo/detail/halo/node_shared.hpp>
#include <khalo/detail/halo/store_choice.hpp>
#include <khalo/halo.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <cstdlib>
#include <cstring>

namespace {

using khalo::HaloSpec;
using khalo::MemoryFormat;
using khalo::test::Index;
using khalo::test::neighbours;
using khalo::test::world_rank;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;

std::int64_t max_over_ranks(std::int64_t v) {
  std::int64_t m = 0;
  MPI_Allreduce(&v, &m, 1, MPI_INT64_T, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

// The buffers a halo that packs allocates, none on a rank with no neighbour: staged (device
// memory, MPI not GPU-aware), a send and a receive buffer, each with a host twin; else, every
// rank of these tests being on one node, one node-shared send buffer (faces are unpacked from
// the neighbour's); without shared memory, a send and a receive buffer.
template <class Halo>
std::int64_t packing_buffers(const Halo& halo, int count, bool shared_memory = true) {
  if (count == 0) return 0;
  if (halo.staged()) return 4;
  return shared_memory ? 1 : 2;
}

TEST(HaloStats, BoundarySidesCostNothing) {
  const std::int64_t C = 3, D = 2, W = 5;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, D, 3 * world_size() + 1, W});
  const HaloSpec spec(1);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  const auto allocs = halo.stats().allocations;
  for (int i = 0; i < 5; ++i) halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "channels_last_3d"), 0);
  const auto& s = halo.stats();
  const int n = neighbours(dec, 3);
  const std::int64_t face = C * D * W * static_cast<std::int64_t>(sizeof(float));
  EXPECT_EQ(s.messages, 5 * n);
  EXPECT_EQ(s.bytes_sent, 5 * n * face);
  EXPECT_EQ(s.bytes_received, 5 * n * face);
  EXPECT_EQ(s.faces_packed, 5 * n);  // NDHWC with D = 2: an H face is strided
  EXPECT_EQ(s.bytes_packed, 5 * n * face);
  EXPECT_EQ(s.allocations, allocs);  // repeated exchanges allocate nothing
  EXPECT_EQ(allocs, packing_buffers(halo, n));
  EXPECT_EQ(s.shared_sends, halo.staged() ? 0 : 5 * n);
  EXPECT_EQ(s.shared_recvs, halo.staged() ? 0 : 5 * n);
  // An edge rank packs and sends half of what the busiest rank does.
  const std::int64_t busiest = max_over_ranks(s.bytes_sent);
  if (world_size() >= 3 && n == 1) EXPECT_EQ(2 * s.bytes_sent, busiest);
}

// Without shared memory (or between nodes), MPI carries a packed face: the same values, a
// receive buffer of its own. With it, several exchanges in a row (each packing over the last
// one's faces once the neighbour has read them) keep the values right.
TEST(HaloStats, SharedMemoryOffSendsPackedFacesThroughMPI) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, 3 * world_size() + 1, 5});
  const int n = neighbours(dec, 3);
  for (bool shared : {false, true}) {
    HaloSpec spec(1);
    spec.set_shared_memory(shared);
    auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
    khalo::Halo<Exec> halo(dec, spec, v);
    for (int i = 1; i <= 4; ++i) {  // the oracle's values times i: each exchange moves new values
      khalo::test::fill_owned(v, dec, spec, i);
      halo.exchange(Exec(), v);
      const std::string what = "exchange " + std::to_string(i) + (shared ? ", shared memory" : "");
      EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what, i), 0) << what;
    }
    const auto& s = halo.stats();
    EXPECT_EQ(s.faces_packed, 4 * n) << shared;
    EXPECT_EQ(s.shared_sends + s.shared_recvs, shared && !halo.staged() ? 8 * n : 0) << shared;
    EXPECT_EQ(s.allocations, packing_buffers(halo, n, shared)) << shared;
  }
}

// Which packs streamed past the cache (docs/halo.md §7): faces packed into a node-shared buffer,
// every one with KHALO_STREAM_PACKS=1, none with 0. Measured (unset): streaming for the first
// kFirstProbeAfter exchanges, then a probe of ordinary stores for kProbeLength.
TEST(HaloStats, CountsStreamedPacks) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, 3 * world_size() + 1, 5});
  const int n = neighbours(dec, 3);
  const HaloSpec spec(1);
  using khalo::detail::StoreChoice;
  const int first = StoreChoice::kFirstProbeAfter;
  const int exchanges = first + StoreChoice::kProbeLength;  // up to the end of the first probe
  for (const char* policy : {"1", "0", ""}) {
    if (*policy != '\0') setenv("KHALO_STREAM_PACKS", policy, 1);
    auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
    khalo::Halo<Exec> halo(dec, spec, v);
    unsetenv("KHALO_STREAM_PACKS");
    for (int i = 1; i <= exchanges; ++i) {
      khalo::test::fill_owned(v, dec, spec, i);
      halo.exchange(Exec(), v);
    }
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, policy, exchanges), 0) << policy;
    const auto& s = halo.stats();
    EXPECT_EQ(s.faces_packed, exchanges * n) << policy;  // not ASSERT: every rank goes on to the next collective
    const std::int64_t want = halo.staged() || *policy == '0' ? 0 : *policy == '1' ? exchanges * n : first * n;
    EXPECT_EQ(s.faces_streamed, want) << "KHALO_STREAM_PACKS=" << policy;
  }
}

// The sum of several plans' counters (a layer's, a decoder's) adds every one of them.
TEST(HaloStats, SumsEveryCounter) {
  constexpr std::size_t n = sizeof(khalo::HaloStats) / sizeof(std::int64_t);
  static_assert(n * sizeof(std::int64_t) == sizeof(khalo::HaloStats), "HaloStats holds 64-bit counters only");
  std::int64_t a[n], b[n], sum[n];
  for (std::size_t i = 0; i < n; ++i) {
    a[i] = static_cast<std::int64_t>(i + 1);
    b[i] = 100 * static_cast<std::int64_t>(i + 1);
  }
  khalo::HaloStats x, y;
  std::memcpy(&x, a, sizeof x);
  std::memcpy(&y, b, sizeof y);
  x += y;
  std::memcpy(sum, &x, sizeof x);
  for (std::size_t i = 0; i < n; ++i) EXPECT_EQ(sum[i], a[i] + b[i]) << "counter " << i;
}

// The pieces a message falls back from: a segment the node cannot give, or that cannot be
// found (another IPC namespace, a stale name), is nullptr, never an exception or a SIGBUS; a
// segment's name is gone once unlinked, its memory stays mapped.
TEST(NodeShared, SegmentsThatCannotBeHadAreNull) {
  using khalo::detail::SharedSegment;
  auto mine = SharedSegment::create(4096);
  ASSERT_NE(mine, nullptr);
  mine->data()[100] = 42;
  auto seen = SharedSegment::open(mine->name());
  ASSERT_NE(seen, nullptr);
  EXPECT_EQ(seen->data()[100], 42);
  auto other = mine->name();
  other.token ^= 1;
  EXPECT_EQ(SharedSegment::open(other), nullptr);  // a name nobody made
  other = mine->name();
  other.bytes += 4096;
  EXPECT_EQ(SharedSegment::open(other), nullptr);                   // the size announced is not the segment's
  EXPECT_EQ(SharedSegment::create(std::size_t{1} << 50), nullptr);  // 1 PiB: no /dev/shm holds it
  mine->unlink();
  EXPECT_EQ(SharedSegment::open(mine->name()), nullptr);
  mine->data()[101] = 7;
  EXPECT_EQ(seen->data()[101], 7);  // still one memory
}

TEST(HaloStats, ContiguousFacesAreNotPacked) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 4, 1, 2 * world_size() + 1, 6});
  const HaloSpec spec(2);
  // NDHWC with D = 1: each H face is one range of memory, sent and received in place.
  auto v = khalo::allocate<double*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "contiguous faces"), 0);
  if (halo.staged()) GTEST_SKIP() << khalo::test::kStagedSkip;
  EXPECT_EQ(halo.stats().faces_packed, 0);
  EXPECT_EQ(halo.stats().bytes_packed, 0);
  EXPECT_EQ(halo.stats().allocations, 0);
  EXPECT_EQ(halo.stats().bytes_sent, neighbours(dec, 3) * 2 * 4 * 6 * static_cast<std::int64_t>(sizeof(double)));
}

TEST(HaloStats, LargeRunsGoInPlaceOneMessageEach) {
  // NDHWC, D = 3: an H face is 3 runs of W * C floats = 64 KiB, far apart. Each goes
  // to MPI as its own message, straight from and into the View: no pack, no buffer. (Through
  // MPI: between nodes, or without node-shared memory. On one node such a face is read
  // directly, one message: test_halo_transport.)
  const std::int64_t C = 128, D = 3, W = 128;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, D, 2 * world_size() + 1, W});
  HaloSpec spec(1);
  spec.set_shared_memory(false);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "in-place runs"), 0);
  if (halo.staged()) GTEST_SKIP() << khalo::test::kStagedSkip;
  const int n = neighbours(dec, 3);
  EXPECT_EQ(halo.stats().faces_packed, 0);
  EXPECT_EQ(halo.stats().allocations, 0);
  EXPECT_EQ(halo.stats().messages, n * D);
  EXPECT_EQ(halo.stats().bytes_sent, n * D * W * C * static_cast<std::int64_t>(sizeof(float)));
}

// NDHWC with the W stride padded on odd ranks only: an even rank's H face is one run, an odd
// rank's is W runs. Through MPI (no node-shared memory), a side of one run goes in place (the
// message is one MPI message either way); the side that cuts it into runs the other does not
// falls back to one message, packed or by datatype (transport.hpp). On one node a direct read
// copies between the two cuts: no side packs. The data arrive right either way.
TEST(HaloStats, RanksThatCutAFaceDifferentlyFallBackOnlyOnTheCutSide) {
  const std::int64_t C = 16384, W = 2;  // a run of C floats is 64 KiB
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, 1, 2 * world_size() + 1, W});
  const Index e = khalo::test::local_extents(dec, HaloSpec(1));
  const std::int64_t pad = world_rank() % 2 == 1 ? 16 : 0;
  const auto H = static_cast<std::size_t>(e[3]);
  const auto sw = static_cast<std::size_t>(C + pad);
  Kokkos::LayoutStride layout(1, H * W * sw, static_cast<std::size_t>(C), 1, 1, H * W * sw, H, W * sw, W, sw);
  for (const bool shared : {false, true}) {
    HaloSpec spec(1);
    spec.set_shared_memory(shared);
    Kokkos::View<float*****, Kokkos::LayoutStride> v("v", layout);
    khalo::test::fill_owned(v, dec, spec);
    khalo::Halo<Exec> halo(dec, spec, v);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "padded on odd ranks"), 0) << shared;
    const int n = neighbours(dec, 3);
    const auto& st = halo.stats();
    EXPECT_EQ(st.messages, n) << shared;
    const bool direct = shared && !halo.staged();
    EXPECT_EQ(st.faces_packed + st.datatype_sends, (world_rank() % 2 == 1 && !direct) || halo.staged() ? n : 0)
        << shared;
    EXPECT_EQ(st.direct_recvs, direct ? n : 0) << shared;
  }
}

TEST(HaloStats, NewShapeBuildsOnceAndIsCached) {
  const HaloSpec spec(1);
  auto run = [&](std::int64_t h) {
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, h, 3});
    return khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
  };
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 4 * world_size(), 3});
  auto a = run(4 * world_size());
  khalo::Halo<Exec> halo(dec, spec, a);
  halo.exchange(Exec(), a);
  const auto first = halo.stats().allocations;
  // Same shape, other View: no allocation.
  auto b = run(4 * world_size());
  halo.exchange(Exec(), b);
  EXPECT_EQ(halo.stats().allocations, first);
}

TEST(HaloStats, SeveralFieldsTravelInOneMessage) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, 2 * world_size() + 1, 4});
  const HaloSpec spec(1, khalo::Boundary::replicate);
  const Index e = khalo::test::local_extents(dec, spec);
  auto f = khalo::allocate<float*****>("f", e, MemoryFormat::channels_last_3d);
  auto d = khalo::test::RightCase::make<double*****>("d", e);
  auto i = khalo::test::LeftCase::make<int*****>("i", e);
  khalo::test::fill_owned(f, dec, spec);
  khalo::test::fill_owned(d, dec, spec);
  khalo::test::fill_owned(i, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, f, d, i);
  halo.exchange(Exec(), f, d, i);
  EXPECT_EQ(khalo::test::count_wrong(f, dec, spec, "float field"), 0);
  EXPECT_EQ(khalo::test::count_wrong(d, dec, spec, "double field"), 0);
  // The int field holds the same values truncated; the oracle works in its type too.
  EXPECT_EQ(khalo::test::count_wrong(i, dec, spec, "int field"), 0);
  EXPECT_EQ(halo.stats().messages, neighbours(dec, 3));
}

// out = in(h-1) + in(h) + in(h+1) on rows [h0, h1) of a (1, 2, 2, rows, 5) band.
// A free function: CUDA forbids device lambdas in gtest's private TestBody.
template <class View>
void stencil(View in, View out, int h0, int h1) {
  Kokkos::parallel_for(
      "stencil", Kokkos::MDRangePolicy<Exec, Kokkos::Rank<3>>({0, h0, 0}, {2, h1, 5}),
      KOKKOS_LAMBDA(int c, int h, int x) {
        for (int t = 0; t < 2; ++t)
          out(0, c, t, h, x) = in(0, c, t, h - 1, x) + in(0, c, t, h, x) + in(0, c, t, h + 1, x);
      });
}

// A 3-point stencil along H: the rows that need no ghost are computed while
// messages fly, the edge rows after wait(); equal to the blocking result.
TEST(HaloStats, SplitPhaseEqualsBlocking) {
  const std::int64_t H = 3 * world_size() + 2;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, H, 5});
  const HaloSpec spec(1);
  const Index e = khalo::test::local_extents(dec, spec);
  auto v = khalo::allocate<float*****>("v", e, MemoryFormat::channels_last_3d);
  auto w = khalo::allocate_like(v, "w");
  auto out_split = khalo::allocate_like(v, "out_split");
  auto out_block = khalo::allocate_like(v, "out_block");
  khalo::test::fill_owned(v, dec, spec);
  Kokkos::deep_copy(w, v);
  const int rows = static_cast<int>(e[3]) - 2;  // owned rows live at 1..rows
  khalo::Halo<Exec> halo(dec, spec, v);
  {
    auto pending = halo.start(Exec(), v);
    stencil(v, out_split, 2, rows);  // interior rows need no ghost
    pending.wait();
    stencil(v, out_split, 1, 2);
    stencil(v, out_split, rows, rows + 1);
  }
  halo.exchange(Exec(), w);
  stencil(w, out_block, 1, rows + 1);
  Kokkos::fence();
  auto a = khalo::test::to_logical(out_split);
  auto b = khalo::test::to_logical(out_block);
  EXPECT_EQ(a, b);
  // And equal to the global stencil with zero padding.
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), out_split);
  int wrong = 0;
  for (int c = 0; c < 2; ++c)
    for (int t = 0; t < 2; ++t)
      for (int r = 1; r <= rows; ++r)
        for (int x = 0; x < 5; ++x) {
          const std::int64_t g = dec.to_global(3, r - 1);
          // The same float additions in the same order as the kernel.
          float in[3];
          for (std::int64_t k = 0; k < 3; ++k) {
            const std::int64_t gk = g - 1 + k;
            in[k] = gk >= 0 && gk < H ? static_cast<float>(khalo::test::value_at({0, c, t, gk, x})) : 0.0f;
          }
          wrong += in[0] + in[1] + in[2] != h(0, c, t, r, x);
        }
  EXPECT_EQ(wrong, 0);
}

TEST(HaloStats, HandleIsMoveOnlyAndOneAtATime) {
  static_assert(!std::is_copy_constructible_v<khalo::HaloExchange<Exec, Exec::memory_space>>);
  static_assert(std::is_move_constructible_v<khalo::HaloExchange<Exec, Exec::memory_space>>);
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size(), 3});
  const HaloSpec spec(1);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  auto first = halo.start(Exec(), v);
  EXPECT_THROW((void)halo.start(Exec(), v), std::logic_error);
  auto moved = std::move(first);
  moved.wait();
  EXPECT_THROW(moved.wait(), std::logic_error);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "after move"), 0);
  { auto dropped = halo.start(Exec(), v); }  // the destructor completes it
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "after destructor"), 0);
}

// A periodic dimension that one rank spans wraps in memory: the right values, and no
// message, byte or buffer for it (rows split over the ranks as usual, W periodic on one).
// Its phase runs first, so a row face spans W's ghost columns (phase_order).
TEST(HaloStats, PeriodicOnOneRankCopiesWithoutMPI) {
  const std::int64_t C = 3, D = 2, W = 7;
  const khalo::ProcessGrid grid(MPI_COMM_WORLD, {world_size(), 1});
  const khalo::Decomposition dec(grid, {1, C, D, 3 * world_size() + 1, W}, {3, 4});
  HaloSpec spec(1);
  spec.set(4, 2, 1, khalo::Boundary::periodic);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  for (int i = 0; i < 3; ++i) halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "channels_last_3d"), 0);
  const int n = neighbours(dec, 3);
  const std::int64_t row_face = C * D * (W + 2 + 1) * static_cast<std::int64_t>(sizeof(float));
  const auto& s = halo.stats();
  EXPECT_EQ(s.messages, 3 * n);
  EXPECT_EQ(s.bytes_sent, 3 * n * row_face);
  EXPECT_EQ(s.allocations, packing_buffers(halo, n));
}

// zero_fill_once: each View's open sides are zeroed by its first exchange only; every
// exchange zeroes them without it. Neighbours' layers arrive every time either way.
TEST(HaloStats, ZeroFillOnceZeroesEachViewOnce) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size() + 1, 5});
  const int open = 2 - neighbours(dec, 3);
  for (bool once : {false, true}) {
    HaloSpec spec(1);
    spec.set_zero_fill_once(once);
    auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
    auto w = khalo::allocate<float*****>("w", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
    khalo::test::fill_owned(v, dec, spec);
    khalo::test::fill_owned(w, dec, spec);
    khalo::Halo<Exec> halo(dec, spec, v);
    for (int i = 0; i < 3; ++i) halo.exchange(Exec(), v);
    EXPECT_EQ(halo.stats().fills, (once ? 1 : 3) * open);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "v"), 0);
    halo.exchange(Exec(), w);  // another View: zeroed on its first exchange
    EXPECT_EQ(halo.stats().fills, (once ? 2 : 4) * open);
    EXPECT_EQ(khalo::test::count_wrong(w, dec, spec, "w"), 0);
    // A caller that writes an open ghost layer keeps what it wrote only with the option.
    const auto top = dec.neighbor(3, khalo::Side::low) == MPI_PROC_NULL;
    const std::int64_t row = top ? 0 : static_cast<std::int64_t>(v.extent(3)) - 1;
    if (open > 0) {
      Kokkos::deep_copy(Kokkos::subview(v, Kokkos::ALL, Kokkos::ALL, Kokkos::ALL, row, Kokkos::ALL), 7.0f);
    }
    halo.exchange(Exec(), v);  // on every rank: it is collective
    if (open > 0) {
      const auto host = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), v);
      EXPECT_EQ(host(0, 1, 1, row, 2), once ? 7.0f : 0.0f);
    }
  }
}

}  // namespace
