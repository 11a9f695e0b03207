#pragma once
/// \file
/// What one phase of an exchange does: its messages (blocks of fields, and how each side moves
/// them: transport.hpp) and its local fills. Not public.

#include <khalo/detail/block.hpp>
#include <khalo/detail/halo/fields.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

namespace khalo::detail {

class MpiType;  // transport.hpp

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
  // How this side moves the bytes (transport.hpp), the first that applies: runs in place, a
  // derived datatype, or packed; a packed message between two ranks of one node may be shared
  // (node_shared.hpp): the sender packs into its node-shared send buffer and MPI carries no
  // bytes, the receiver unpacks from that buffer. A message in place on both sides between two
  // ranks of one node may be direct (direct_read.hpp): the receiver copies the sender's runs.
  // A shared message may also be mapped (mapped_reads.hpp): in an exchange where the sender's
  // Views lie in node-shared memory, the receiver copies the face from there, unpacked.
  std::vector<Run> runs;                       // when not empty: one MPI message per run, in place
  std::shared_ptr<const MpiType> datatype;     // else, when set: one MPI message described by it
  std::size_t buffer_offset = 0;               // else: in the phase's send or receive buffer
  bool shared = false;                         // packed and shared, on both sides
  bool stream = false;                         // sender, packed: with non-temporal stores (stream_pack.hpp)
  const unsigned char* shared_from = nullptr;  // a shared receive: the face in the sender's buffer
  bool direct = false;                         // in place and read by the receiver, on both sides
  std::int64_t direct_pid = 0;                 // a direct receive: the sender's process,
  std::vector<Run> remote_runs;                // and its runs (offsets from its fields' data)
  bool mapped = false;                         // shared, and may be read from the sender's View, on both sides
  std::vector<BlockWalk> remote_walks;         // a mapped receive: the sender's walk of each segment
  bool in_place() const { return !runs.empty(); }
  bool by_datatype() const { return runs.empty() && datatype != nullptr; }
  bool packed() const { return runs.empty() && datatype == nullptr; }
};

/// Ghost layers filled locally: on a side without a neighbour, and on both sides of a
/// periodic dimension that one rank spans.
struct Fill {
  int field = 0;
  Boundary boundary = Boundary::zero;
  BlockWalk ghost;                  // zero: the whole ghost block
  std::vector<ShiftCopies> copies;  // otherwise: owned source layers onto the ghost layers
};

struct Phase {
  std::vector<Message> sends;
  std::vector<Message> recvs;
  std::vector<Fill> fills;
};

}  // namespace khalo::detail
