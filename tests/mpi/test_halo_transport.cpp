// How messages reach MPI (HaloSpec::set_transport, detail/halo/transport.hpp): every transport
// fills the same ghost layers on every layout; each side of a message chooses on its own; runs
// from the in-place threshold on go in place; the automatic choice follows the cost model.
#include <halo_oracle.hpp>
#include <khalo/detail/halo/direct_read.hpp>
#include <khalo/detail/halo/single_copy.hpp>
#include <khalo/detail/halo/transport.hpp>
#include <khalo/halo.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using khalo::Boundary;
using khalo::HaloSpec;
using khalo::MemoryFormat;
using khalo::Transport;
using khalo::test::Index;
using khalo::test::neighbours;
using khalo::test::world_rank;
using khalo::test::world_size;
using Exec = Kokkos::DefaultExecutionSpace;

template <class P>
class TransportLayouts : public ::testing::Test {};
using Layouts = ::testing::Types<
    khalo::test::Param<khalo::test::RightCase, float>, khalo::test::Param<khalo::test::LeftCase, double>,
    khalo::test::Param<khalo::test::ChannelsLastCase, float>, khalo::test::Param<khalo::test::PermutedCase, double>,
    khalo::test::Param<khalo::test::PaddedCase, float>>;
TYPED_TEST_SUITE(TransportLayouts, Layouts, khalo::test::ParamNames);

// Rank-5 bands split over two dimensions (edges and corners come from the second phase), zero
// and periodic boundaries, widths 1 and 2: the same ghosts whatever the transport, with and
// without node-shared memory. With Transport::datatype no face is packed (one field; host memory).
TYPED_TEST(TransportLayouts, EveryTransportFillsTheSameGhosts) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  for (const Transport t : {Transport::automatic, Transport::pack, Transport::datatype}) {
    for (const Boundary b : {Boundary::zero, Boundary::periodic}) {
      for (const bool shared_memory : {true, false}) {
        const auto grid = khalo::ProcessGrid::balanced(MPI_COMM_WORLD, 2, b == Boundary::periodic);
        const khalo::Decomposition dec(grid, {2, 3, 4 + world_size(), 2 * world_size() + 3, 5}, {2, 3});
        HaloSpec spec;
        spec.set(2, 1, 2, b).set(3, 2, 1, b).set_transport(t).set_shared_memory(shared_memory);
        auto v = Case::template make<T*****>("v", khalo::test::local_extents(dec, spec));
        khalo::test::fill_owned(v, dec, spec);
        khalo::Halo<Exec> halo(dec, spec, v);
        const std::string what = "transport " + khalo::to_string(t) + ", boundary " + khalo::to_string(b) +
                                 (shared_memory ? ", shared memory" : "");
        for (int i = 0; i < 2; ++i) {
          khalo::test::fill_owned(v, dec, spec);  // scrambles the ghosts
          halo.exchange(Exec(), v);
          EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what), 0) << what;
        }
        const auto& s = halo.stats();
        if (halo.staged()) {  // device memory MPI cannot read: packed whatever the transport asked
          EXPECT_EQ(s.datatype_sends + s.datatype_recvs, 0) << what;
          continue;
        }
        if (t == Transport::pack) {
          EXPECT_EQ(s.datatype_sends + s.datatype_recvs, 0) << what;
        }
        if (t == Transport::datatype) {
          EXPECT_EQ(s.faces_packed, 0) << what;
          EXPECT_EQ(s.allocations, 0) << what;  // nothing to pack: no buffer
        }
        if (!shared_memory || t == Transport::datatype) EXPECT_EQ(s.shared_sends + s.shared_recvs, 0) << what;
      }
    }
  }
}

// Even ranks describe their faces with datatypes, odd ranks pack: every message has a packed
// side and a datatype side, and the bytes still land in place.
TEST(HaloTransport, EachSideChoosesOnItsOwn) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 6, 3, 2 * world_size() + 1, 7});
  HaloSpec spec(1);
  spec.set_transport(world_rank() % 2 == 0 ? Transport::datatype : Transport::pack);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
  khalo::test::fill_owned(v, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, v);
  halo.exchange(Exec(), v);
  EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "datatype on even ranks, pack on odd"), 0);
  const int n = neighbours(dec, 3);
  const auto& s = halo.stats();
  EXPECT_EQ(s.messages, n);
  const bool datatypes = world_rank() % 2 == 0 && !halo.staged();  // staged: everything is packed
  EXPECT_EQ(s.datatype_sends, datatypes ? n : 0);
  EXPECT_EQ(s.faces_packed, datatypes ? 0 : n);
}

