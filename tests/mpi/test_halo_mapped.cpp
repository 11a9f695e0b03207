// Node-shared fields (khalo::NodeSharedArena, detail/halo/mapped_reads.hpp): a face that would go
// through a node-shared buffer is copied by the receiver straight out of the sender's View when
// that View lies in an arena. The same ghosts as a pack and an unpack, exchange after exchange,
// whichever Views each rank passes; no pack where the sender's Views lie in an arena.
#include <halo_oracle.hpp>
#include <khalo/detail/halo/mapped_reads.hpp>
#include <khalo/halo.hpp>
#include <khalo/node_shared_arena.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace {

using khalo::HaloSpec;
using khalo::MemoryFormat;
using khalo::NodeSharedArena;
using khalo::test::Index;
using khalo::test::neighbours;
using khalo::test::world_rank;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;

// An arena's Views are host memory: an execution space that cannot touch it has nothing to test.
constexpr bool kHostExec = std::is_same_v<Exec::memory_space, Kokkos::HostSpace>;

std::size_t bytes_of(const Index& e, std::size_t elem) {
  std::size_t n = elem;
  for (auto x : e) n *= static_cast<std::size_t>(x);
  return n;
}

// A contiguous (NCDHW) row split: each H face is C * D runs of W floats, too short to go in
// place or be read by the kernel, so it goes through the node-shared buffer, or, with the
// sender's View in an arena, is copied from that View. Two fields of two types travel in one
// message (a segment each). Values change every exchange; nothing is packed.
TEST(NodeSharedFields, TheReceiverCopiesFromTheSendersView) {
  if (!kHostExec) GTEST_SKIP() << "arena Views are host memory";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 6, 3, 2 * world_size() + 1, 20});
  const HaloSpec spec(1);
  const Index e = khalo::test::local_extents(dec, spec);
  NodeSharedArena arena(bytes_of(e, sizeof(float)) + bytes_of(e, sizeof(double)) + 128);
  auto f = arena.view<float*****>(e, MemoryFormat::contiguous);
  auto d = arena.view<double*****>(e, MemoryFormat::channels_last_3d);
  khalo::Halo<Exec> halo(dec, spec, f, d);
  for (int i = 1; i <= 3; ++i) {
    khalo::test::fill_owned(f, dec, spec, 2 * i);
    khalo::test::fill_owned(d, dec, spec, 2 * i + 1);
    halo.exchange(Exec(), f, d);
    EXPECT_EQ(khalo::test::count_wrong(f, dec, spec, "float, exchange " + std::to_string(i), 2 * i), 0);
    EXPECT_EQ(khalo::test::count_wrong(d, dec, spec, "double, exchange " + std::to_string(i), 2 * i + 1), 0);
  }
  const int n = neighbours(dec, 3);
  const auto& s = halo.stats();
  EXPECT_EQ(s.mapped_sends, 3 * n);
  EXPECT_EQ(s.mapped_recvs, 3 * n);
  EXPECT_EQ(s.messages, 3 * n);
  EXPECT_EQ(s.faces_packed, 0);
  EXPECT_EQ(s.shared_sends + s.shared_recvs, 0);
}

// The sender decides every exchange: Views in an arena on some ranks and exchanges, ordinary
// ones on others (even ranks start in the arena, odd ones outside, and each swaps every
// exchange), split over two dimensions so that the second phase sends ghosts the first received,
// unevenly, so that neighbours' strides differ. Every exchange fills every ghost.
TEST(NodeSharedFields, EachSenderChoosesEveryExchange) {
  if (!kHostExec) GTEST_SKIP() << "arena Views are host memory";
  const auto grid = khalo::ProcessGrid::balanced(MPI_COMM_WORLD, 2);
  const khalo::Decomposition dec(grid, {1, 5, 2, 2 * world_size() + 3, world_size() + 6}, {3, 4});
  HaloSpec spec;
  spec.set(3, 1, 2).set(4, 2, 1);
  const Index e = khalo::test::local_extents(dec, spec);
  NodeSharedArena arena(bytes_of(e, sizeof(float)));
  auto in_arena = arena.view<float*****>(e, MemoryFormat::contiguous);
  auto outside = khalo::allocate<float*****>("outside", e, MemoryFormat::contiguous);
  khalo::Halo<Exec> halo(dec, spec, in_arena);
  int mapped = 0;
  for (int i = 1; i <= 4; ++i) {
    const bool arena_now = (world_rank() + i) % 2 == 1;
    auto v = arena_now ? in_arena : outside;
    khalo::test::fill_owned(v, dec, spec, i);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "exchange " + std::to_string(i), i), 0) << arena_now;
    mapped += arena_now;
  }
  const auto& s = halo.stats();
  // Every face toward a neighbour on this node is shared: mapped when this rank's View was in
  // the arena, packed otherwise.
  const std::int64_t faces = s.mapped_sends + s.shared_sends;
  EXPECT_EQ(faces, 4 * (neighbours(dec, 3) + neighbours(dec, 4)));
  EXPECT_EQ(s.mapped_sends, faces / 4 * mapped);
  EXPECT_EQ(s.faces_packed, s.shared_sends);
}

