// The block kernels (pack, unpack, zero, shifted copy, block-to-block copy)
// against a reference that enumerates the block's multi-indices, on random
// blocks of random padded, permuted arrays, and on runs long enough to be
// split into several work items.
#include <khalo/detail/block.hpp>
#include <khalo/detail/halo/store_choice.hpp>
#include <khalo/detail/stream_pack.hpp>

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace {

using khalo::detail::Block;
using khalo::detail::Extents;
using Exec = Kokkos::DefaultHostExecutionSpace;

struct Array {
  Extents extents;
  Extents strides;
  std::vector<int> order;  // slowest first
  std::int64_t span = 0;
};

// A random array: rank 1..5, a random dimension order, and padding between dimensions.
Array random_array(std::mt19937& rng, int max_extent) {
  std::uniform_int_distribution<int> rank_d(1, 5);
  std::uniform_int_distribution<int> ext_d(1, max_extent);
  std::uniform_int_distribution<int> pad_d(0, 2);
  Array a;
  const auto rank = static_cast<std::size_t>(rank_d(rng));
  a.extents.resize(rank);
  for (auto& e : a.extents) e = ext_d(rng);
  a.order.resize(rank);
  std::iota(a.order.begin(), a.order.end(), 0);
  std::shuffle(a.order.begin(), a.order.end(), rng);
  a.strides.resize(rank);
  std::int64_t step = 1;
  for (auto it = a.order.rbegin(); it != a.order.rend(); ++it) {
    a.strides[static_cast<std::size_t>(*it)] = step;
    step = step * a.extents[static_cast<std::size_t>(*it)] + pad_d(rng);
  }
  a.span = step;
  return a;
}

Block random_block(std::mt19937& rng, const Array& a) {
  Block b{Extents(a.extents.size()), Extents(a.extents.size())};
  for (std::size_t d = 0; d < a.extents.size(); ++d) {
    std::uniform_int_distribution<std::int64_t> lo_d(0, a.extents[d] - 1);
    b.lo[d] = lo_d(rng);
    std::uniform_int_distribution<std::int64_t> ext_d(1, a.extents[d] - b.lo[d]);
    b.extent[d] = ext_d(rng);
  }
  return b;
}

// Offsets of the block's elements, slowest dimension of `order` first: the reference memory order.
std::vector<std::int64_t> reference_offsets(const Array& a, const Block& b) {
  std::vector<std::int64_t> out;
  const std::size_t rank = a.extents.size();
  Extents idx(rank, 0);
  const std::int64_t n = b.count();
  for (std::int64_t i = 0; i < n; ++i) {
    std::int64_t rest = i;
    std::int64_t off = 0;
    for (auto it = a.order.rbegin(); it != a.order.rend(); ++it) {
      const auto d = static_cast<std::size_t>(*it);
      off += (b.lo[d] + rest % b.extent[d]) * a.strides[d];
      rest /= b.extent[d];
    }
    out.push_back(off);
  }
  return out;
}

std::vector<double> iota_data(std::int64_t n) {
  std::vector<double> v(static_cast<std::size_t>(n));
  std::iota(v.begin(), v.end(), 1.0);
  return v;
}

using khalo::detail::PieceSchedule;
// Every schedule visits every element once, whatever the execution space: the
// device ones (a team per piece of a run; an element per item) run here on the host.
constexpr PieceSchedule kSchedules[] = {PieceSchedule::runs, PieceSchedule::team, PieceSchedule::elements};

void check_pack_unpack_zero(const Array& a, const Block& b, bool merge, PieceSchedule schedule) {
  const auto ref = reference_offsets(a, b);
  const auto w = khalo::detail::make_walk(a.strides, a.order, b, merge);
  ASSERT_EQ(w.count, static_cast<std::int64_t>(ref.size()));
  const auto data = iota_data(a.span);

  std::vector<double> buf(ref.size(), -1.0);
  khalo::detail::pack_block(Exec(), data.data(), w, buf.data(), schedule);
  Exec().fence();
  for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_EQ(buf[i], data[static_cast<std::size_t>(ref[i])]) << i;

  auto out = data;
  for (auto& x : buf) x = -x;
  khalo::detail::unpack_block(Exec(), out.data(), w, buf.data(), schedule);
  Exec().fence();
  auto want = data;
  for (std::size_t i = 0; i < ref.size(); ++i) want[static_cast<std::size_t>(ref[i])] = buf[i];
  ASSERT_EQ(out, want);

  out = data;
  khalo::detail::zero_block(Exec(), out.data(), w, schedule);
  Exec().fence();
  want = data;
  for (auto o : ref) want[static_cast<std::size_t>(o)] = 0.0;
  ASSERT_EQ(out, want);
}

// Calls check(array, block) on \p trials random blocks of random arrays (extents up to \p max_extent).
template <class Check>
void on_random_blocks(unsigned seed, int trials, int max_extent, const Check& check) {
  std::mt19937 rng(seed);
  for (int trial = 0; trial < trials; ++trial) {
    const Array a = random_array(rng, max_extent);
    const Block b = random_block(rng, a);
    SCOPED_TRACE("trial " + std::to_string(trial));
    check(a, b);
  }
}

TEST(Block, PackUnpackZeroMatchTheReferenceOnRandomBlocks) {
  on_random_blocks(20261128, 400, 7, [](const Array& a, const Block& b) {
    for (auto schedule : kSchedules) {
      check_pack_unpack_zero(a, b, true, schedule);
      check_pack_unpack_zero(a, b, false, schedule);
    }
  });
}

// A walk's span reaches from its first element to its last, as the reference enumerates them
// (what a mapped read checks against the room of the sender's segment).
TEST(Block, WalkSpanReachesTheLastElement) {
  on_random_blocks(7, 300, 6, [](const Array& a, const Block& b) {
    const auto ref = reference_offsets(a, b);
    const auto [lo, hi] = std::minmax_element(ref.begin(), ref.end());
    for (bool merge : {true, false}) {
      const auto w = khalo::detail::make_walk(a.strides, a.order, b, merge);
      ASSERT_EQ(w.base, *lo);
      ASSERT_EQ(w.span(), *hi - *lo + 1);
    }
  });
  EXPECT_EQ(khalo::detail::BlockWalk{}.span(), 0);
}

TEST(Block, LongRunsSplitIntoSeveralWorkItemsStayWhole) {
  // Inner runs of 40000 and 70001 elements exceed the host work-item cap.
  for (std::int64_t w : {40000, 70001}) {
    Array a{{3, w}, {w + 5, 1}, {0, 1}, 3 * (w + 5)};
    for (auto schedule : kSchedules) {
      check_pack_unpack_zero(a, Block{{1, 0}, {2, w}}, true, schedule);
      check_pack_unpack_zero(a, Block{{0, 1}, {3, w - 2}}, true, schedule);
    }
  }
}

// The streaming pack (non-temporal stores, for node-shared buffers) writes what pack_block
// writes: random blocks, float and double, buffers that start off a 16-byte boundary, short
// runs (many per work item) and runs longer than a work item's 64 KiB.
template <class T>
void check_stream_pack(const Array& a, const Block& b, std::size_t misalign) {
  const auto ref = reference_offsets(a, b);
  const auto w = khalo::detail::make_walk(a.strides, a.order, b, true);
  std::vector<T> data(static_cast<std::size_t>(a.span));
  std::iota(data.begin(), data.end(), T(1));
  std::vector<T> buf(ref.size() + misalign + 1, T(-1));
  khalo::detail::stream_pack_block(Exec(), data.data(), w, buf.data() + misalign);
  Exec().fence();
  for (std::size_t i = 0; i < ref.size(); ++i) {
    ASSERT_EQ(buf[misalign + i], data[static_cast<std::size_t>(ref[i])]) << i << " of " << ref.size();
  }
  for (std::size_t i = 0; i < misalign; ++i) ASSERT_EQ(buf[i], T(-1)) << "before the buffer";
  ASSERT_EQ(buf.back(), T(-1)) << "after the buffer";
}

TEST(Block, StreamPackWritesWhatPackWrites) {
  on_random_blocks(20261201, 300, 9, [](const Array& a, const Block& b) {
    for (std::size_t misalign : {0, 1, 3}) {
      check_stream_pack<float>(a, b, misalign);
      check_stream_pack<double>(a, b, misalign);
    }
  });
  for (std::int64_t w : {40000, 70001}) {  // runs of 160-560 KB
    Array a{{3, w}, {w + 5, 1}, {0, 1}, 3 * (w + 5)};
    check_stream_pack<float>(a, Block{{0, 1}, {3, w - 2}}, 1);
    check_stream_pack<double>(a, Block{{1, 0}, {2, w}}, 0);
  }
}

// Several copies of equally shaped layers go in one kernel: a periodic wrap (layer 1 onto the
// last, the last but one onto layer 0) or layer 0 replicated onto up to five layers (more than
// one ShiftCopies holds, so two entries).
TEST(Block, ShiftCopiesMoveLayersAlongOneDimensionTogether) {
  using khalo::detail::ShiftCopies;
  std::mt19937 rng(7);
  for (int trial = 0; trial < 300; ++trial) {
    Array a = random_array(rng, 6);
    const std::size_t d = static_cast<std::size_t>(trial) % a.extents.size();
    const std::int64_t n = a.extents[d];
    if (n < 4) continue;
    Block b = random_block(rng, a);
    b.extent[d] = 1;
    std::vector<std::pair<std::int64_t, std::int64_t>> moves;  // (source layer, destination layer)
    if (trial % 2 == 0) {
      moves = {{1, n - 1}, {n - 2, 0}};
    } else {
      for (std::int64_t k = 1; k < n && k <= 5; ++k) moves.emplace_back(0, k);
    }
    const auto data = iota_data(a.span);
    auto want = data;
    std::vector<ShiftCopies> copies;
    for (const auto& [src, dst] : moves) {
      b.lo[d] = src;
      const std::int64_t shift = (dst - src) * a.strides[d];
      for (auto o : reference_offsets(a, b)) {
        want[static_cast<std::size_t>(o + shift)] = data[static_cast<std::size_t>(o)];
      }
      khalo::detail::add_shift_copy(copies, khalo::detail::make_walk(a.strides, a.order, b), shift);
    }
    const std::size_t kernels = (moves.size() + khalo::detail::kMaxShifts - 1) / khalo::detail::kMaxShifts;
    ASSERT_EQ(copies.size(), kernels) << "trial " << trial;
    for (auto schedule : kSchedules) {
      auto out = data;
      for (const auto& c : copies) khalo::detail::shift_copy_blocks(Exec(), out.data(), c, schedule);
      Exec().fence();
      ASSERT_EQ(out, want) << "trial " << trial;
    }
  }
}

TEST(Block, CopyBlockBetweenArraysOfDifferentPadding) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 200; ++trial) {
    const Array src = random_array(rng, 6);
    Array dst = src;  // same order, other padding and extents
    std::int64_t step = 1;
    for (auto it = dst.order.rbegin(); it != dst.order.rend(); ++it) {
      const auto d = static_cast<std::size_t>(*it);
      dst.extents[d] += trial % 3;
      dst.strides[d] = step;
      step = step * dst.extents[d] + trial % 2;
    }
    dst.span = step;
    const Block sb = random_block(rng, src);
    Block db = sb;
    for (std::size_t d = 0; d < db.lo.size(); ++d) db.lo[d] = dst.extents[d] - db.extent[d];
    const auto data = iota_data(src.span);
    std::vector<double> want(static_cast<std::size_t>(dst.span), -1.0);
    const auto from = reference_offsets(src, sb);
    const auto to = reference_offsets(dst, db);
    for (std::size_t i = 0; i < from.size(); ++i) {
      want[static_cast<std::size_t>(to[i])] = data[static_cast<std::size_t>(from[i])];
    }
    for (auto schedule : kSchedules) {
      std::vector<double> out(static_cast<std::size_t>(dst.span), -1.0);
      khalo::detail::copy_block(Exec(), data.data(), khalo::detail::make_walk(src.strides, src.order, sb, false),
                                out.data(), khalo::detail::make_walk(dst.strides, dst.order, db, false), schedule);
      Exec().fence();
      ASSERT_EQ(out, want) << "trial " << trial;
    }
  }
}