// Several fields travel in one message, which a datatype over one View cannot describe: packed.
TEST(HaloTransport, SeveralFieldsArePacked) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 3, 2, 2 * world_size() + 1, 4});
  HaloSpec spec(1);
  spec.set_transport(Transport::datatype);
  const Index e = khalo::test::local_extents(dec, spec);
  auto f = khalo::allocate<float*****>("f", e, MemoryFormat::contiguous);
  auto d = khalo::allocate<double*****>("d", e, MemoryFormat::channels_last_3d);
  khalo::test::fill_owned(f, dec, spec);
  khalo::test::fill_owned(d, dec, spec);
  khalo::Halo<Exec> halo(dec, spec, f, d);
  halo.exchange(Exec(), f, d);
  EXPECT_EQ(khalo::test::count_wrong(f, dec, spec, "float field"), 0);
  EXPECT_EQ(khalo::test::count_wrong(d, dec, spec, "double field"), 0);
  const int n = neighbours(dec, 3);
  EXPECT_EQ(halo.stats().messages, n);
  EXPECT_EQ(halo.stats().datatype_sends, 0);
  EXPECT_EQ(halo.stats().faces_packed, 2 * n);
}

// NDHWC with D = 3: an H face is 3 runs of W * C floats. Runs of the threshold go in place, one
// message each; one byte more of threshold and the face goes as one message. (MPI's transports:
// toward a neighbour that shares buffers the rule differs, see the next test.)
TEST(HaloTransport, RunsFromTheThresholdOnGoInPlace) {
  const std::int64_t C = 64, D = 3, W = 64;  // a run is 16 KiB
  const std::int64_t run = C * W * static_cast<std::int64_t>(sizeof(float));
  for (const std::int64_t threshold : {run, run + 1}) {
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, D, 2 * world_size() + 1, W});
    HaloSpec spec(1);
    spec.set_in_place_min_run_bytes(threshold).set_shared_memory(false);
    auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
    khalo::test::fill_owned(v, dec, spec);
    khalo::Halo<Exec> halo(dec, spec, v);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "runs of 16 KiB"), 0);
    const int n = neighbours(dec, 3);
    const bool in_place = threshold == run && !halo.staged();  // staged: one packed message
    EXPECT_EQ(halo.stats().messages, in_place ? n * D : n) << threshold;
    EXPECT_EQ(halo.stats().bytes_sent, n * D * run);
  }
  EXPECT_EQ(HaloSpec().in_place_min_run_bytes(), khalo::kDefaultInPlaceMinRunBytes);
  EXPECT_THROW(HaloSpec().set_in_place_min_run_bytes(0), std::invalid_argument);
}