// The neighbours' node-shared segments this process has mapped read-only: the lines of
// /proc/self/maps for khalo's memfd without write permission (its own arenas are read-write).
int peer_segments_mapped() {
  std::ifstream maps("/proc/self/maps");
  int n = 0;
  for (std::string line; std::getline(maps, line);) {
    if (line.find("/memfd:khalo-fields") != std::string::npos && line.find(" r--s ") != std::string::npos) ++n;
  }
  return n;
}

// A sender that moves its field to another arena and destroys the first: its neighbours unmap
// the old segment after kPeerSegmentIdleExchanges exchanges that do not read it, so its memory
// is not held on them for the rest of the job. The new arena is made before the old one goes,
// so that its file descriptor is not the old one's (which would replace the mapping at once).
TEST(NodeSharedFields, NeighboursLetGoOfADestroyedArena) {
  if (!kHostExec) GTEST_SKIP() << "arena Views are host memory";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 4, 2, 2 * world_size() + 1, 8});
  const HaloSpec spec(1);
  const Index e = khalo::test::local_extents(dec, spec);
  const int n = neighbours(dec, 3);
  const int before = peer_segments_mapped();
  auto first = std::make_unique<NodeSharedArena>(bytes_of(e, sizeof(float)));
  auto v = first->view<float*****>(e, MemoryFormat::contiguous);
  khalo::Halo<Exec> halo(dec, spec, v);
  khalo::test::fill_owned(v, dec, spec);
  halo.exchange(Exec(), v);
  EXPECT_EQ(halo.stats().mapped_recvs, n);
  EXPECT_EQ(peer_segments_mapped() - before, n);

  NodeSharedArena second(bytes_of(e, sizeof(float)));
  auto w = second.view<float*****>(e, MemoryFormat::contiguous);
  v = {};
  first.reset();
  MPI_Barrier(MPI_COMM_WORLD);  // every sender has dropped its first arena
  const auto idle = static_cast<int>(khalo::detail::kPeerSegmentIdleExchanges);
  for (int i = 1; i <= idle + 1; ++i) {
    khalo::test::fill_owned(w, dec, spec, i);
    halo.exchange(Exec(), w);
    ASSERT_EQ(khalo::test::count_wrong(w, dec, spec, "exchange " + std::to_string(i), i), 0);
    // Both arenas' segments until the old one has gone unread for kPeerSegmentIdleExchanges exchanges.
    EXPECT_EQ(peer_segments_mapped() - before, i < idle ? 2 * n : n) << "exchange " << i;
  }
  EXPECT_EQ(halo.stats().mapped_recvs, (idle + 2) * n);
}

// Whether a face that can be mapped is, or is packed into the node-shared buffer, is measured
// (MappedChoice): the first kFirstProbeAfter exchanges map it, the next kProbeLength pack it
// (the probe, on every rank at once), the ones after whichever was faster. Every exchange fills
// every ghost. With KHALO_MAPPED_READS=1 when the plan is made, every exchange maps.
TEST(NodeSharedFields, ASenderTriesPackingNowAndThen) {
  if (!kHostExec) GTEST_SKIP() << "arena Views are host memory";
  using khalo::detail::MappedChoice;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 4, 2, 2 * world_size() + 1, 8});
  const HaloSpec spec(1);
  const Index e = khalo::test::local_extents(dec, spec);
  const int n = neighbours(dec, 3);
  NodeSharedArena arena(bytes_of(e, sizeof(float)));
  auto v = arena.view<float*****>(e, MemoryFormat::contiguous);
  const int probe = MappedChoice::kFirstProbeAfter;
  const int after = probe + MappedChoice::kProbeLength;
  for (const bool measured : {true, false}) {
    if (!measured) setenv("KHALO_MAPPED_READS", "1", 1);
    khalo::Halo<Exec> halo(dec, spec, v);
    unsetenv("KHALO_MAPPED_READS");
    for (int i = 0; i < after + 2; ++i) {
      const std::string what =
          std::string(measured ? "measured" : "KHALO_MAPPED_READS=1") + ", exchange " + std::to_string(i);
      khalo::test::fill_owned(v, dec, spec, i + 1);
      const khalo::HaloStats before = halo.stats();
      halo.exchange(Exec(), v);
      ASSERT_EQ(khalo::test::count_wrong(v, dec, spec, what, i + 1), 0);
      const auto& s = halo.stats();
      EXPECT_EQ(s.mapped_sends - before.mapped_sends + s.shared_sends - before.shared_sends, n) << what;
      EXPECT_EQ(s.mapped_recvs - before.mapped_recvs + s.shared_recvs - before.shared_recvs, n) << what;
      if (i >= after) continue;  // the way the probe found faster
      const bool packs = measured && i >= probe;
      EXPECT_EQ(s.shared_sends - before.shared_sends, packs ? n : 0) << what;
      EXPECT_EQ(s.shared_recvs - before.shared_recvs, packs ? n : 0) << what;
      EXPECT_EQ(s.faces_packed - before.faces_packed, packs ? n : 0) << what;
    }
  }
}

