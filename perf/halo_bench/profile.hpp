#pragma once
// Where khalo's exchange time goes: its kernels and regions through the Kokkos Tools
// callbacks (khalo_perf::KernelTimer), its MPI calls through the PMPI timer
// (mpi_timer.hpp), beside a row-wise copy of the same faces as the pack's yardstick and
// a plain loop of the same one-rank periodic copies as the boundary fill's.

#include "../bench_common.hpp"
#include "arrays.hpp"
#include "cases.hpp"
#include "geometry.hpp"
#include "khalo_scheme.hpp"
#include "mpi_timer.hpp"

#include <mpi.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

namespace halo_bench {

// Per exchange: [0] exchange, [1] pack, [2] unpack or direct read (the receive side's copy),
// [3] boundary fill, [4] MPI_Waitall,
// [5] posting sends and receives, [6] the rest (host code between the calls), [7] a
// row-wise copy (memcpy of every contiguous run) of the same faces, [8] the copies of
// every periodic dimension that one rank spans as a plain loop (0 where there is none).
constexpr std::size_t kProfileParts = 9;
struct Profile {
  std::array<double, kProfileParts> slowest{};  // the slowest rank's medians
  std::vector<double> per_rank;                 // rank r's medians at [9 r, 9 r + 9), on rank 0
};

// What khalo's boundary fill does for a periodic dimension that one rank spans, as one
// plain loop: each element of the low ghost layer from the last owned layer and the
// matching element of the high ghost layer from the first, both in one pass, so each cache
// line of the face is read and written once: no code can make these copies with less memory
// traffic. It is timed as the fill meets the memory: right after an exchange, on both ranks
// at once (back to back, it would run from caches that an exchange does not leave warm).
// One ghost layer per side, as geometry() lays out every case.
template <class T>
void periodic_copies_plain(const Arr<T>& a, const PhaseGeom& pg, std::int64_t padded) {
  const Ext lo = box_lo(pg, 0);
  const Walk2 w = walk2(a, lo, a, lo, pg.face);
  const std::int64_t s = a.str[static_cast<std::size_t>(pg.dim)], from_low = (padded - 2) * s,
                     to_high = (padded - 1) * s;
  T* base = a.data + w.d0;
  for (std::int64_t r = 0; r < w.rows; ++r) {
    std::int64_t off = 0, q = r;
    for (std::size_t k = 1; k < w.n.size(); ++k) {
      off += (q % w.n[k]) * w.ds[k];
      q /= w.n[k];
    }
    T* d = base + off;
    for (std::int64_t i = 0; i < w.n[0]; ++i) {
      T* e = d + i * w.ds[0];
      e[0] = e[from_low];
      e[to_high] = e[s];
    }
  }
}

template <class View, int F>
Profile profile_khalo(KhaloScheme<View, F>& kh, const Geometry& geo, const Case& c, const Options& opt, MPI_Comm comm) {
  using T = typename View::value_type;
  using KT = khalo_perf::KernelTimer;
  const Exec exec;
  int nranks = 1;
  MPI_Comm_size(comm, &nranks);
  // Medians over the profiled exchanges: a mean would take in whatever else the shared
  // machine did during one of them.
  std::vector<std::vector<double>> parts(7);
  for (int r = 0; r < opt.profile_reps; ++r) {
    BENCH_MPI(MPI_Barrier(comm));
    KT::reset();
    mpi_timer::wait_s = mpi_timer::post_s = 0;
    KT::start();
    mpi_timer::on = true;
    kh.exchange();
    mpi_timer::on = false;
    KT::stop();
    parts[0].push_back(KT::seconds("khalo::Halo::start") + KT::seconds("khalo::Halo::wait"));
    parts[1].push_back(KT::seconds("khalo::pack"));
    parts[2].push_back(KT::seconds("khalo::unpack") + KT::seconds("khalo::Halo::direct_read") +
                       KT::seconds("khalo::Halo::mapped_read"));
    parts[3].push_back(KT::seconds("khalo::zero") + KT::seconds("khalo::copy"));
    parts[4].push_back(mpi_timer::wait_s);
    parts[5].push_back(mpi_timer::post_s);
    double rest = parts[0].back();
    for (std::size_t k = 1; k < 6; ++k) rest -= parts[k].back();
    parts[6].push_back(rest);
  }
  auto part = [&](int k) { return khalo_perf::spread_of(parts[static_cast<std::size_t>(k)]).median; };
  std::vector<double> row_copy;
  {
    std::vector<Arr<T>> karr;
    for (const auto& v : kh.views) karr.push_back(arr_of(v));
    std::vector<Storage<T>> scratch;
    for (const auto& pg : geo.phases) scratch.emplace_back(product(pg.face) * F);
    for (auto& s : scratch) std::fill_n(s.get(), s.size, T{});
    for (int r = 0; r < opt.profile_reps; ++r) {
      const double t0 = MPI_Wtime();
      for (std::size_t p = 0; p < geo.phases.size(); ++p) {
        const PhaseGeom& pg = geo.phases[p];
        const std::int64_t last = geo.padded[static_cast<std::size_t>(pg.dim)] - 1;
        for (int f = 0; f < F; ++f) {
          const Arr<T> dst = dense_at(scratch[p].get() + product(pg.face) * f, pg.face, c.order);
          if (pg.low != MPI_PROC_NULL) copy_box(exec, karr[f], box_lo(pg, 1), dst, Ext(pg.face.size(), 0), pg.face);
          if (pg.high != MPI_PROC_NULL) {
            copy_box(exec, karr[f], box_lo(pg, last - 1), dst, Ext(pg.face.size(), 0), pg.face);
          }
        }
      }
      exec.fence();
      row_copy.push_back(MPI_Wtime() - t0);
    }
  }
  std::vector<double> periodic{0.0};
  if (geo.self_messages > 0) {
    periodic.clear();
    for (int r = 0; r < opt.profile_reps; ++r) {
      kh.exchange();
      BENCH_MPI(MPI_Barrier(comm));
      const double t0 = MPI_Wtime();
      for (const PhaseGeom& pg : geo.phases) {
        if (!pg.local) continue;
        for (const auto& v : kh.views)
          periodic_copies_plain(arr_of(v), pg, geo.padded[static_cast<std::size_t>(pg.dim)]);
      }
      periodic.push_back(MPI_Wtime() - t0);
    }
  }
  Profile prof;
  prof.slowest = {part(0),
                  part(1),
                  part(2),
                  part(3),
                  part(4),
                  part(5),
                  part(6),
                  khalo_perf::spread_of(row_copy).median,
                  khalo_perf::spread_of(periodic).median};
  constexpr int n = static_cast<int>(kProfileParts);
  prof.per_rank.resize(kProfileParts * static_cast<std::size_t>(nranks));
  BENCH_MPI(MPI_Gather(prof.slowest.data(), n, MPI_DOUBLE, prof.per_rank.data(), n, MPI_DOUBLE, 0, comm));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, prof.slowest.data(), n, MPI_DOUBLE, MPI_MAX, comm));
  return prof;
}

}  // namespace halo_bench
