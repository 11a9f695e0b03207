#pragma once
// The raw_mpi scheme (schemes.hpp), the limit: per phase, contiguous buffers
// packed once before the timing, holding exactly the halo's bytes; no pack, no
// unpack, no boundary fill.

#include "arrays.hpp"
#include "cases.hpp"
#include "geometry.hpp"

#include <mpi.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

namespace halo_bench {

template <class T>
struct Raw {
  struct Phase {
    Storage<T> send_low, send_high, recv_low, recv_high;
    int bytes = 0;
  };
  std::vector<Phase> phases;
  const Geometry* geo = nullptr;
  MPI_Comm comm;
  int fields;
  bool sendrecv;

  Raw(const Geometry& g, const Case& c, MPI_Comm cm, bool use_sendrecv)
      : geo(&g), comm(cm), fields(c.fields), sendrecv(use_sendrecv) {
    for (const auto& pg : g.phases) {
      const std::int64_t n = product(pg.face) * fields;
      if (n * static_cast<std::int64_t>(sizeof(T)) > INT_MAX) throw std::runtime_error("bench_halo: face too large");
      Phase ph;
      ph.bytes = static_cast<int>(n * static_cast<std::int64_t>(sizeof(T)));
      for (Storage<T>* s : {&ph.send_low, &ph.send_high, &ph.recv_low, &ph.recv_high}) {
        *s = Storage<T>(n);
        std::fill_n(s->get(), n, T{});
      }
      phases.push_back(std::move(ph));
    }
  }

  // Field f's face in buffer s of phase pg: in C order, field after field.
  Arr<T> packed(const Storage<T>& s, const PhaseGeom& pg, int f) const {
    return dense_at(s.get() + product(pg.face) * f, pg.face, identity_order(pg.face.size()));
  }

  // Calls fn(phase, its geometry, field, the last layer of the phase's dimension) for every face.
  template <class Fn>
  void for_each_face(Fn&& fn) const {
    for (std::size_t p = 0; p < phases.size(); ++p) {
      const PhaseGeom& pg = geo->phases[p];
      const std::int64_t last = geo->padded[static_cast<std::size_t>(pg.dim)] - 1;
      for (int f = 0; f < fields; ++f) fn(phases[p], pg, f, last);
    }
  }

  // Packs the faces of \p views (after a correct exchange).
  void prepack(const std::vector<Arr<T>>& views) {
    const Exec exec;
    for_each_face([&](const Phase& ph, const PhaseGeom& pg, int f, std::int64_t last) {
      const Ext zero(pg.face.size(), 0);
      copy_box(exec, views[f], box_lo(pg, 1), packed(ph.send_low, pg, f), zero, pg.face);
      copy_box(exec, views[f], box_lo(pg, last - 1), packed(ph.send_high, pg, f), zero, pg.face);
    });
    exec.fence();
  }

  // All four messages of a phase in flight at once, as khalo and the other schemes do.
  // (Two MPI_Sendrecv in a row, the textbook form, serialise the two directions: on 2
  // ranks each rank has one neighbour, so one direction waits for the other; --raw-sendrecv.)
  void run() {
    for (std::size_t p = 0; p < phases.size(); ++p) {
      Phase& ph = phases[p];
      const PhaseGeom& pg = geo->phases[p];
      if (sendrecv) {
        BENCH_MPI(MPI_Sendrecv(ph.send_low.get(), ph.bytes, MPI_BYTE, pg.low, pg.tag_low, ph.recv_high.get(), ph.bytes,
                               MPI_BYTE, pg.high, pg.tag_low, comm, MPI_STATUS_IGNORE));
        BENCH_MPI(MPI_Sendrecv(ph.send_high.get(), ph.bytes, MPI_BYTE, pg.high, pg.tag_high, ph.recv_low.get(),
                               ph.bytes, MPI_BYTE, pg.low, pg.tag_high, comm, MPI_STATUS_IGNORE));
        continue;
      }
      exchange_phase(pg, {ph.recv_low.get(), ph.bytes, MPI_BYTE}, {ph.recv_high.get(), ph.bytes, MPI_BYTE},
                     {ph.send_low.get(), ph.bytes, MPI_BYTE}, {ph.send_high.get(), ph.bytes, MPI_BYTE}, comm);
    }
  }
};

}  // namespace halo_bench
