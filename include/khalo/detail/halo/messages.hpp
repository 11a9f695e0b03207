#pragma once
/// \file
/// What one phase of an exchange does: its messages (blocks of fields, packed or sent in place
/// as runs) and its local fills. Not public.

#include <khalo/detail/block.hpp>
#include <khalo/detail/halo/fields.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace khalo::detail {

/// One block of one field inside a message.
struct Segment {
  int field = 0;
  BlockWalk walk;
  std::size_t offset = 0;  // bytes from the message's start
  std::size_t bytes = 0;
};

/// A range of one field's memory that MPI reads or writes in place.
struct Run {
  int field = 0;
  std::int64_t offset = 0;  // bytes from the field's data pointer
  int bytes = 0;
};

struct Message {
  int peer = MPI_PROC_NULL;
  int tag = 0;
  std::vector<Segment> segments;
  std::size_t bytes = 0;
  std::vector<Run> runs;          // when not empty: one MPI message per run, in place, no pack
  std::size_t buffer_offset = 0;  // in the phase's send or receive buffer, when packed
  bool in_place() const { return !runs.empty(); }
};

/// Below this many bytes per run, one packed message costs less than a
/// message per run (a message costs microseconds; 64 KiB take ~20 us to copy).
inline constexpr std::int64_t kMinInPlaceRunBytes = 64 * 1024;

/// The runs of \p m if it can go to MPI in place: every block's runs are
/// gap-free and either the message is a single run or every run is large.
template <class Exec>
std::vector<Run> in_place_runs(const Message& m, const std::vector<FieldType<Exec>>& types) {
  std::vector<Run> runs;
  std::int64_t smallest = INT64_MAX;
  for (const auto& s : m.segments) {
    const BlockWalk& w = s.walk;
    if (w.count == 0) continue;
    if (w.run_stride() != 1) return {};
    const auto elem = static_cast<std::int64_t>(types[static_cast<std::size_t>(s.field)].elem_size);
    const std::int64_t bytes = w.run_length() * elem;
    smallest = std::min(smallest, bytes);
    for (std::int64_t r = 0; r < w.count / w.run_length(); ++r) {
      runs.push_back({s.field, w.run_offset(r) * elem, static_cast<int>(bytes)});
    }
  }
  if (runs.size() > 1 && smallest < kMinInPlaceRunBytes) return {};
  return runs;
}

/// Ghost layers filled locally: on a side without a neighbour, and on both sides of a
/// periodic dimension that one rank spans.
struct Fill {
  int field = 0;
  Boundary boundary = Boundary::zero;
  BlockWalk ghost;                                         // zero: the whole ghost block
  std::vector<std::pair<BlockWalk, std::int64_t>> copies;  // otherwise: source layers and shift
};

struct Phase {
  std::vector<Message> sends;
  std::vector<Message> recvs;
  std::vector<Fill> fills;
};

}  // namespace khalo::detail
