#pragma once
/// \file
/// How each side of a message moves its bytes, chosen once per plan: packed into the plan's
/// buffer (and unpacked), sent in place as runs of the View, or described to MPI by a derived
/// datatype over the View. Each side chooses on its own: every transport sends or receives the
/// message's bytes in the same order (the walk's memory order, which validate() makes the same
/// on every rank), as MPI_BYTE, so a packed side matches a datatype side. Runs of several
/// messages need the peer's agreement (handshake.hpp). Not public.

#include <khalo/detail/halo/fields.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace khalo::detail {

/// Owns a committed MPI datatype; frees it unless MPI is already finalized.
class MpiType {
 public:
  explicit MpiType(MPI_Datatype t) : type_(t) {}
  ~MpiType() {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Type_free(&type_);
  }
  MpiType(const MpiType&) = delete;
  MpiType& operator=(const MpiType&) = delete;
  MPI_Datatype get() const noexcept { return type_; }

 private:
  MPI_Datatype type_;
};

/// The derived datatype of the elements of \p w (\p elem bytes each) in walk order, as
/// MPI_BYTE, displaced from the field's data pointer: one vector per walk dimension.
inline std::shared_ptr<const MpiType> datatype_of(const BlockWalk& w, std::size_t elem) {
  const auto e = static_cast<MPI_Aint>(elem);
  const int fastest = w.ndims - 1;
  MPI_Datatype t = MPI_DATATYPE_NULL;
  MPI_Datatype element = MPI_DATATYPE_NULL;
  KHALO_MPI_CHECK(MPI_Type_contiguous(static_cast<int>(elem), MPI_BYTE, &element));
  KHALO_MPI_CHECK(MPI_Type_create_hvector(static_cast<int>(w.extent[fastest]), 1, w.stride[fastest] * e, element, &t));
  MPI_Type_free(&element);
  for (int k = fastest - 1; k >= 0; --k) {
    MPI_Datatype outer = MPI_DATATYPE_NULL;
    KHALO_MPI_CHECK(MPI_Type_create_hvector(static_cast<int>(w.extent[k]), 1, w.stride[k] * e, t, &outer));
    MPI_Type_free(&t);
    t = outer;
  }
  int one = 1;
  MPI_Aint base = w.base * e;
  MPI_Datatype placed = MPI_DATATYPE_NULL;
  KHALO_MPI_CHECK(MPI_Type_create_hindexed(1, &one, &base, t, &placed));
  MPI_Type_free(&t);
  KHALO_MPI_CHECK(MPI_Type_commit(&placed));
  return std::make_shared<const MpiType>(placed);
}

/// The runs of \p m if it can go to MPI in place: every block's runs are gap-free and either
/// the message is a single run or no run is shorter than \p min_run_bytes.
template <class Exec>
std::vector<Run> in_place_runs(const Message& m, const std::vector<FieldType<Exec>>& types,
                               std::int64_t min_run_bytes) {
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
  if (runs.size() > 1 && smallest < min_run_bytes) return {};
  return runs;
}

/// What the caller asked for (HaloSpec::set_transport, HaloSpec::set_in_place_min_run_bytes).
struct TransportChoice {
  Transport transport = Transport::automatic;
  std::int64_t in_place_min_run_bytes = kDefaultInPlaceMinRunBytes;
};

/// What the engine may do with the fields' memory, and what the caller asked for.
struct TransportOptions {
  bool zero_copy = true;    ///< MPI may read and write the fields' memory (not staged)
  bool host_memory = true;  ///< ... and it is host memory, where derived datatypes are cheap
  TransportChoice choice;
  /// Per rank: whether a packed face goes to or comes from it through a node-shared buffer
  /// (node_shared.hpp), two copies with no MPI copy. A datatype makes two copies too: where the
  /// ranks share a cache the two tie, where they do not the buffer won by 2.3-3.7x, and a
  /// per-phase choice between them gained nothing (perf/RESULTS.md, "A shared face by its
  /// datatype"), so such a face is always packed. Empty: none.
  std::vector<bool> shares;
};

/// The measured cost model that picks between packing a side and a derived datatype: seconds
/// for an exchange of a face of `runs` runs and `bytes` bytes, on 2 ranks of Open MPI's
/// shared-memory transport (perf/RESULTS.md, "Transports"). Its shape comes from
/// perf/transport_sweep: a packed message above the eager limit pays a rendezvous and three
/// copies (pack, the peer's single copy, unpack); a datatype's two copies go through a pipeline
/// of shared-memory fragments that costs more per byte once it is full. Its crossover, ~300 KiB
/// for faces of short runs, is where khalo's own pack kernels beat a datatype in bench_halo
/// (--transport pack against datatype on the Wan faces): a memcpy per run, as in the sweep, is
/// slower than those kernels and puts it at 450-800 KiB. Below the eager limit both are a few
/// microseconds and packing, in long loops, is kept.
struct TransportCost {
  double eager_bytes = 4096;  // Open MPI's shared-memory eager limit
  double rendezvous = 12e-6;
  double per_run = 40e-9;  // either way: a run is a loop (khalo) or a convertor step (MPI)
  double pack_per_byte = 0.112e-9;
  double datatype_per_byte = 0.15e-9;
  double datatype_pipeline_bytes = 256.0 * 1024;
  double datatype_per_byte_beyond = 0.165e-9;