// The switches that fix a choice of the engine (env_switch.hpp): "0" and "1" alone turn it off
// or on; unset, empty or any other text leaves the default, for every switch alike.
TEST(EnvSwitch, ZeroAndOneAloneFixTheChoice) {
  using khalo::detail::EnvSwitch;
  using khalo::detail::StorePolicy;
  const char* name = "KHALO_STREAM_PACKS";
  const char* caller = std::getenv(name);  // given back at the end, for the tests after this one
  const std::string saved = caller != nullptr ? caller : "";
  unsetenv(name);
  EXPECT_EQ(khalo::detail::env_switch(name), EnvSwitch::unset);
  EXPECT_EQ(khalo::detail::store_policy(), StorePolicy::measured);
  const std::pair<const char*, EnvSwitch> cases[] = {{"0", EnvSwitch::off},     {"1", EnvSwitch::on},
                                                     {"", EnvSwitch::unset},    {"01", EnvSwitch::unset},
                                                     {"yes", EnvSwitch::unset}, {"1 ", EnvSwitch::unset}};
  for (const auto& [value, want] : cases) {
    setenv(name, value, 1);
    EXPECT_EQ(khalo::detail::env_switch(name), want) << "'" << value << "'";
  }
  setenv(name, "0", 1);
  EXPECT_EQ(khalo::detail::store_policy(), StorePolicy::ordinary);
  setenv(name, "1", 1);
  EXPECT_EQ(khalo::detail::store_policy(), StorePolicy::stream);
  if (caller != nullptr) {
    setenv(name, saved.c_str(), 1);
  } else {
    unsetenv(name);
  }
}