// Toward a neighbour that shares buffers on the node (these ranks share one), a face in place
// on both sides is read straight from the sender's View (direct_read.hpp): one "ready" message
// per face, when its runs are at least kDirectMinRunBytes (4 KiB) long; shorter ones go through
// the shared buffer even where the caller's threshold puts them in place. Without direct reads
// (KHALO_DIRECT_READS=0) runs go in place through MPI only from kSharedInPlaceMinRunBytes
// (64 KiB) on: shorter ones are packed into the shared buffer, one face, no MPI rendezvous per
// run. The caller's threshold holds either way.
TEST(HaloTransport, ShortRunsGoThroughNodeSharedBuffers) {
  struct Face {
    std::int64_t C, W, threshold;
    bool direct;    // read directly (with direct reads on)
    bool in_place;  // in place through MPI (with direct reads off)
  };
  const std::int64_t D = 3;  // an H face is D runs of W * C floats
  for (const bool direct_reads : {true, false}) {
    if (!direct_reads) setenv("KHALO_DIRECT_READS", "0", 1);
    for (const Face f : {Face{64, 64, khalo::kDefaultInPlaceMinRunBytes, true, false},   // 16 KiB
                         Face{64, 255, khalo::kDefaultInPlaceMinRunBytes, true, false},  // a float short of 64 KiB
                         Face{64, 256, khalo::kDefaultInPlaceMinRunBytes, true, true},   // 64 KiB
                         Face{64, 256, 128 * 1024, false, false},
                         Face{16, 64, 1, true, false},      // 4 KiB, in place at the caller's threshold
                         Face{16, 63, 1, false, false}}) {  // a float short of 4 KiB
      const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, f.C, D, 2 * world_size() + 1, f.W});
      HaloSpec spec(1);
      spec.set_in_place_min_run_bytes(f.threshold);
      auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
      khalo::test::fill_owned(v, dec, spec);
      khalo::Halo<Exec> halo(dec, spec, v);
      halo.exchange(Exec(), v);
      const std::string what = std::to_string(f.C * f.W * 4) + " B runs, threshold " + std::to_string(f.threshold) +
                               (direct_reads ? "" : ", KHALO_DIRECT_READS=0");
      EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, what), 0);
      const int n = neighbours(dec, 3);
      if (halo.staged()) continue;  // device memory: packed and staged, never shared
      const auto& s = halo.stats();
      const bool direct = direct_reads && f.direct;
      const bool in_place = !direct_reads && f.in_place;
      EXPECT_EQ(s.messages, in_place ? n * D : n) << what;
      EXPECT_EQ(s.direct_sends, direct ? n : 0) << what;
      EXPECT_EQ(s.direct_recvs, direct ? n : 0) << what;
      EXPECT_EQ(s.shared_sends, direct || in_place ? 0 : n) << what;
      EXPECT_EQ(s.faces_packed, direct || in_place ? 0 : n) << what;
    }
    unsetenv("KHALO_DIRECT_READS");
  }
}

// Without direct reads, a side with automatic transport packs a face of short runs toward a
// neighbour that shares buffers; a peer that asked for datatypes would send those runs in place.
// agree_in_place, after that choice, makes the peer drop its runs: one message, right values.
TEST(HaloTransport, ShortRunsAgreeWithAPeerThatAskedOtherwise) {
  const std::int64_t C = 64, D = 3, W = 64;  // an H face is D runs of 16 KiB
  setenv("KHALO_DIRECT_READS", "0", 1);
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, D, 2 * world_size() + 1, W});
  HaloSpec spec(1);
  spec.set_transport(world_rank() % 2 == 0 ? Transport::datatype : Transport::automatic);
  auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
  khalo::Halo<Exec> halo(dec, spec, v);
  unsetenv("KHALO_DIRECT_READS");
  for (int i = 1; i <= 2; ++i) {
    khalo::test::fill_owned(v, dec, spec, i);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "datatype on even ranks, automatic on odd", i), 0);
  }
  EXPECT_EQ(halo.stats().messages, 2 * neighbours(dec, 3));
}

