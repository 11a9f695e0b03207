#pragma once
// The mpi_datatype scheme (schemes.hpp): MPI derived datatypes, one struct of
// subarrays per face (all fields), sent from and received into the Views themselves.

#include "arrays.hpp"
#include "cases.hpp"
#include "geometry.hpp"

#include <mpi.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace halo_bench {

template <class T>
MPI_Datatype mpi_type() {
  return sizeof(T) == 8 ? MPI_DOUBLE : MPI_FLOAT;
}

template <class T>
MPI_Datatype faces_type(const std::vector<Arr<T>>& fields, const Ext& lo, const Ext& n) {
  std::vector<MPI_Datatype> types;
  std::vector<MPI_Aint> disp;
  for (const auto& a : fields) {
    const std::size_t rank = a.ext.size();
    std::vector<int> sizes(rank), sub(rank), starts(rank);
    for (std::size_t k = 0; k < rank; ++k) {  // C order = the array's memory order
      const auto d = static_cast<std::size_t>(a.order[k]);
      sizes[k] = static_cast<int>(a.ext[d]);
      sub[k] = static_cast<int>(n[d]);
      starts[k] = static_cast<int>(lo[d]);
    }
    MPI_Datatype t;
    BENCH_MPI(MPI_Type_create_subarray(static_cast<int>(rank), sizes.data(), sub.data(), starts.data(), MPI_ORDER_C,
                                       mpi_type<T>(), &t));
    types.push_back(t);
    MPI_Aint addr;
    BENCH_MPI(MPI_Get_address(a.data, &addr));
    disp.push_back(addr);
  }
  std::vector<int> ones(fields.size(), 1);
  MPI_Datatype all;
  BENCH_MPI(MPI_Type_create_struct(static_cast<int>(fields.size()), ones.data(), disp.data(), types.data(), &all));
  BENCH_MPI(MPI_Type_commit(&all));
  for (auto& t : types) MPI_Type_free(&t);
  return all;
}

template <class T>
struct Datatypes {
  struct Phase {
    MPI_Datatype send_low = MPI_DATATYPE_NULL, send_high = MPI_DATATYPE_NULL;
    MPI_Datatype recv_low = MPI_DATATYPE_NULL, recv_high = MPI_DATATYPE_NULL;
  };
  std::vector<Arr<T>> fields;
  std::vector<Phase> phases;
  const Geometry* geo = nullptr;
  khalo::Boundary boundary;
  MPI_Comm comm;
  bool fill_every_exchange = false;
  bool filled = false;

  Datatypes(const Geometry& g, const Case& c, std::vector<Arr<T>> views, MPI_Comm cm, bool fill_every)
      : fields(std::move(views)), geo(&g), boundary(c.boundary), comm(cm), fill_every_exchange(fill_every) {
    for (const auto& pg : g.phases) {
      const std::int64_t last = g.padded[static_cast<std::size_t>(pg.dim)] - 1;
      Phase ph;
      ph.send_low = faces_type(fields, box_lo(pg, 1), pg.face);
      ph.send_high = faces_type(fields, box_lo(pg, last - 1), pg.face);
      ph.recv_low = faces_type(fields, box_lo(pg, 0), pg.face);
      ph.recv_high = faces_type(fields, box_lo(pg, last), pg.face);
      phases.push_back(ph);
    }
  }
  ~Datatypes() {
    for (auto& ph : phases) {
      for (MPI_Datatype* t : {&ph.send_low, &ph.send_high, &ph.recv_low, &ph.recv_high}) MPI_Type_free(t);
    }
  }
  Datatypes(const Datatypes&) = delete;
  Datatypes& operator=(const Datatypes&) = delete;

  void run() {
    const Exec exec;
    for (std::size_t p = 0; p < phases.size(); ++p) {
      const Phase& ph = phases[p];
      const PhaseGeom& pg = geo->phases[p];
      exchange_phase(pg, {MPI_BOTTOM, 1, ph.recv_low}, {MPI_BOTTOM, 1, ph.recv_high}, {MPI_BOTTOM, 1, ph.send_low},
                     {MPI_BOTTOM, 1, ph.send_high}, comm);
      // Zero padding on a side without a neighbour, as khalo does: once (nobody writes the
      // ghost layers in between), or on every exchange with --fill-every-exchange.
      if (boundary == khalo::Boundary::zero && (fill_every_exchange || !filled)) {
        const std::int64_t last = geo->padded[static_cast<std::size_t>(pg.dim)] - 1;
        for (auto& a : fields) {
          if (pg.low == MPI_PROC_NULL) fill_box(exec, a, box_lo(pg, 0), pg.face, T{});
          if (pg.high == MPI_PROC_NULL) fill_box(exec, a, box_lo(pg, last), pg.face, T{});
        }
        exec.fence();
      }
    }
    filled = true;
  }
};

}  // namespace halo_bench
