#pragma once
// The geometry every scheme shares: per split dimension (a phase, in khalo's phase
// order, so that every scheme moves the same bytes), the neighbours, the face shape,
// and where the faces and ghosts lie; and a phase's messages, which every scheme but
// the Sendrecv form of raw_mpi posts alike.

#include "arrays.hpp"
#include "cases.hpp"

#include <khalo/decomposition.hpp>
#include <khalo/detail/halo/phases.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#define BENCH_MPI(call)                                                                                        \
  do {                                                                                                         \
    if ((call) != MPI_SUCCESS) throw std::runtime_error(std::string("bench_halo: MPI call failed: ") + #call); \
  } while (0)

namespace halo_bench {

struct PhaseGeom {
  int dim = 0;
  int low = MPI_PROC_NULL, high = MPI_PROC_NULL;
  Ext face;                       // extents of one face (= one ghost layer) in the padded array
  Ext inner_lo;                   // lo of the face box in the padded array, with dim's index to set
  Ext cur_ext;                    // the concatenation schemes' array before this phase
  int tag_low = 0, tag_high = 1;  // a message sent toward the sender's low / high side
  bool local = false;             // a periodic dimension this rank spans alone: both neighbours are itself
};

struct Geometry {
  Ext padded;  // extents of a field with its ghost layers
  std::vector<PhaseGeom> phases;
  std::int64_t send_elems = 0;  // elements this rank sends per exchange, per field
  std::int64_t max_message_elems = 0;
  int messages = 0;
  // Of those, what goes to this rank itself (a periodic dimension that one rank spans): the
  // other schemes send it through MPI, khalo copies it in memory.
  std::int64_t self_elems = 0;
  int self_messages = 0;
};

inline Geometry geometry(const khalo::Decomposition& dec, const khalo::HaloSpec& spec, const Case& c) {
  Geometry g;
  g.padded = c.local;
  for (int d : c.split) g.padded[static_cast<std::size_t>(d)] += 2;
  Ext cur = c.local;
  const std::vector<int> order = khalo::detail::phase_order(dec, spec);
  for (std::size_t p = 0; p < order.size(); ++p) {
    PhaseGeom ph;
    ph.dim = order[p];
    const bool wrap = c.boundary == khalo::Boundary::periodic;
    ph.low = dec.neighbor(ph.dim, khalo::Side::low, wrap);
    ph.high = dec.neighbor(ph.dim, khalo::Side::high, wrap);
    ph.face = g.padded;
    ph.inner_lo = Ext(g.padded.size(), 0);
    for (std::size_t q = p + 1; q < order.size(); ++q) {  // later dims: owned layers only
      const auto e = static_cast<std::size_t>(order[q]);
      ph.face[e] -= 2;
      ph.inner_lo[e] = 1;
    }
    ph.face[static_cast<std::size_t>(ph.dim)] = 1;
    ph.cur_ext = cur;
    cur[static_cast<std::size_t>(ph.dim)] += 2;
    ph.tag_low = static_cast<int>(2 * p);
    ph.tag_high = ph.tag_low + 1;
    const std::int64_t n = product(ph.face);
    const int me = dec.grid().rank();
    ph.local = ph.low == me && ph.high == me;
    for (int peer : {ph.low, ph.high}) {
      if (peer == MPI_PROC_NULL) continue;
      g.send_elems += n;
      g.max_message_elems = std::max(g.max_message_elems, n);
      ++g.messages;
      if (ph.local) {
        g.self_elems += n;
        ++g.self_messages;
      }
    }
    g.phases.push_back(ph);
  }
  return g;
}

// The face box of phase ph in the padded array, at layer `layer` of its dimension.
inline Ext box_lo(const PhaseGeom& ph, std::int64_t layer) {
  Ext lo = ph.inner_lo;
  lo[static_cast<std::size_t>(ph.dim)] = layer;
  return lo;
}

// One message of a phase, as MPI_Isend and MPI_Irecv take it.
struct Message {
  void* buf;
  int count;
  MPI_Datatype type;
};

// A phase's messages all in flight at once: the receives from the sides that have a
// neighbour, then the sends toward them, then MPI_Waitall. A message sent toward the
// sender's low side carries tag_low, so the low ghost receives tag_high.
inline void exchange_phase(const PhaseGeom& pg, const Message& recv_low, const Message& recv_high,
                           const Message& send_low, const Message& send_high, MPI_Comm comm) {
  MPI_Request req[4];
  int nreq = 0;
  if (pg.low != MPI_PROC_NULL) {
    BENCH_MPI(MPI_Irecv(recv_low.buf, recv_low.count, recv_low.type, pg.low, pg.tag_high, comm, &req[nreq++]));
  }
  if (pg.high != MPI_PROC_NULL) {
    BENCH_MPI(MPI_Irecv(recv_high.buf, recv_high.count, recv_high.type, pg.high, pg.tag_low, comm, &req[nreq++]));
  }
  if (pg.low != MPI_PROC_NULL) {
    BENCH_MPI(MPI_Isend(send_low.buf, send_low.count, send_low.type, pg.low, pg.tag_low, comm, &req[nreq++]));
  }
  if (pg.high != MPI_PROC_NULL) {
    BENCH_MPI(MPI_Isend(send_high.buf, send_high.count, send_high.type, pg.high, pg.tag_high, comm, &req[nreq++]));
  }
  BENCH_MPI(MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE));
}

}  // namespace halo_bench