// A direct read takes the sender's View from that exchange's "ready" message: two Views of one
// shape, exchanged in turn, each get their own values, exchange after exchange. Split over H
// and W, the H faces (runs of 16 KiB or more) are read directly and the W faces (runs of C
// floats) are packed; the second phase sends what the first received. With direct reads off,
// the same values.
TEST(HaloTransport, DirectReadsFollowTheView) {
  const std::int64_t C = 64, D = 2;
  const auto grid = khalo::ProcessGrid::balanced(MPI_COMM_WORLD, 2);
  const khalo::Decomposition dec(grid, {1, C, D, 2 * world_size() + 1, 128}, {3, 4});
  const HaloSpec spec(1);
  const int n = neighbours(dec, 3);
  for (const bool direct_reads : {true, false}) {
    if (!direct_reads) setenv("KHALO_DIRECT_READS", "0", 1);
    auto a = khalo::allocate<float*****>("a", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
    auto b = khalo::allocate<float*****>("b", khalo::test::local_extents(dec, spec), MemoryFormat::channels_last_3d);
    khalo::Halo<Exec> halo(dec, spec, a);
    unsetenv("KHALO_DIRECT_READS");
    for (int i = 1; i <= 3; ++i) {
      khalo::test::fill_owned(a, dec, spec, 2 * i);
      khalo::test::fill_owned(b, dec, spec, 2 * i + 1);
      halo.exchange(Exec(), a);
      halo.exchange(Exec(), b);
      const std::string what = "exchange " + std::to_string(i) + (direct_reads ? "" : ", KHALO_DIRECT_READS=0");
      EXPECT_EQ(khalo::test::count_wrong(a, dec, spec, "a, " + what, 2 * i), 0) << what;
      EXPECT_EQ(khalo::test::count_wrong(b, dec, spec, "b, " + what, 2 * i + 1), 0) << what;
    }
    if (halo.staged()) continue;
    const auto& s = halo.stats();
    EXPECT_EQ(s.direct_sends, direct_reads ? 6 * n : 0) << direct_reads;
    EXPECT_EQ(s.direct_recvs, direct_reads ? 6 * n : 0) << direct_reads;
  }
}

// The pieces of a direct read that can fail: the handshake's test read accepts only the token
// itself at its address in a process that exists; a read from where the sender's View is not
// throws an error that names the rank it reads from, never a crash.
TEST(DirectRead, RefusesWhatItCannotRead) {
  using namespace khalo::detail;
  const std::uint64_t& token = direct_read_token();
  const auto me = static_cast<std::int64_t>(getpid());
  const auto at = static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(&token));
  EXPECT_TRUE(can_read_process(me, at, token));
  EXPECT_FALSE(can_read_process(me, at, token ^ 1));  // another process's token
  EXPECT_FALSE(can_read_process(me, 8, token));       // nothing mapped there
  EXPECT_FALSE(can_read_process(-1, at, token));      // no such process

  std::vector<float> mine(64, 0.0F);
  std::vector<float> theirs(64, 7.0F);
  Message m;
  m.peer = 3;
  m.bytes = 64 * sizeof(float);
  m.direct = true;
  m.direct_pid = me;
  constexpr int half = 32 * static_cast<int>(sizeof(float));
  m.runs = {{0, 0, half}, {0, half, half}};
  m.remote_runs = {{0, 0, 2 * half}};  // cut differently: one run
  const std::vector<void*> local{mine.data()};
  std::uint64_t remote = reinterpret_cast<std::uintptr_t>(theirs.data());
  read_direct(m, local, &remote, "test");
  EXPECT_EQ(mine, theirs);
  remote = 8;
  try {
    read_direct(m, local, &remote, "test");
    ADD_FAILURE() << "a read from unmapped memory did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("from the View of rank 3"), std::string::npos) << e.what();
  }
}

// The automatic choice between MPI transports (between nodes, or without node-shared memory): a
// contiguous (NCDHW) H face is C * D runs of W floats. At 156 KiB (the decoder's C = 96, D = 4,
// W = 104 band) a datatype is cheaper than a pack; at 1.2 MiB, where Open MPI's fragment pipeline
// is full, packing is. With node-shared memory (these ranks share a node), both are packed.
TEST(HaloTransport, AutomaticFollowsTheCostModel) {
  struct Face {
    std::int64_t C, D, W;
    bool datatype;
    bool shared_memory;
  };
  for (const Face f : {Face{96, 4, 104, true, false}, Face{192, 4, 416, false, false}, Face{96, 4, 104, false, true}}) {
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, f.C, f.D, 2 * world_size() + 1, f.W});
    HaloSpec spec(1);
    spec.set_shared_memory(f.shared_memory);
    auto v = khalo::allocate<float*****>("v", khalo::test::local_extents(dec, spec), MemoryFormat::contiguous);
    khalo::test::fill_owned(v, dec, spec);
    khalo::Halo<Exec> halo(dec, spec, v);
    halo.exchange(Exec(), v);
    EXPECT_EQ(khalo::test::count_wrong(v, dec, spec, "contiguous faces"), 0);
    const int n = neighbours(dec, 3);
    const bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, Exec::memory_space>::accessible;
    const bool datatype = f.datatype && host;
    EXPECT_EQ(halo.stats().datatype_sends, datatype ? n : 0) << f.C << " x " << f.W;
    EXPECT_EQ(halo.stats().faces_packed, datatype ? 0 : n) << f.C << " x " << f.W;
    EXPECT_EQ(halo.stats().shared_sends, f.shared_memory && !halo.staged() ? n : 0) << f.C << " x " << f.W;
  }
}