// A probe lasts long enough to get past the other way's cold exchanges (probed_choice.hpp): here
// the other way costs 3 for its first two exchanges after a switch, 0.5 after them, against 1 for
// the way in use. The first probe finds it faster and keeps it; with probes of 2 exchanges it
// would only ever see the cold ones.
TEST(ProbedChoice, GetsPastTheOtherWaysColdExchanges) {
  using khalo::detail::ProbedChoice;
  ProbedChoice c;
  const int n = ProbedChoice::kFirstProbeAfter + ProbedChoice::kProbeLength + ProbedChoice::kConfirmAfter +
                ProbedChoice::kProbeLength + 8;
  bool last = c.first();
  int streak = 0;  // exchanges in a row of the way in use
  int second = 0;  // exchanges of the second way
  for (int i = 0; i < n; ++i) {
    const bool way = c.first();
    streak = way == last ? streak + 1 : 1;
    last = way;
    second += way ? 0 : 1;
    c.record(way ? 1.0 : (streak <= 2 ? 3.0 : 0.5));
  }
  EXPECT_FALSE(c.first()) << "the second way, faster once warm, was not kept";
  // Only the first kFirstProbeAfter exchanges and the probe that confirms the switch use the first way.
  EXPECT_EQ(second, n - ProbedChoice::kFirstProbeAfter - ProbedChoice::kProbeLength);
}

