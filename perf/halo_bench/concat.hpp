#pragma once
// The tensor-library schemes, naive and seed_fixed (schemes.hpp): an unpadded band
// per field; per split dimension, boundary rows into buffers, a message each way,
// a concatenation [low, band, high] into another array.

#include "arrays.hpp"
#include "cases.hpp"
#include "geometry.hpp"

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace halo_bench {

template <class T>
struct Concat {
  struct Phase {
    Storage<T> send_low, send_high, recv_low, recv_high;  // F fields back to back
    std::vector<Storage<T>> out;                          // per field
    StrideOrder buf_order, out_order;
    Ext out_ext;
  };
  bool naive = false;
  bool fresh_alloc = false;
  int fields = 0;
  std::vector<Storage<T>> band_mem;
  std::vector<Arr<T>> bands;
  std::vector<Phase> phases;
  const Geometry* geo = nullptr;
  MPI_Comm comm = MPI_COMM_NULL;

  Concat(bool is_naive, const Geometry& g, const Case& c, const std::vector<Arr<T>>& band_values, MPI_Comm cm,
         bool fresh)
      : naive(is_naive), fresh_alloc(fresh), fields(c.fields), geo(&g), comm(cm) {
    const Exec exec;
    for (const auto& b : band_values) {
      band_mem.emplace_back(product(b.ext));
      bands.push_back(dense_at(band_mem.back().get(), b.ext, b.order));
      copy_box(exec, b, Ext(b.ext.size(), 0), bands.back(), Ext(b.ext.size(), 0), b.ext);
    }
    StrideOrder cur_order = c.order;
    const StrideOrder def = identity_order(c.local.size());
    for (const auto& pg : g.phases) {
      Phase ph;
      const std::int64_t n = product(pg.face) * fields;
      ph.buf_order = naive ? def : cur_order;
      // PyTorch's cat keeps a memory format that all inputs share, else returns the default one:
      // the naive buffers are in the default format, so its result is too.
      ph.out_order = naive ? def : cur_order;
      ph.out_ext = pg.cur_ext;
      ph.out_ext[static_cast<std::size_t>(pg.dim)] += 2;
      ph.send_low = Storage<T>(n);
      ph.send_high = Storage<T>(n);
      ph.recv_low = Storage<T>(n);
      ph.recv_high = Storage<T>(n);
      // Every buffer is written once here, so that first-touch page faults stay out of the timing.
      std::fill_n(ph.send_low.get(), n, T{});
      std::fill_n(ph.send_high.get(), n, T{});
      std::fill_n(ph.recv_low.get(), n, T{});  // the fixed seed's open sides hold zeros from now on
      std::fill_n(ph.recv_high.get(), n, T{});
      for (int f = 0; f < fields; ++f) {
        ph.out.emplace_back(product(ph.out_ext));
        std::fill_n(ph.out.back().get(), product(ph.out_ext), T{});
      }
      cur_order = ph.out_order;
      phases.push_back(std::move(ph));
    }
  }

  Arr<T> buf(const Storage<T>& s, const Phase& ph, const PhaseGeom& pg, int f) const {
    return dense_at(s.get() + product(pg.face) * f, pg.face, ph.buf_order);
  }

  void run() {
    const Exec exec;
    std::vector<Arr<T>> cur = bands;
    for (std::size_t p = 0; p < phases.size(); ++p) {
      Phase& ph = phases[p];
      const PhaseGeom& pg = geo->phases[p];
      const auto dim = static_cast<std::size_t>(pg.dim);
      const Ext zero(pg.face.size(), 0);
      const std::int64_t n = pg.cur_ext[dim];
      for (int f = 0; f < fields; ++f) {
        Ext lo(pg.face.size(), 0);
        if (naive || pg.low != MPI_PROC_NULL) copy_box(exec, cur[f], lo, buf(ph.send_low, ph, pg, f), zero, pg.face);
        lo[dim] = n - 1;
        if (naive || pg.high != MPI_PROC_NULL) {
          copy_box(exec, cur[f], lo, buf(ph.send_high, ph, pg, f), zero, pg.face);
        }
        // The seed allocated zeros for the received rows every time (torch.zeros_like).
        if (naive && pg.low == MPI_PROC_NULL) fill_box(exec, buf(ph.recv_low, ph, pg, f), zero, pg.face, T{});
        if (naive && pg.high == MPI_PROC_NULL) fill_box(exec, buf(ph.recv_high, ph, pg, f), zero, pg.face, T{});
      }
      exec.fence();
      const int bytes = static_cast<int>(product(pg.face) * fields * static_cast<std::int64_t>(sizeof(T)));
      exchange_phase(pg, {ph.recv_low.get(), bytes, MPI_BYTE}, {ph.recv_high.get(), bytes, MPI_BYTE},
                     {ph.send_low.get(), bytes, MPI_BYTE}, {ph.send_high.get(), bytes, MPI_BYTE}, comm);
      std::vector<Arr<T>> next;
      for (int f = 0; f < fields; ++f) {
        if (fresh_alloc) ph.out[static_cast<std::size_t>(f)] = Storage<T>(product(ph.out_ext));
        const Arr<T> out = dense_at(ph.out[static_cast<std::size_t>(f)].get(), ph.out_ext, ph.out_order);
        Ext lo(pg.face.size(), 0);
        copy_box(exec, buf(ph.recv_low, ph, pg, f), zero, out, lo, pg.face);
        lo[dim] = 1;
        copy_box(exec, cur[f], zero, out, lo, pg.cur_ext);
        lo[dim] = n + 1;
        copy_box(exec, buf(ph.recv_high, ph, pg, f), zero, out, lo, pg.face);
        next.push_back(out);
      }
      exec.fence();
      cur = next;
    }
  }

  Arr<T> result(int f) const {
    const Phase& ph = phases.back();
    return dense_at(ph.out[static_cast<std::size_t>(f)].get(), ph.out_ext, ph.out_order);
  }
};

}  // namespace halo_bench
