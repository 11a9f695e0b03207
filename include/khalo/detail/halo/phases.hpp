#pragma once
/// \file
/// The geometry of an exchange: for one set of field shapes, the messages and fills of every
/// phase (one phase per split dimension, each spanning the ghost layers of the phases before it,
/// which fills edges and corners). Not public.

#include <khalo/decomposition.hpp>
#include <khalo/detail/block.hpp>
#include <khalo/detail/halo/boundary.hpp>
#include <khalo/detail/halo/fields.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace khalo::detail {

inline std::size_t align_up(std::size_t n, std::size_t a) { return a == 0 ? n : (n + a - 1) / a * a; }

/// The split dimensions in the order their phases run: the periodic ones that one rank spans
/// first (their phases are copies in memory), then the others, each group in split_dims()
/// order; the same on every rank. A later phase's blocks span the ghost layers of the earlier
/// ones, so a face that goes through MPI covers whole lines of those dimensions: a 128^3 grid
/// in LayoutRight split along its slowest dimension (process grid 2x1x1, periodic) sends one
/// contiguous plane in place instead of 128 runs of 128 elements to pack. Edges and corners
/// hold the same values in either order, because a periodic copy commutes with every boundary
/// policy. Open sides of one-rank dimensions stay in place: a zero fill does not commute with
/// Boundary::none (untouched).
inline std::vector<int> phase_order(const Decomposition& dec, const HaloSpec& spec) {
  auto local = [&](int d) {
    const int parts = dec.grid().dims()[static_cast<std::size_t>(dec.grid_dim_of(d))];
    return parts == 1 && rule_of(spec.of(d).boundary).wraps;
  };
  std::vector<int> order;
  for (int d : dec.split_dims()) {
    if (local(d)) order.push_back(d);
  }
  for (int d : dec.split_dims()) {
    if (!local(d)) order.push_back(d);
  }
  return order;
}

/// Builds the messages and fills of every phase for one set of shapes.
/// Phases run over the split dimensions in phase_order(); a phase's blocks span
/// the ghost layers of the dimensions exchanged before it, which is what fills
/// edges and corners. Local: what only this rank can see wrong (a message too
/// large for MPI's int count) goes to \p error, for the caller to make
/// collective before anyone throws.
template <class Exec>
std::vector<Phase> build_phases(const Decomposition& dec, const HaloSpec& spec,
                                const std::vector<FieldType<Exec>>& types, const std::vector<FieldShape>& shapes,
                                std::string& error) {
  const std::vector<int> split = phase_order(dec, spec);
  std::vector<Phase> phases(split.size());
  for (std::size_t p = 0; p < split.size(); ++p) {
    const int d = split[p];
    const DimHalo h = spec.of(d);
    const BoundaryRule rule = rule_of(h.boundary);
    const bool wrap = rule.wraps;
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
      }
      return m;
    };
    Phase& ph = phases[p];
    if (wrap && low_peer == dec.grid().rank()) {
      // Periodic with one rank along d: each ghost side is a copy of the owned layers at the
      // far end, made in memory (as a fill) instead of sent to itself through MPI. The
      // validation keeps source and ghost apart (at least max(low, high) owned layers).
      for (std::size_t f = 0; f < shapes.size(); ++f) {
        const std::int64_t n = shapes[f].extents[static_cast<std::size_t>(d)];
        const std::int64_t stride = shapes[f].strides[static_cast<std::size_t>(d)];
        const std::int64_t owned = n - h.low - h.high;
        Fill fill;
        fill.field = static_cast<int>(f);
        fill.boundary = Boundary::periodic;
        auto walk = [&](std::int64_t begin, std::int64_t count) {
          return make_walk(shapes[f].strides, shapes[f].order, block_of(f, begin, count));
        };
        if (h.low > 0) add_shift_copy(fill.copies, walk(owned, h.low), -owned * stride);   // last owned -> low ghost
        if (h.high > 0) add_shift_copy(fill.copies, walk(h.low, h.high), owned * stride);  // first owned -> high
        ph.fills.push_back(std::move(fill));
      }
      continue;
    }
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
      if ((low ? low_peer : high_peer) != MPI_PROC_NULL || width == 0 || !rule.fills) continue;
      for (std::size_t f = 0; f < shapes.size(); ++f) {
        const std::int64_t n = shapes[f].extents[static_cast<std::size_t>(d)];
        const std::int64_t stride = shapes[f].strides[static_cast<std::size_t>(d)];
        Fill fill;
        fill.field = static_cast<int>(f);
        fill.boundary = h.boundary;
        const std::int64_t ghost_begin = low ? 0 : n - width;
        const std::int64_t edge = low ? h.low : n - h.high - 1;  // outermost owned layer
        if (rule.zeroes) {
          fill.ghost = make_walk(shapes[f].strides, shapes[f].order, block_of(f, ghost_begin, width));
        } else {
          for (std::int64_t j = 1; j <= width; ++j) {
            const std::int64_t dst = low ? edge - j : edge + j;
            const std::int64_t src = low ? edge + rule.source_inward(j) : edge - rule.source_inward(j);
            add_shift_copy(fill.copies, make_walk(shapes[f].strides, shapes[f].order, block_of(f, src, 1)),
                           (dst - src) * stride);
          }
        }
        ph.fills.push_back(std::move(fill));
      }
    }
  }
  return phases;
}

}  // namespace khalo::detail