// Which packs stream (stream_pack.hpp): those another process reads next. A shared face does;
// a face packed for MPI does when its peer is on this node and MPI copies it by the receiver's
// single copy (from single_copy_from bytes on); a face in place, or toward another node, never.
TEST(HaloTransport, PacksReadByAnotherProcessStream) {
  khalo::detail::Phase ph;
  auto send = [&](int peer, std::size_t bytes, bool shared, bool in_place) {
    khalo::detail::Message m;
    m.peer = peer;
    m.bytes = bytes;
    m.shared = shared;
    if (in_place) m.runs.push_back({0, 0, static_cast<int>(bytes)});
    ph.sends.push_back(m);
  };
  send(1, 100, true, false);       // shared
  send(1, 8192, false, false);     // on node, single copy
  send(1, 4096, false, false);     // on node, below the single copy: the sender copies it
  send(2, 1 << 20, false, false);  // another node
  send(1, 1 << 20, false, true);   // in place
  std::vector<khalo::detail::Phase> phases{ph};
  khalo::detail::choose_streaming(phases, {true, true, false}, [] { return std::size_t{4097}; });
  std::vector<bool> streamed;
  for (const auto& m : phases[0].sends) streamed.push_back(m.stream);
  EXPECT_EQ(streamed, (std::vector<bool>{true, true, false, false, false}));
  khalo::detail::choose_streaming(phases, {}, [] { return std::size_t{4097}; });  // nobody known on this node
  EXPECT_TRUE(phases[0].sends[0].stream);
  EXPECT_FALSE(phases[0].sends[1].stream);
  khalo::detail::choose_streaming(phases, {true, true, false}, [] { return khalo::detail::kNoSingleCopy; });
  EXPECT_FALSE(phases[0].sends[1].stream);
  // MPI is asked (MPI_T, slow to start) only for a packed face toward this node that is not shared.
  int asked = 0;
  phases[0].sends.erase(phases[0].sends.begin() + 1, phases[0].sends.begin() + 3);
  khalo::detail::choose_streaming(phases, {true, true, false}, [&] { return ++asked, std::size_t{0}; });
  EXPECT_EQ(asked, 0);
}

// MPI's single copy, from its control variables: the mechanism by name, the same component's
// eager limit (messages up to it the sender copies); "none", or no such variable: never.
TEST(HaloTransport, SingleCopyFromMpiControlVariables) {
  using khalo::detail::kNoSingleCopy;
  using khalo::detail::single_copy_min_bytes;
  EXPECT_EQ(single_copy_min_bytes({{"btl_vader_single_copy_mechanism", "cma"},
                                   {"btl_vader_eager_limit", "4096"},
                                   {"btl_tcp_eager_limit", "65536"}}),
            4097u);
  EXPECT_EQ(single_copy_min_bytes({{"btl_sm_single_copy_mechanism", "xpmem"}, {"btl_sm_eager_limit", "8192"}}), 8193u);
  EXPECT_EQ(single_copy_min_bytes({{"btl_vader_single_copy_mechanism", "none"}, {"btl_vader_eager_limit", "4096"}}),
            kNoSingleCopy);
  EXPECT_EQ(single_copy_min_bytes({{"btl_vader_single_copy_mechanism", "cma"}}), kNoSingleCopy);
  EXPECT_EQ(single_copy_min_bytes({{"btl_tcp_eager_limit", "65536"}}), kNoSingleCopy);
  // This MPI: with Open MPI's shared-memory transport loaded (2 ranks or more), MPI_T names its
  // mechanism and that component's eager limit, whatever their values.
  char version[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0;
  MPI_Get_library_version(version, &len);
  if (world_size() < 2 || std::string(version).find("Open MPI") == std::string::npos) {
    GTEST_SKIP() << "Open MPI on 2 ranks or more";
  }
  const auto cvars = khalo::detail::single_copy_control_variables();
  const std::string mechanism = "single_copy_mechanism";
  int named = 0;
  for (const auto& [name, value] : cvars) {
    const auto at = name.find(mechanism);
    if (at == std::string::npos) continue;
    named += 1;
    const auto eager = cvars.find(name.substr(0, at) + "eager_limit");
    ASSERT_NE(eager, cvars.end()) << name;
    EXPECT_GT(std::stoll(eager->second), 0) << eager->first;
  }
  EXPECT_GE(named, 1);
}

}  // namespace