  double pack(std::int64_t runs, std::int64_t bytes) const {
    const auto b = static_cast<double>(bytes);
    return (b > eager_bytes ? rendezvous : 0.0) + per_run * static_cast<double>(runs) + pack_per_byte * b;
  }
  double datatype(std::int64_t runs, std::int64_t bytes) const {
    const auto b = static_cast<double>(bytes);
    const double beyond = b > datatype_pipeline_bytes ? b - datatype_pipeline_bytes : 0.0;
    return per_run * static_cast<double>(runs) + datatype_per_byte * (b - beyond) + datatype_per_byte_beyond * beyond;
  }
};

/// Toward a neighbour that shares buffers on the node, a face whose runs go in place through MPI
/// (not read directly: direct_read.hpp) is packed instead when it has several runs shorter than
/// this (pack_short_runs_toward_sharing). In place through MPI pays a rendezvous per
/// run; the node-shared buffer pays two streamed copies and one empty message per face.
/// Channels-last Wan faces of 4 runs of 39 KiB took 0.023 ms in place and 0.012-0.017 ms shared
/// (raw MPI: 0.011-0.014); runs of 79 KiB were even, of 156-312 KiB in place won by up to 2x
/// (perf/RESULTS.md, "Streaming packs"). A direct read pays one copy for the whole face and
/// keeps the caller's threshold.
inline constexpr std::int64_t kSharedInPlaceMinRunBytes = 64 * 1024;

/// Chooses the transport of each side of each message (see the file comment): in place where
/// its runs allow, else a datatype where the model (or the caller) prefers it to a pack. A side
/// whose runs the handshake later refuses falls back to its datatype, if it has one, else packs.
template <class Exec>
void choose_transports(std::vector<Phase>& phases, const std::vector<FieldType<Exec>>& types,
                       const TransportOptions& o) {
  const TransportCost cost;
  auto choose = [&](Message& m) {
    m.runs.clear();
    m.datatype.reset();
    if (!o.zero_copy) return;
    const bool pack = o.choice.transport == Transport::pack;
    const bool shared =
        o.choice.transport == Transport::automatic && !o.shares.empty() && o.shares[static_cast<std::size_t>(m.peer)];
    m.runs = in_place_runs(m, types, pack ? INT64_MAX : o.choice.in_place_min_run_bytes);
    // A datatype describes one field's memory: a message of several fields is packed.
    if (pack || !o.host_memory || m.segments.size() != 1) return;
    const Segment& s = m.segments.front();
    const BlockWalk& w = s.walk;
    if (w.count == 0 || m.bytes > static_cast<std::size_t>(INT_MAX)) return;
    const std::int64_t runs = w.count / w.run_length();
    const auto bytes = static_cast<std::int64_t>(m.bytes);
    if (shared) return;
    if (o.choice.transport == Transport::datatype || cost.datatype(runs, bytes) < cost.pack(runs, bytes)) {
      m.datatype = datatype_of(w, types[static_cast<std::size_t>(s.field)].elem_size);
    }
  };
  for (auto& ph : phases) {
    for (auto& m : ph.sends) choose(m);
    for (auto& m : ph.recvs) choose(m);
  }
}

/// After the direct-read handshake and before agree_in_place: with automatic transport, the
/// faces toward a neighbour that shares buffers (\p shares) that would go in place through MPI
/// in several runs shorter than kSharedInPlaceMinRunBytes are packed instead, into the
/// node-shared buffer. A peer that keeps such runs (it asked for another transport) drops them in
/// agree_in_place, which sees the two sides cut the face differently.
inline void pack_short_runs_toward_sharing(std::vector<Phase>& phases, const std::vector<bool>& shares,
                                           const TransportChoice& choice) {
  if (shares.empty() || choice.transport != Transport::automatic) return;
  auto demote = [&](Message& m) {
    if (m.direct || m.runs.size() < 2 || !shares[static_cast<std::size_t>(m.peer)]) return;
    for (const auto& r : m.runs) {
      if (r.bytes < kSharedInPlaceMinRunBytes) {
        m.runs.clear();
        return;
      }
    }
  };
  for (auto& ph : phases) {
    for (auto& m : ph.sends) demote(m);
    for (auto& m : ph.recvs) demote(m);
  }
}

/// Which packed sends stream past the cache (stream_pack.hpp): those that another process reads
/// next, from a node-shared buffer, or by MPI's on-node single copy from single_copy_from()
/// bytes on (single_copy.hpp; asked only when a packed face goes to MPI toward this node).
/// \p on_node: per rank, empty when not known.
template <class SingleCopyFrom>
void choose_streaming(std::vector<Phase>& phases, const std::vector<bool>& on_node, SingleCopyFrom&& single_copy_from) {
  for (auto& ph : phases) {
    for (auto& m : ph.sends) {
      const bool near = !on_node.empty() && on_node[static_cast<std::size_t>(m.peer)];
      m.stream = m.packed() && (m.shared || (near && m.bytes >= single_copy_from()));
    }
  }
}

}  // namespace khalo::detail
