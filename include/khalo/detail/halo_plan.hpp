#pragma once
/// \file
/// The MPI transport behind khalo::Halo: per-shape plans of messages, buffers
/// that persist, and the exchange itself. Not public.

#include <khalo/decomposition.hpp>
#include <khalo/detail/block.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

namespace khalo::detail {

/// Kernels for one element type, behind a virtual interface so that one plan
/// can carry fields of different types in the same message.
template <class Exec>
struct FieldKernels {
  virtual ~FieldKernels() = default;
  virtual void pack(const Exec& exec, const void* data, const BlockWalk& w, void* buf) const = 0;
  virtual void unpack(const Exec& exec, void* data, const BlockWalk& w, const void* buf) const = 0;
  virtual void zero(const Exec& exec, void* data, const BlockWalk& w) const = 0;
  virtual void shift_copy(const Exec& exec, void* data, const BlockWalk& w, std::int64_t shift) const = 0;
};

template <class Exec, class T>
struct TypedKernels final : FieldKernels<Exec> {
  void pack(const Exec& exec, const void* data, const BlockWalk& w, void* buf) const override {
    pack_block(exec, static_cast<const T*>(data), w, static_cast<T*>(buf));
  }
  void unpack(const Exec& exec, void* data, const BlockWalk& w, const void* buf) const override {
    unpack_block(exec, static_cast<T*>(data), w, static_cast<const T*>(buf));
  }
  void zero(const Exec& exec, void* data, const BlockWalk& w) const override {
    zero_block(exec, static_cast<T*>(data), w);
  }
  void shift_copy(const Exec& exec, void* data, const BlockWalk& w, std::int64_t shift) const override {
    shift_copy_block(exec, static_cast<T*>(data), w, shift);
  }
};

/// What the plan knows of one field: its type and, per shape, its geometry.
template <class Exec>
struct FieldType {
  std::shared_ptr<const FieldKernels<Exec>> kernels;
  std::size_t elem_size = 0;
  std::size_t align = 0;
  std::int64_t type_code = 0;
  std::string type_name;
};

struct FieldShape {
  Extents extents;
  Extents strides;
  std::vector<int> order;
};

template <class View>
FieldShape shape_of(const View& v) {
  return {extents_of(v), strides_of(v), stride_order(v)};
}

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

/// Ghost layers filled locally on a side without a neighbour.
struct Fill {
  int field = 0;
  Boundary boundary = Boundary::zero;
  BlockWalk ghost;                                         // zero: the whole ghost block
  std::vector<std::pair<BlockWalk, std::int64_t>> copies;  // replicate/reflect: source layer and shift
};

struct Phase {
  std::vector<Message> sends;
  std::vector<Message> recvs;
  std::vector<Fill> fills;
};

/// Collective with the neighbours: a message goes in place only where its
/// sender and its receiver cut it into the same runs (their strides may
/// differ, e.g. padded Views), since the runs are what travels; elsewhere
/// both sides pack. Each side sends the run sizes it would use to the peer.
inline void agree_in_place(MPI_Comm comm, std::vector<Phase>& phases) {
  constexpr int kBaseTag = 4096;  // above the exchange's tags (2 per split dimension)
  auto signature = [](const Message& m) {
    std::vector<std::int64_t> sig{static_cast<std::int64_t>(m.runs.size())};
    for (const auto& r : m.runs) sig.push_back(r.bytes);
    return sig;
  };
  struct Side {
    Message* m;
    int send_tag;  // my signature goes out with this tag,
    int recv_tag;  // the peer's comes back with this one
    std::vector<std::int64_t> mine;
  };
  std::vector<Side> sides;
  for (auto& ph : phases) {
    for (auto& m : ph.sends) sides.push_back({&m, kBaseTag + 2 * m.tag, kBaseTag + 2 * m.tag + 1, signature(m)});
    for (auto& m : ph.recvs) sides.push_back({&m, kBaseTag + 2 * m.tag + 1, kBaseTag + 2 * m.tag, signature(m)});
  }
  std::vector<MPI_Request> requests(sides.size());
  for (std::size_t i = 0; i < sides.size(); ++i) {
    KHALO_MPI_CHECK(MPI_Isend(sides[i].mine.data(), static_cast<int>(sides[i].mine.size()), MPI_INT64_T,
                              sides[i].m->peer, sides[i].send_tag, comm, &requests[i]));
  }
  for (auto& side : sides) {
    MPI_Status status;
    KHALO_MPI_CHECK(MPI_Probe(side.m->peer, side.recv_tag, comm, &status));
    int count = 0;
    KHALO_MPI_CHECK(MPI_Get_count(&status, MPI_INT64_T, &count));
    std::vector<std::int64_t> theirs(static_cast<std::size_t>(count));
    KHALO_MPI_CHECK(MPI_Recv(theirs.data(), count, MPI_INT64_T, side.m->peer, side.recv_tag, comm, MPI_STATUS_IGNORE));
    if (theirs != side.mine) side.m->runs.clear();
  }
  if (!requests.empty()) {
    KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }
}

template <class MemSpace>
struct Buffers {
  using Device = Kokkos::View<unsigned char*, MemSpace>;
  using Host = typename Device::HostMirror;
  Device send;
  Device recv;
  Host send_host;  // staging when MPI may not touch MemSpace
  Host recv_host;
};

/// A plan for one set of field shapes: built collectively, then reused.
template <class MemSpace>
struct ShapePlan {
  std::vector<Phase> phases;
  Buffers<MemSpace> buffers;
};

inline std::size_t align_up(std::size_t n, std::size_t a) { return a == 0 ? n : (n + a - 1) / a * a; }

/// Builds the messages and fills of every phase for one set of shapes.
/// Phases run over the split dimensions in order; a phase's blocks span the
/// ghost layers of the dimensions exchanged before it, which is what fills
/// edges and corners. Local: what only this rank can see wrong (a message too
/// large for MPI's int count) goes to \p error, for the caller to make
/// collective before anyone throws.
template <class Exec>
std::vector<Phase> build_phases(const Decomposition& dec, const HaloSpec& spec,
                                const std::vector<FieldType<Exec>>& types, const std::vector<FieldShape>& shapes,
                                bool zero_copy, std::string& error) {
  const auto& split = dec.split_dims();
  std::vector<Phase> phases(split.size());
  for (std::size_t p = 0; p < split.size(); ++p) {
    const int d = split[p];
    const DimHalo h = spec.of(d);
    const bool wrap = h.boundary == Boundary::periodic;
    const int low_peer = dec.neighbor(d, Side::low, wrap);
    const int high_peer = dec.neighbor(d, Side::high, wrap);
    // The cross-section of every block of this phase, per field.
    auto block_of = [&](std::size_t f, std::int64_t begin, std::int64_t count) {
      const FieldShape& s = shapes[f];
      Block b{Extents(s.extents.size(), 0), s.extents};
      for (std::size_t q = 0; q < split.size(); ++q) {
        if (q <= p) continue;  // earlier phases: full extent incl. ghosts; this one: set below
        const auto e = static_cast<std::size_t>(split[q]);
        const DimHalo he = spec.of(split[q]);
        b.lo[e] = he.low;
        b.extent[e] = s.extents[e] - he.low - he.high;
      }
      b.lo[static_cast<std::size_t>(d)] = begin;
      b.extent[static_cast<std::size_t>(d)] = count;
      return b;
    };
    auto message = [&](int peer, int tag, std::int64_t begin_from_low, std::int64_t count, bool from_high_end) {
      Message m;
      m.peer = peer;
      m.tag = tag;
      for (std::size_t f = 0; f < shapes.size(); ++f) {
        const std::int64_t n = shapes[f].extents[static_cast<std::size_t>(d)];
        const std::int64_t begin = from_high_end ? n - begin_from_low - count : begin_from_low;
        Segment s;
        s.field = static_cast<int>(f);
        s.walk = make_walk(shapes[f].strides, shapes[f].order, block_of(f, begin, count));
        s.bytes = static_cast<std::size_t>(s.walk.count) * types[f].elem_size;
        s.offset = align_up(m.bytes, types[f].align);
        m.bytes = s.offset + s.bytes;
        m.segments.push_back(s);
      }
      if (m.bytes > static_cast<std::size_t>(INT_MAX)) {
        if (error.empty()) {
          error = "khalo::Halo: a halo message of " + std::to_string(m.bytes) + " bytes (rank " +
                  std::to_string(dec.grid().rank()) + ", dimension " + std::to_string(d) +
                  ") exceeds MPI's int count; split the fields or use more ranks";
        }
        return m;
      }
      if (zero_copy) m.runs = in_place_runs(m, types);
      return m;
    };
    Phase& ph = phases[p];
    const int tag_low = static_cast<int>(2 * p);  // a message sent toward the sender's low side
    const int tag_high = tag_low + 1;
    // My first `high` owned layers fill my low neighbour's high ghost, and so on.
    if (low_peer != MPI_PROC_NULL && h.high > 0) ph.sends.push_back(message(low_peer, tag_low, h.low, h.high, false));
    if (high_peer != MPI_PROC_NULL && h.low > 0) ph.sends.push_back(message(high_peer, tag_high, h.high, h.low, true));
    if (low_peer != MPI_PROC_NULL && h.low > 0) ph.recvs.push_back(message(low_peer, tag_high, 0, h.low, false));
    if (high_peer != MPI_PROC_NULL && h.high > 0) ph.recvs.push_back(message(high_peer, tag_low, 0, h.high, true));
    // Sides without a neighbour.
    for (int side = 0; side < 2; ++side) {
      const bool low = side == 0;
      const int width = low ? h.low : h.high;
      if ((low ? low_peer : high_peer) != MPI_PROC_NULL || width == 0 || h.boundary == Boundary::none) continue;
      for (std::size_t f = 0; f < shapes.size(); ++f) {
        const std::int64_t n = shapes[f].extents[static_cast<std::size_t>(d)];
        const std::int64_t stride = shapes[f].strides[static_cast<std::size_t>(d)];
        Fill fill;
        fill.field = static_cast<int>(f);
        fill.boundary = h.boundary;
        const std::int64_t ghost_begin = low ? 0 : n - width;
        const std::int64_t edge = low ? h.low : n - h.high - 1;  // outermost owned layer
        if (h.boundary == Boundary::zero) {
          fill.ghost = make_walk(shapes[f].strides, shapes[f].order, block_of(f, ghost_begin, width));
        } else {
          for (std::int64_t j = 1; j <= width; ++j) {
            const std::int64_t dst = low ? edge - j : edge + j;
            const std::int64_t src = h.boundary == Boundary::replicate ? edge : (low ? edge + j : edge - j);
            fill.copies.emplace_back(make_walk(shapes[f].strides, shapes[f].order, block_of(f, src, 1)),
                                     (dst - src) * stride);
          }
        }
        ph.fills.push_back(std::move(fill));
      }
    }
  }
  return phases;
}

/// The checks a plan makes before it exists: on every rank at once, with the
/// same message everywhere.
template <class Exec>
void validate(const Decomposition& dec, const HaloSpec& spec, const std::vector<FieldType<Exec>>& types,
              const std::vector<FieldShape>& shapes) {
  const std::string where = "khalo::Halo: ";
  std::string error;
  std::vector<std::int64_t> sig{static_cast<std::int64_t>(types.size())};
  std::vector<std::string> names{"the number of fields"};
  for (std::size_t f = 0; f < types.size(); ++f) {
    const std::string field = "field " + std::to_string(f);
    const FieldShape& s = shapes[f];
    sig.push_back(static_cast<std::int64_t>(s.extents.size()));
    names.push_back("the rank of " + field);
    sig.push_back(types[f].type_code);
    names.push_back("the element type of " + field + " (here " + types[f].type_name + ")");
    for (const std::int64_t v : layout_signature(s.extents, s.order)) {
      sig.push_back(v);
      names.push_back("the memory layout (stride order) of " + field);
    }
    if (!error.empty()) continue;
    if (static_cast<int>(s.extents.size()) != dec.rank()) {
      error = where + field + " has rank " + std::to_string(s.extents.size()) + " but the decomposition rank " +
              std::to_string(dec.rank());
      continue;
    }
    for (int d = 0; d < dec.rank() && error.empty(); ++d) {
      const DimHalo h = dec.is_split(d) ? spec.of(d) : DimHalo{0, 0, Boundary::none};
      const std::int64_t owned = dec.owned(d).size();
      const std::int64_t want = owned + h.low + h.high;
      if (h.low < 0 || h.high < 0) {
        error = where + "negative halo width in dimension " + std::to_string(d);
      } else if (s.extents[static_cast<std::size_t>(d)] != want) {
        error = where + field + " on rank " + std::to_string(dec.grid().rank()) + " has extent " +
                std::to_string(s.extents[static_cast<std::size_t>(d)]) + " in dimension " + std::to_string(d) +
                ", expected " + std::to_string(want) + " (" + std::to_string(owned) + " owned + " +
                std::to_string(h.low) + " + " + std::to_string(h.high) + " ghost layers)";
      }
    }
  }
  for (int d : dec.split_dims()) {
    const DimHalo h = spec.of(d);
    sig.insert(sig.end(), {h.low, h.high, static_cast<std::int64_t>(h.boundary)});
    names.insert(names.end(), 3, "the halo widths or boundary of dimension " + std::to_string(d));
    // Every rank can check every band: the split is deterministic.
    const int parts = dec.grid().dims()[static_cast<std::size_t>(dec.grid_dim_of(d))];
    const bool wrap = h.boundary == Boundary::periodic || dec.grid().periodic(dec.grid_dim_of(d));
    for (int c = 0; c < parts && error.empty(); ++c) {
      const std::int64_t n = dec.owned_at(d, c).size();
      const bool has_low = wrap || c > 0;
      const bool has_high = wrap || c < parts - 1;
      std::int64_t need = 0;
      if (has_low) need = std::max<std::int64_t>(need, h.high);
      if (has_high) need = std::max<std::int64_t>(need, h.low);
      if ((!has_low && h.low > 0) || (!has_high && h.high > 0)) {
        const int w = std::max(has_low ? 0 : h.low, has_high ? 0 : h.high);
        if (h.boundary == Boundary::replicate) need = std::max<std::int64_t>(need, 1);
        if (h.boundary == Boundary::reflect) need = std::max<std::int64_t>(need, w + 1);
      }
      if (n < need) {
        error = where + "the band at grid coordinate " + std::to_string(c) + " of dimension " + std::to_string(d) +
                " owns " + std::to_string(n) + " layer(s), fewer than the " + std::to_string(need) +
                " that its halo (widths " + std::to_string(h.low) + "/" + std::to_string(h.high) + ", boundary " +
                to_string(h.boundary) + ") needs; use fewer ranks or a narrower halo";
      }
    }
  }
  const std::string disagree = disagreement(dec.grid().comm(), sig, names);
  throw_if_any(dec.grid().comm(), disagree.empty() ? error : where + disagree);
}

}  // namespace khalo::detail
