#pragma once
/// \file
/// What a halo is: ghost-layer widths per split dimension and side, the
/// boundary policy where a side has no neighbour, and the plan's counters.

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

namespace khalo {

/// How ghost layers are filled on a side that has no neighbour (docs/halo.md).
enum class Boundary {
  zero,       ///< zeros: a convolution's zero padding (the default)
  replicate,  ///< copies of the outermost owned layer
  reflect,    ///< mirror image without the edge layer (PyTorch's "reflect")
  periodic,   ///< the layers of the rank on the far side (wraps, also on one rank)
  none,       ///< left untouched
};

/// The policy's name, as in the enum ("zero", "replicate", ...).
inline std::string to_string(Boundary b) {
  switch (b) {
    case Boundary::zero: return "zero";
    case Boundary::replicate: return "replicate";
    case Boundary::reflect: return "reflect";
    case Boundary::periodic: return "periodic";
    case Boundary::none: return "none";
  }
  return "unknown";
}

/// How the bytes of a message reach MPI (docs/halo.md §7). Whatever the choice, a message
/// whose face is one gap-free run of memory goes to MPI in place, and the staged path (device
/// memory without GPU-aware MPI) always packs.
enum class Transport {
  automatic,  ///< per side of each message, the cheaper of packing and a datatype by khalo's
              ///< measured cost model (packing, toward a neighbour on the same node, where
              ///< HaloSpec::shared_memory()); faces of long runs go in place, one message per run
  pack,       ///< always packed into the plan's buffer and unpacked from it (one message)
  datatype,   ///< where MPI may read the View (host memory), an MPI derived datatype over it
};

/// The transport's name, as in the enum ("automatic", "pack", "datatype").
inline std::string to_string(Transport t) {
  switch (t) {
    case Transport::automatic: return "automatic";
    case Transport::pack: return "pack";
    case Transport::datatype: return "datatype";
  }
  return "unknown";
}

/// Runs of at least this many bytes go to MPI in place, one message per run, when a face is
/// made of several (perf/RESULTS.md, "Transports"): from 16 KiB on, a message per run beat a
/// pack of the same face up to 512 KiB (perf/transport_sweep), and on the channels-last Wan
/// faces (runs of 39-156 KiB) it was as fast as a derived datatype or up to 2x faster.
inline constexpr std::int64_t kDefaultInPlaceMinRunBytes = 16 * 1024;

/// Ghost layers of one dimension.
struct DimHalo {
  int low = 1;                         ///< layers before the owned range
  int high = 1;                        ///< layers after the owned range
  Boundary boundary = Boundary::zero;  ///< what fills the layers of a side without a neighbour
};

/// Ghost layers of every split dimension: a default for all, and overrides per
/// array dimension.
class HaloSpec {
 public:
  /// \p width ghost layers on both sides of every split dimension, \p boundary where a side has
  /// no neighbour.
  explicit HaloSpec(int width = 1, Boundary boundary = Boundary::zero) : default_{width, width, boundary} {}
  /// Sets dimension \p dim's widths and boundary policy.
  HaloSpec& set(int dim, int low, int high, Boundary boundary = Boundary::zero) {
    dims_[dim] = DimHalo{low, high, boundary};
    return *this;
  }
  /// The widths and boundary policy of array dimension \p dim (the default unless set()).
  DimHalo of(int dim) const {
    const auto it = dims_.find(dim);
    return it == dims_.end() ? default_ : it->second;
  }
  /// With \p once, a plan zeroes the open sides of `zero` dimensions on its first exchange of
  /// each set of Views only, not on every exchange: for callers that never write ghost layers
  /// themselves (a convolution reads them). Ghost layers filled from data (neighbours,
  /// `replicate`, `reflect`, `periodic`) are filled on every exchange.
  HaloSpec& set_zero_fill_once(bool once = true) {
    zero_fill_once_ = once;
    return *this;
  }
  /// Whether open `zero` sides are zeroed once per plan and set of Views.
  bool zero_fill_once() const { return zero_fill_once_; }
  /// How messages reach MPI; Transport::automatic unless set.
  HaloSpec& set_transport(Transport transport) {
    transport_ = transport;
    return *this;
  }
  /// How messages reach MPI.
  Transport transport() const { return transport_; }
  /// Runs of at least \p bytes go to MPI in place when a face is made of several
  /// (kDefaultInPlaceMinRunBytes unless set; a tuning knob for other machines and MPIs).
  HaloSpec& set_in_place_min_run_bytes(std::int64_t bytes) {
    if (bytes < 1) throw std::invalid_argument("khalo::HaloSpec: the in-place run threshold must be >= 1 byte");
    in_place_min_run_bytes_ = bytes;
    return *this;
  }
  /// Runs of at least this many bytes go to MPI in place when a face is made of several.
  std::int64_t in_place_min_run_bytes() const { return in_place_min_run_bytes_; }
  /// With \p on (the default), a packed face between two ranks of one node goes through a
  /// node-shared buffer (POSIX shared memory) instead of an MPI message: the sender packs into
  /// it and the receiver unpacks from it, one copy fewer (docs/halo.md §7); and a face in place
  /// on both sides is read by the receiver straight from the sender's View, one copy however
  /// many runs it has. Off: MPI carries both.
  HaloSpec& set_shared_memory(bool on = true) {
    shared_memory_ = on;
    return *this;
  }
  /// Whether faces between ranks of one node go through node-shared buffers or direct reads.
  bool shared_memory() const { return shared_memory_; }