// KHALO_MAPPED_READS=0 when the plan is made: the faces are packed as before, with the same values.
TEST(NodeSharedFields, OffWhenTheEnvironmentSaysSo) {
  if (!kHostExec) GTEST_SKIP() << "arena Views are host memory";
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 4, 2, 2 * world_size() + 1, 8});
  const HaloSpec spec(1);
  const Index e = khalo::test::local_extents(dec, spec);
  NodeSharedArena arena(bytes_of(e, sizeof(float)));
  auto v = arena.view<float*****>(e, MemoryFormat::contiguous);
  setenv("KHALO_MAPPED_READS", "0", 1);
  khalo::Halo<Exec> halo(dec, spec, v);
  unsetenv("KHALO_MAPPED_READS");
  khalo::test::fill_owned(v, dec, spec);
  halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "KHALO_MAPPED_READS=0"), 0);
  EXPECT_EQ(halo.stats().mapped_sends + halo.stats().mapped_recvs, 0);
  EXPECT_EQ(halo.stats().shared_sends, neighbours(dec, 3));
}

// The arena hands out aligned, zeroed, non-overlapping Views and refuses what does not fit; the
// registry finds a pointer inside an arena only while it lives.
TEST(NodeSharedArena, HandsOutViewsAndKnowsThem) {
  const void* inside = nullptr;
  {
    NodeSharedArena arena(1000);
    auto a = arena.view<float***>({2, 3, 5}, khalo::StrideOrder{0, 1, 2});
    auto b = arena.view<double*>({7}, khalo::StrideOrder{0});
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a.data()) % 64, 0U);
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(b.data()) % 64, 0U);
    EXPECT_GE(reinterpret_cast<const char*>(b.data()), reinterpret_cast<const char*>(a.data() + 30));
    EXPECT_EQ(a.stride(2), 1);
    EXPECT_EQ(a(1, 2, 4), 0.0F);
    EXPECT_EQ(arena.used(), 128 + 7 * sizeof(double));  // 120 B of floats, then the next 64-byte boundary
    EXPECT_THROW(arena.view<double*>({200}, khalo::StrideOrder{0}), std::length_error);
    // 2^40 x 2^40 doubles: a byte count that wraps to 0 in 64 bits must not become a small request.
    EXPECT_THROW(arena.view<double**>({std::int64_t{1} << 40, std::int64_t{1} << 40}, khalo::StrideOrder{0, 1}),
                 std::length_error);
    EXPECT_EQ(arena.used(), 128 + 7 * sizeof(double));  // nothing handed out by a refused request
    EXPECT_THROW(arena.view<double**>({2}, khalo::StrideOrder{0}), std::invalid_argument);
    const auto place = khalo::detail::SharedFieldRegistry::instance().find(a.data() + 29);
    ASSERT_TRUE(place.has_value());
    EXPECT_EQ(place->id.pid, static_cast<std::int64_t>(getpid()));
    EXPECT_EQ(place->offset, static_cast<std::int64_t>(khalo::detail::kSharedFieldHeaderBytes + 29 * sizeof(float)));
    EXPECT_FALSE(khalo::detail::SharedFieldRegistry::instance().find(&place).has_value());
    inside = a.data();
  }
  EXPECT_FALSE(khalo::detail::SharedFieldRegistry::instance().find(inside).has_value());
}

// Mapping a neighbour's segment: only the segment announced (its token and size) is mapped; a
// segment that is not there (another token at the same fd) is refused, never a crash.
TEST(NodeSharedArena, MapsOnlyTheSegmentAnnounced) {
  using namespace khalo::detail;
  std::string why;
  auto owned = OwnedSharedFields::create(256, why);
  ASSERT_NE(owned, nullptr) << why;
  owned->data()[5] = 42;
  const SharedFieldId id = owned->id();
  auto peer = PeerSharedFields::open(id);
  ASSERT_NE(peer, nullptr);
  EXPECT_EQ(peer->base()[kSharedFieldHeaderBytes + 5], 42);
  EXPECT_EQ(PeerSharedFields::open({id.pid, id.fd, id.token ^ 1, id.bytes}), nullptr);  // another token
  EXPECT_EQ(PeerSharedFields::open({id.pid, id.fd, id.token, id.bytes + 4096}), nullptr);
  EXPECT_EQ(PeerSharedFields::open({id.pid, 100000, id.token, id.bytes}), nullptr);  // no such fd

  PeerSegments segments;
  std::int64_t words[4] = {id.pid, id.fd, id.token, id.bytes};
  ASSERT_NE(segments.base(words), nullptr);
  EXPECT_EQ(segments.base(words)[kSharedFieldHeaderBytes + 5], 42);
  words[2] ^= 1;  // the same fd, another segment: mapped again, and refused
  EXPECT_EQ(segments.base(words), nullptr);
}

}  // namespace
