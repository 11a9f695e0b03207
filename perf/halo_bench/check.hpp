#pragma once
// The value check, once per case before the timing: every field holds the tests'
// values (tests/common/global_values.hpp); khalo's halo must equal the tests' oracle
// (tests/common/halo_expected.hpp), every other scheme's halo must equal khalo's, and
// khalo's counters must show no message toward a side without a neighbour. A wrong
// halo on any rank throws on every rank, which fails the run.

#include "arrays.hpp"
#include "cases.hpp"
#include "geometry.hpp"
#include "schemes.hpp"

#include <halo_expected.hpp>

#include <khalo/decomposition.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>

#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

namespace halo_bench {

// The oracle's values stand for one field. Several fields must differ, so that a
// scheme that mixes them up fails: field f adds f * 2^23 to every nonzero value (the
// oracle's are below 2^23, zero stands for a zero-filled ghost). Exact in double; in
// float only for field 0, and the float cases have one field (check_schemes).
template <class T>
T field_value(int field, double value) {
  return static_cast<T>(value > 0 ? value + field * 8388608.0 : value);
}

// Owned elements of field `field` from their global index, ghosts the oracle's sentinel.
template <class T>
void fill_field(const Arr<T>& a, int field, const khalo::Decomposition& dec, const khalo::HaloSpec& spec) {
  namespace kt = khalo::test;
  kt::for_each_index(a.ext, [&](const Ext& i) {
    at(a, i) = kt::is_owned(dec, spec, i) ? field_value<T>(field, kt::value_at(kt::global_of(dec, spec, i)))
                                          : static_cast<T>(kt::sentinel);
  });
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

// Elements of field `field` that differ from what the oracle says they hold after an exchange.
template <class T>
std::int64_t count_unexpected(const Arr<T>& a, int field, const khalo::Decomposition& dec,
                              const khalo::HaloSpec& spec) {
  namespace kt = khalo::test;
  std::int64_t bad = 0;
  kt::for_each_index(a.ext, [&](const Ext& i) {
    if (!same_bits(at(a, i), field_value<T>(field, kt::expected_value(dec, spec, kt::global_of(dec, spec, i))))) ++bad;
  });
  return bad;
}

// Elements of the box n at alo in a that differ from those at blo in b.
template <class T>
std::int64_t count_diff(const Arr<T>& a, const Ext& alo, const Arr<T>& b, const Ext& blo, const Ext& n) {
  std::int64_t bad = 0;
  Ext ai(n.size()), bi(n.size());
  khalo::test::for_each_index(n, [&](const Ext& i) {
    for (std::size_t d = 0; d < n.size(); ++d) {
      ai[d] = i[d] + alo[d];
      bi[d] = i[d] + blo[d];
    }
    if (!same_bits(at(a, ai), at(b, bi))) ++bad;
  });
  return bad;
}

template <class T>
std::int64_t count_mismatch(const Arr<T>& a, const Arr<T>& b) {
  const Ext zero(a.ext.size(), 0);
  return count_diff(a, zero, b, zero, a.ext);
}

// Elements of raw_mpi's received buffers that differ from \p views' ghost layers.
template <class T>
std::int64_t count_raw_diff(const Raw<T>& raw, const std::vector<Arr<T>>& views) {
  std::int64_t bad = 0;
  raw.for_each_face([&](const auto& ph, const PhaseGeom& pg, int f, std::int64_t last) {
    const Ext zero(pg.face.size(), 0);
    if (pg.low != MPI_PROC_NULL)
      bad += count_diff(views[f], box_lo(pg, 0), raw.packed(ph.recv_low, pg, f), zero, pg.face);
    if (pg.high != MPI_PROC_NULL) {
      bad += count_diff(views[f], box_lo(pg, last), raw.packed(ph.recv_high, pg, f), zero, pg.face);
    }
  });
  return bad;
}

inline void fail_if_wrong(std::int64_t bad, const std::string& scheme, const Case& c, MPI_Comm comm) {
  std::int64_t total = 0;
  BENCH_MPI(MPI_Allreduce(&bad, &total, 1, MPI_INT64_T, MPI_SUM, comm));
  if (total > 0) {
    throw std::runtime_error("bench_halo: FAILED: scheme " + scheme + " produced a wrong halo in case " + c.name +
                             " (" + c.layout + "): " + std::to_string(total) + " element(s) differ");
  }
}

// One exchange of every scheme, from fields filled by fill_field: khalo's against the
// oracle, the others against khalo's. Leaves raw_mpi's send buffers packed.
template <class View, int F, class T>
void check_schemes(const khalo::Decomposition& dec, const khalo::HaloSpec& spec, const Case& c, const Geometry& geo,
                   KhaloScheme<View, F>& kh, Concat<T>& naive, Concat<T>& seed, Datatypes<T>& dt, Raw<T>& raw,
                   MPI_Comm comm) {
  static_assert(F == 1 || sizeof(T) == 8, "field_value: several float fields would not be exact");
  const Exec exec;
  std::vector<Arr<T>> karr;
  for (const auto& v : kh.views) karr.push_back(arr_of(v));
  kh.exchange();
  std::int64_t bad = 0;
  for (int f = 0; f < F; ++f) bad += count_unexpected(karr[f], f, dec, spec);
  fail_if_wrong(bad, "khalo", c, comm);
  {  // split phase, from sentinel ghosts again
    std::vector<Storage<T>> keep;
    std::vector<Arr<T>> ref;
    for (int f = 0; f < F; ++f) {
      keep.emplace_back(product(geo.padded));
      ref.push_back(dense_at(keep.back().get(), geo.padded, c.order));
      copy_box(exec, karr[f], Ext(geo.padded.size(), 0), ref.back(), Ext(geo.padded.size(), 0), geo.padded);
      fill_field(karr[f], f, dec, spec);
      // With HaloSpec::zero_fill_once, open sides keep the zeros of the first exchange: put
      // them back, as a caller that never writes ghost layers would have them.
      if (spec.zero_fill_once() && c.boundary == khalo::Boundary::zero) {
        for (const auto& pg : geo.phases) {
          const std::int64_t last = geo.padded[static_cast<std::size_t>(pg.dim)] - 1;
          if (pg.low == MPI_PROC_NULL) fill_box(exec, karr[f], box_lo(pg, 0), pg.face, T{});
          if (pg.high == MPI_PROC_NULL) fill_box(exec, karr[f], box_lo(pg, last), pg.face, T{});
        }
        exec.fence();
      }
    }
    kh.start().wait();
    bad = 0;
    for (int f = 0; f < F; ++f) bad += count_mismatch(karr[f], ref[f]);
    fail_if_wrong(bad, "khalo_split", c, comm);
  }
  naive.run();
  seed.run();
  dt.run();
  std::int64_t bad_naive = 0, bad_seed = 0, bad_dt = 0;
  for (int f = 0; f < F; ++f) {
    bad_naive += count_mismatch(karr[f], naive.result(f));
    bad_seed += count_mismatch(karr[f], seed.result(f));
    bad_dt += count_mismatch(karr[f], dt.fields[f]);
  }
  fail_if_wrong(bad_naive, "naive", c, comm);
  fail_if_wrong(bad_seed, "seed_fixed", c, comm);
  fail_if_wrong(bad_dt, "mpi_datatype", c, comm);
  raw.prepack(karr);
  raw.run();
  fail_if_wrong(count_raw_diff(raw, karr), "raw_mpi", c, comm);
}

// khalo's counters for one exchange: a side without a neighbour costs nothing, nor does a
// periodic dimension that one rank spans (copied in memory). khalo sends one message per
// neighbour, or one per run where a face's runs go in place through MPI (a face read directly
// by a neighbour on this node costs one: its "ready").
template <class View, int F>
khalo::HaloStats check_stats(KhaloScheme<View, F>& kh, const Geometry& geo, const Case& c, MPI_Comm comm) {
  kh.halo.reset_stats();
  kh.exchange();
  const khalo::HaloStats one = kh.halo.stats();
  const std::int64_t want_bytes =
      (geo.send_elems - geo.self_elems) * F * static_cast<std::int64_t>(sizeof(typename View::value_type));
  std::int64_t stats_bad = (one.messages < geo.messages - geo.self_messages || one.bytes_sent != want_bytes ||
                            one.bytes_received != want_bytes || one.bytes_packed > want_bytes || one.allocations != 0)
                               ? 1
                               : 0;
  fail_if_wrong(stats_bad, "khalo (HaloStats: messages or bytes toward a side without a neighbour)", c, comm);
  return one;
}

}  // namespace halo_bench