 private:
  DimHalo default_;
  std::map<int, DimHalo> dims_;
  bool zero_fill_once_ = false;
  Transport transport_ = Transport::automatic;
  std::int64_t in_place_min_run_bytes_ = kDefaultInPlaceMinRunBytes;
  bool shared_memory_ = true;
};

/// Counters of a halo plan, accumulated over its exchanges (docs/halo.md).
/// A side with no neighbour adds nothing to any of them.
struct HaloStats {
  std::int64_t faces_packed = 0;    ///< blocks copied into a send buffer by a pack kernel
  std::int64_t faces_streamed = 0;  ///< of those, packed with non-temporal stores for another process (docs/halo.md §7)
  std::int64_t bytes_packed = 0;    ///< bytes those kernels wrote
  std::int64_t bytes_sent = 0;      ///< bytes handed to MPI for sending
  std::int64_t bytes_received = 0;  ///< bytes received from MPI
  std::int64_t messages = 0;        ///< MPI messages sent (a face sent in place as k runs counts k)
  std::int64_t allocations = 0;     ///< buffers allocated (device and host staging)
  std::int64_t fills = 0;           ///< ghost blocks filled locally (zeroed or copied), per field
  std::int64_t datatype_sends = 0;  ///< of the messages, those sent through a derived datatype
  std::int64_t datatype_recvs = 0;  ///< messages received through a derived datatype (no unpack)
  std::int64_t shared_sends = 0;    ///< of the messages, faces packed into a node-shared buffer (no bytes through MPI)
  std::int64_t shared_recvs = 0;    ///< faces unpacked from a neighbour's node-shared buffer
  std::int64_t direct_sends = 0;    ///< of the messages, faces a neighbour on this node read from the View itself
  std::int64_t direct_recvs = 0;    ///< faces read straight from a neighbour's View (no bytes through MPI)
  std::int64_t mapped_sends =
      0;  ///< of the messages, faces a neighbour copied from this rank's node-shared View (no pack)
  std::int64_t mapped_recvs = 0;  ///< faces copied straight from a neighbour's node-shared View (no unpack)

  /// Adds \p o's counters, every one of them: the sum over several plans (a layer's, a decoder's).
  HaloStats& operator+=(const HaloStats& o) {
    faces_packed += o.faces_packed;
    faces_streamed += o.faces_streamed;
    bytes_packed += o.bytes_packed;
    bytes_sent += o.bytes_sent;
    bytes_received += o.bytes_received;
    messages += o.messages;
    allocations += o.allocations;
    fills += o.fills;
    datatype_sends += o.datatype_sends;
    datatype_recvs += o.datatype_recvs;
    shared_sends += o.shared_sends;
    shared_recvs += o.shared_recvs;
    direct_sends += o.direct_sends;
    direct_recvs += o.direct_recvs;
    mapped_sends += o.mapped_sends;
    mapped_recvs += o.mapped_recvs;
    return *this;
  }
};

}  // namespace khalo