// The kind of store of packs another process reads (halo/store_choice.hpp): streaming first, a
// probe of the other kind after kFirstProbeAfter exchanges and then every kProbeEvery, a probe
// that switched checked again kConfirmAfter later, and the kind whose fastest pack was faster
// kept; KHALO_STREAM_PACKS=0 / 1 fix the kind.
TEST(StoreChoice, KeepsTheFasterKind) {
  using khalo::detail::StoreChoice;
  using khalo::detail::StorePolicy;
  // The kinds (1: streaming) of \p n exchanges whose packs take cost(kind, exchange) s per byte.
  auto run = [](StoreChoice& c, int n, auto cost) {
    std::vector<int> kinds;
    for (int i = 0; i < n; ++i) {
      kinds.push_back(c.stream() ? 1 : 0);
      c.record(cost(c.stream(), i));
    }
    return kinds;
  };
  const int first = StoreChoice::kFirstProbeAfter;
  const int every = StoreChoice::kProbeEvery;
  const int probe = StoreChoice::kProbeLength;
  const int confirm = StoreChoice::kConfirmAfter;
  {  // Ordinary stores are faster until exchange 100, then streaming is.
    StoreChoice c;
    const int change = 100;
    const auto kinds = run(c, 3 * every, [&](bool stream, int i) { return stream == (i >= change) ? 1.0 : 2.0; });
    // The probes: ordinary at first (wins), streaming to confirm (loses), streaming a period
    // later (wins), ordinary to confirm (loses), ordinary a period later (loses).
    const int p1 = first, p2 = p1 + probe + confirm - probe, p3 = p2 + probe + every - probe;
    const int p4 = p3 + probe + confirm - probe, p5 = p4 + probe + every - probe;
    std::vector<int> want;
    for (int i = 0; i < 3 * every; ++i) {
      auto in = [&](int p) { return i >= p && i < p + probe; };
      const int best = i < p1 + probe ? 1 : i < p3 + probe ? 0 : 1;
      const bool probing = in(p1) || in(p2) || in(p3) || in(p4) || in(p5);
      want.push_back(probing ? 1 - best : best);
    }
    EXPECT_EQ(kinds, want);
  }
  {  // One slow outlier of the kind in use does not make it lose: its fastest pack counts.
    StoreChoice c;
    const auto kinds = run(c, every, [&](bool stream, int i) { return stream ? (i == first - 1 ? 9.0 : 1.0) : 1.5; });
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), 0), probe);
  }
  {  // A probe that won by chance (ordinary faster only while it ran) is undone by the next one,
     // kConfirmAfter exchanges after its start; that switch back is confirmed in turn by a probe
     // of ordinary stores. Without the confirmation, ordinary stores until the second period.
    StoreChoice c;
    const auto kinds =
        run(c, every, [&](bool stream, int i) { return stream ? 1.0 : (i >= first && i < first + probe ? 0.5 : 2.0); });
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), 0), confirm + probe);
  }
  for (const auto policy : {StorePolicy::ordinary, StorePolicy::stream}) {
    StoreChoice c(policy);
    const auto kinds = run(c, 2 * every, [](bool stream, int) { return stream ? 2.0 : 1.0; });
    EXPECT_EQ(std::count(kinds.begin(), kinds.end(), policy == StorePolicy::stream ? 1 : 0), 2 * every)
        << khalo::detail::to_string(policy);
  }
}

}  // namespace
