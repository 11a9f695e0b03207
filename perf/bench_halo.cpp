// Halo exchange on MPI ranks: khalo beside the schemes it replaces, in one
// run, on the same data.
//   khalo         Halo::exchange (blocking)
//   khalo_split   Halo::start then HaloExchange::wait, nothing in between
//   naive         what the seed did: both boundary rows copied into contiguous (NCDHW)
//                 buffers on every rank, boundary ranks too; receive buffers in that
//                 default layout whatever the tensor's (zeroed on an open side every
//                 time); then a concatenation [low, band, high] into another tensor,
//                 which takes the default layout when the formats differ (PyTorch's cat)
//   seed_fixed    the fixed seed: buffers in the tensor's own layout, no copy toward a
//                 side without a neighbour, still a concatenation into another tensor
//   mpi_datatype  MPI_Type_create_subarray straight from and into the View, no pack
//   raw_mpi       pre-packed contiguous buffers holding exactly the halo's bytes, all
//                 messages in flight at once (MPI_Irecv/MPI_Isend/MPI_Waitall; two
//                 MPI_Sendrecv with --raw-sendrecv): the limit (no pack, no unpack, no
//                 boundary fill)
// Cases: the Wan decoder's activations (N = 1, C, D frames, H rows per rank, W; one
// ghost row along H; contiguous NCDHW and channels-last NDHWC) and a 3-D HPC grid
// (128^3 doubles per rank; 1, 2 or 3 split dimensions, periodic; 1 or 8 fields).
// Time of a scheme = the slowest rank's time for one exchange; median over
// repetitions after warm-up. Within every repetition the schemes take turns, so
// that the machine's load hits them alike, and each runs twice in a row and is timed
// the second time: every scheme is timed with its own data and buffers in cache, the
// state raw_mpi's limit assumes (timing them cold, right after another scheme has
// swept the cache, favoured whichever scheme ran second on the same data). Every scheme's halo is checked once per
// case against khalo's, and khalo's against the expected values; a wrong halo
// fails the run (exit 1).
//   mpirun -np 2 bench_halo [--quick] [--only wan|hpc] [--case TEXT] [--reps R]
//                           [--warmup W] [--budget S] [--fresh-alloc] [--raw-sendrecv] [--json FILE]
#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

#include "bench_common.hpp"

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

// Seconds spent inside MPI's point-to-point calls while `on` is set: this
// executable's definitions take the place of the MPI library's (the PMPI
// profiling interface), so khalo's own calls are timed without touching khalo.
namespace mpi_timer {
bool on = false;
double wait_s = 0, post_s = 0;
}  // namespace mpi_timer

extern "C" int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[]) {
  if (!mpi_timer::on) return PMPI_Waitall(count, requests, statuses);
  const double t0 = PMPI_Wtime();
  const int rc = PMPI_Waitall(count, requests, statuses);
  mpi_timer::wait_s += PMPI_Wtime() - t0;
  return rc;
}

extern "C" int MPI_Isend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm,
                         MPI_Request* request) {
  if (!mpi_timer::on) return PMPI_Isend(buf, count, type, dest, tag, comm, request);
  const double t0 = PMPI_Wtime();
  const int rc = PMPI_Isend(buf, count, type, dest, tag, comm, request);
  mpi_timer::post_s += PMPI_Wtime() - t0;
  return rc;
}

extern "C" int MPI_Irecv(void* buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
                         MPI_Request* request) {
  if (!mpi_timer::on) return PMPI_Irecv(buf, count, type, source, tag, comm, request);
  const double t0 = PMPI_Wtime();
  const int rc = PMPI_Irecv(buf, count, type, source, tag, comm, request);
  mpi_timer::post_s += PMPI_Wtime() - t0;
  return rc;
}

namespace {

using Exec = Kokkos::DefaultHostExecutionSpace;
using Mem = Kokkos::HostSpace;
using Ext = std::vector<std::int64_t>;
using khalo::StrideOrder;
using Json = nlohmann::json;

#define BENCH_MPI(call)                                                                                        \
  do {                                                                                                         \
    if ((call) != MPI_SUCCESS) throw std::runtime_error(std::string("bench_halo: MPI call failed: ") + #call); \
  } while (0)

const std::vector<std::string> kSchemes = {"khalo", "khalo_split", "naive", "seed_fixed", "mpi_datatype", "raw_mpi"};

struct Case {
  std::string name;
  std::string layout;
  Ext local;               // owned extents on every rank
  StrideOrder order;       // memory order of the fields, slowest first
  std::vector<int> split;  // split array dimensions, in exchange order
  khalo::Boundary boundary = khalo::Boundary::zero;
  int fields = 1;
  bool fp64 = false;
  bool show_stats = false;  // print khalo's per-rank counters
};

struct Options {
  int reps = 25;          // timed repetitions of a scheme, at most
  int min_reps = 5;       // at least
  double budget_s = 1.0;  // a scheme's timed repetitions per case stop after about this long
  int warmup = 1;
  int profile_reps = 10;
  bool fresh_alloc = false;
  bool raw_sendrecv = false;
};

std::int64_t product(const Ext& e) {
  std::int64_t n = 1;
  for (auto x : e) n *= x;
  return n;
}

std::string shape_text(const Ext& e) {
  std::string s = "(";
  for (std::size_t i = 0; i < e.size(); ++i) s += (i ? "," : "") + std::to_string(e[i]);
  return s + ")";
}

Ext dense_strides(const Ext& e, const StrideOrder& order) {
  Ext s(e.size(), 0);
  std::int64_t step = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    s[static_cast<std::size_t>(*it)] = step;
    step *= e[static_cast<std::size_t>(*it)];
  }
  return s;
}

StrideOrder identity_order(std::size_t rank) {
  StrideOrder o(rank);
  for (std::size_t d = 0; d < rank; ++d) o[d] = static_cast<int>(d);
  return o;
}

// A strided host array: data pointer, logical extents and strides, memory order.
template <class T>
struct Arr {
  T* data = nullptr;
  Ext ext, str;
  StrideOrder order;
};

template <class T>
Arr<T> dense_at(T* data, const Ext& ext, const StrideOrder& order) {
  return {data, ext, dense_strides(ext, order), order};
}

template <class View>
Arr<typename View::value_type> arr_of(const View& v) {
  Arr<typename View::value_type> a;
  a.data = v.data();
  for (std::size_t d = 0; d < static_cast<std::size_t>(View::rank); ++d) {
    a.ext.push_back(static_cast<std::int64_t>(v.extent(d)));
    a.str.push_back(static_cast<std::int64_t>(v.stride(d)));
  }
  a.order = khalo::stride_order(v);
  return a;
}

// Uninitialised storage, like torch.empty: pages are touched by whoever writes first.
template <class T>
struct Storage {
  std::unique_ptr<T[]> mem;
  std::int64_t size = 0;
  explicit Storage(std::int64_t n = 0) : mem(n > 0 ? new T[static_cast<std::size_t>(n)] : nullptr), size(n) {}
  T* get() const { return mem.get(); }
};

// A box of two arrays walked in the destination's memory order; dimensions are
// merged where both arrays store them one inside the other, so the innermost
// run is as long as it can be (a memcpy when both are unit-stride).
struct Walk2 {
  std::vector<std::int64_t> n, ss, ds;  // fastest first
  std::int64_t s0 = 0, d0 = 0, rows = 1, count = 0;
};

template <class T>
Walk2 walk2(const Arr<T>& src, const Ext& slo, const Arr<T>& dst, const Ext& dlo, const Ext& n) {
  Walk2 w;
  w.count = product(n);
  for (std::size_t d = 0; d < n.size(); ++d) {
    w.s0 += slo[d] * src.str[d];
    w.d0 += dlo[d] * dst.str[d];
  }
  for (auto it = dst.order.rbegin(); it != dst.order.rend(); ++it) {
    const auto d = static_cast<std::size_t>(*it);
    if (n[d] == 1) continue;
    if (!w.n.empty() && w.ss.back() * w.n.back() == src.str[d] && w.ds.back() * w.n.back() == dst.str[d]) {
      w.n.back() *= n[d];
    } else {
      w.n.push_back(n[d]);
      w.ss.push_back(src.str[d]);
      w.ds.push_back(dst.str[d]);
    }
  }
  if (w.n.empty()) {
    w.n = {1};
    w.ss = {1};
    w.ds = {1};
  }
  for (std::size_t k = 1; k < w.n.size(); ++k) w.rows *= w.n[k];
  return w;
}

// dst[dlo + i] = src[slo + i] for every i in the box n: a memcpy per run where
// both arrays are unit-stride, tiles of a 2-D transpose where the formats differ
// (as a tensor library's copy kernel does), an element loop otherwise.
template <class T>
void copy_box(const Exec& exec, const Arr<T>& src, const Ext& slo, const Arr<T>& dst, const Ext& dlo, const Ext& n) {
  const Walk2 w = walk2(src, slo, dst, dlo, n);
  if (w.count == 0) return;
  const T* s = src.data + w.s0;
  T* d = dst.data + w.d0;
  std::size_t t = 0;  // the source's unit-stride dimension, when the destination's is another one
  for (std::size_t k = 1; k < w.n.size() && w.ss[0] != 1 && w.ds[0] == 1; ++k) {
    if (w.ss[k] == 1) t = k;
  }
  if (t > 0) {
    constexpr std::int64_t tile = 16;
    const std::int64_t n0 = w.n[0], nt = w.n[t];
    const std::int64_t outer = w.count / (n0 * nt), tiles0 = (n0 + tile - 1) / tile, tilest = (nt + tile - 1) / tile;
    Kokkos::parallel_for("bench::transpose", Kokkos::RangePolicy<Exec>(exec, 0, outer * tiles0 * tilest),
                         [&](std::int64_t r) {
                           const std::int64_t b0 = (r % tiles0) * tile, bt = ((r / tiles0) % tilest) * tile;
                           std::int64_t o = r / (tiles0 * tilest), so = 0, doff = 0;
                           for (std::size_t k = 1; k < w.n.size(); ++k) {
                             if (k == t) continue;
                             const std::int64_t i = o % w.n[k];
                             o /= w.n[k];
                             so += i * w.ss[k];
                             doff += i * w.ds[k];
                           }
                           const std::int64_t e0 = std::min(n0, b0 + tile), et = std::min(nt, bt + tile);
                           for (std::int64_t j = bt; j < et; ++j) {
                             for (std::int64_t i = b0; i < e0; ++i) d[doff + i + j * w.ds[t]] = s[so + i * w.ss[0] + j];
                           }
                         });
    return;
  }
  const bool run = w.ss[0] == 1 && w.ds[0] == 1;
  Kokkos::parallel_for("bench::copy", Kokkos::RangePolicy<Exec>(exec, 0, w.rows), [&](std::int64_t r) {
    std::int64_t so = 0, doff = 0;
    for (std::size_t k = 1; k < w.n.size(); ++k) {
      const std::int64_t i = r % w.n[k];
      r /= w.n[k];
      so += i * w.ss[k];
      doff += i * w.ds[k];
    }
    if (run) {
      std::memcpy(d + doff, s + so, static_cast<std::size_t>(w.n[0]) * sizeof(T));
    } else {
      for (std::int64_t i = 0; i < w.n[0]; ++i) d[doff + i * w.ds[0]] = s[so + i * w.ss[0]];
    }
  });
}

template <class T>
void fill_box(const Exec& exec, const Arr<T>& dst, const Ext& lo, const Ext& n, T value) {
  const Walk2 w = walk2(dst, lo, dst, lo, n);
  if (w.count == 0) return;
  T* d = dst.data + w.d0;
  Kokkos::parallel_for("bench::fill", Kokkos::RangePolicy<Exec>(exec, 0, w.rows), [&](std::int64_t r) {
    std::int64_t off = 0;
    for (std::size_t k = 1; k < w.n.size(); ++k) {
      off += (r % w.n[k]) * w.ds[k];
      r /= w.n[k];
    }
    for (std::int64_t i = 0; i < w.n[0]; ++i) d[off + i * w.ds[0]] = value;
  });
}

// Calls f(index) for every index of the box [lo, lo + n), C order.
template <class F>
void for_each_index(const Ext& lo, const Ext& n, F&& f) {
  if (product(n) == 0) return;
  Ext i = lo;
  for (;;) {
    f(i);
    int d = static_cast<int>(n.size()) - 1;
    while (d >= 0) {
      const auto k = static_cast<std::size_t>(d);
      if (++i[k] < lo[k] + n[k]) break;
      i[k] = lo[k];
      --d;
    }
    if (d < 0) return;
  }
}

template <class T>
T& at(const Arr<T>& a, const Ext& i) {
  std::int64_t o = 0;
  for (std::size_t d = 0; d < i.size(); ++d) o += i[d] * a.str[d];
  return a.data[o];
}

// A value that depends on the field and the global index only, exact in float.
template <class T>
T value_at(int field, const Ext& global) {
  std::uint64_t h = static_cast<std::uint64_t>(field) + 1;
  for (auto g : global) h = h * 1000003u + static_cast<std::uint64_t>(g);
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return static_cast<T>((h >> 44) + 1);
}

template <class T>
bool same_bits(T a, T b) {
  return std::memcmp(&a, &b, sizeof(T)) == 0;
}

template <class T>
MPI_Datatype mpi_type() {
  return sizeof(T) == 8 ? MPI_DOUBLE : MPI_FLOAT;
}

// ---------------------------------------------------------------------------
// The geometry every scheme shares: per split dimension (a phase, in order),
// the neighbours, the face shape, and where the faces and ghosts lie.

struct PhaseGeom {
  int dim = 0;
  int low = MPI_PROC_NULL, high = MPI_PROC_NULL;
  Ext face;                       // extents of one face (= one ghost layer) in the padded array
  Ext inner_lo;                   // lo of the face box in the padded array, with dim's index to set
  Ext cur_ext;                    // the concatenation schemes' array before this phase
  int tag_low = 0, tag_high = 1;  // a message sent toward the sender's low / high side
};

struct Geometry {
  Ext padded;  // extents of a field with its ghost layers
  std::vector<PhaseGeom> phases;
  std::int64_t send_elems = 0;  // elements this rank sends per exchange, per field
  std::int64_t max_message_elems = 0;
  int messages = 0;
};

Geometry geometry(const khalo::Decomposition& dec, const Case& c) {
  Geometry g;
  g.padded = c.local;
  for (int d : c.split) g.padded[static_cast<std::size_t>(d)] += 2;
  Ext cur = c.local;
  for (std::size_t p = 0; p < c.split.size(); ++p) {
    PhaseGeom ph;
    ph.dim = c.split[p];
    const bool wrap = c.boundary == khalo::Boundary::periodic;
    ph.low = dec.neighbor(ph.dim, khalo::Side::low, wrap);
    ph.high = dec.neighbor(ph.dim, khalo::Side::high, wrap);
    ph.face = g.padded;
    ph.inner_lo = Ext(g.padded.size(), 0);
    for (std::size_t q = p + 1; q < c.split.size(); ++q) {  // later dims: owned layers only
      const auto e = static_cast<std::size_t>(c.split[q]);
      ph.face[e] -= 2;
      ph.inner_lo[e] = 1;
    }
    ph.face[static_cast<std::size_t>(ph.dim)] = 1;
    ph.cur_ext = cur;
    cur[static_cast<std::size_t>(ph.dim)] += 2;
    ph.tag_low = static_cast<int>(2 * p);
    ph.tag_high = ph.tag_low + 1;
    const std::int64_t n = product(ph.face);
    for (int peer : {ph.low, ph.high}) {
      if (peer == MPI_PROC_NULL) continue;
      g.send_elems += n;
      g.max_message_elems = std::max(g.max_message_elems, n);
      ++g.messages;
    }
    g.phases.push_back(ph);
  }
  return g;
}

// The face box of phase ph in the padded array, at layer `layer` of its dimension.
Ext box_lo(const PhaseGeom& ph, std::int64_t layer) {
  Ext lo = ph.inner_lo;
  lo[static_cast<std::size_t>(ph.dim)] = layer;
  return lo;
}

// ---------------------------------------------------------------------------
// The tensor-library schemes: an unpadded band per field; per split dimension,
// boundary rows into buffers, a message each way, a concatenation into another array.

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
      MPI_Request req[4];
      int nreq = 0;
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(ph.recv_low.get(), bytes, MPI_BYTE, pg.low, pg.tag_high, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(ph.recv_high.get(), bytes, MPI_BYTE, pg.high, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(ph.send_low.get(), bytes, MPI_BYTE, pg.low, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(ph.send_high.get(), bytes, MPI_BYTE, pg.high, pg.tag_high, comm, &req[nreq++]));
      }
      BENCH_MPI(MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE));
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

// ---------------------------------------------------------------------------
// MPI derived datatypes: one struct of subarrays per face (all fields), sent
// from and received into the Views themselves.

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

  Datatypes(const Geometry& g, const Case& c, std::vector<Arr<T>> views, MPI_Comm cm)
      : fields(std::move(views)), geo(&g), boundary(c.boundary), comm(cm) {
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
      MPI_Request req[4];
      int nreq = 0;
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(MPI_BOTTOM, 1, ph.recv_low, pg.low, pg.tag_high, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(MPI_BOTTOM, 1, ph.recv_high, pg.high, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(MPI_BOTTOM, 1, ph.send_low, pg.low, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(MPI_BOTTOM, 1, ph.send_high, pg.high, pg.tag_high, comm, &req[nreq++]));
      }
      BENCH_MPI(MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE));
      // Zero padding on a side without a neighbour, as khalo does on every exchange.
      if (boundary == khalo::Boundary::zero) {
        const std::int64_t last = geo->padded[static_cast<std::size_t>(pg.dim)] - 1;
        for (auto& a : fields) {
          if (pg.low == MPI_PROC_NULL) fill_box(exec, a, box_lo(pg, 0), pg.face, T{});
          if (pg.high == MPI_PROC_NULL) fill_box(exec, a, box_lo(pg, last), pg.face, T{});
        }
        exec.fence();
      }
    }
  }
};

// ---------------------------------------------------------------------------
// The limit: per phase two MPI_Sendrecv of contiguous buffers already packed.

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

  // Packs the faces of \p views (after a correct exchange) in C order, field after field.
  void prepack(const std::vector<Arr<T>>& views) {
    const Exec exec;
    for (std::size_t p = 0; p < phases.size(); ++p) {
      const PhaseGeom& pg = geo->phases[p];
      const std::int64_t last = geo->padded[static_cast<std::size_t>(pg.dim)] - 1;
      const StrideOrder c_order = identity_order(pg.face.size());
      for (int f = 0; f < fields; ++f) {
        const std::int64_t off = product(pg.face) * f;
        const Ext zero(pg.face.size(), 0);
        copy_box(exec, views[f], box_lo(pg, 1), dense_at(phases[p].send_low.get() + off, pg.face, c_order), zero,
                 pg.face);
        copy_box(exec, views[f], box_lo(pg, last - 1), dense_at(phases[p].send_high.get() + off, pg.face, c_order),
                 zero, pg.face);
      }
    }
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
      MPI_Request req[4];
      int nreq = 0;
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(ph.recv_low.get(), ph.bytes, MPI_BYTE, pg.low, pg.tag_high, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Irecv(ph.recv_high.get(), ph.bytes, MPI_BYTE, pg.high, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.low != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(ph.send_low.get(), ph.bytes, MPI_BYTE, pg.low, pg.tag_low, comm, &req[nreq++]));
      }
      if (pg.high != MPI_PROC_NULL) {
        BENCH_MPI(MPI_Isend(ph.send_high.get(), ph.bytes, MPI_BYTE, pg.high, pg.tag_high, comm, &req[nreq++]));
      }
      BENCH_MPI(MPI_Waitall(nreq, req, MPI_STATUSES_IGNORE));
    }
  }

  // Elements of the received buffers that differ from \p views' ghost layers.
  std::int64_t wrong(const std::vector<Arr<T>>& views) const {
    std::int64_t bad = 0;
    for (std::size_t p = 0; p < phases.size(); ++p) {
      const PhaseGeom& pg = geo->phases[p];
      const std::int64_t last = geo->padded[static_cast<std::size_t>(pg.dim)] - 1;
      const StrideOrder c_order = identity_order(pg.face.size());
      for (int f = 0; f < fields; ++f) {
        const std::int64_t off = product(pg.face) * f;
        const Ext zero(pg.face.size(), 0);
        if (pg.low != MPI_PROC_NULL) {
          bad += count_diff(views[f], box_lo(pg, 0), dense_at(phases[p].recv_low.get() + off, pg.face, c_order), zero,
                            pg.face);
        }
        if (pg.high != MPI_PROC_NULL) {
          bad += count_diff(views[f], box_lo(pg, last), dense_at(phases[p].recv_high.get() + off, pg.face, c_order),
                            zero, pg.face);
        }
      }
    }
    return bad;
  }

  static std::int64_t count_diff(const Arr<T>& a, const Ext& alo, const Arr<T>& b, const Ext& blo, const Ext& n) {
    std::int64_t bad = 0;
    Ext bi(n.size());
    for_each_index(Ext(n.size(), 0), n, [&](const Ext& i) {
      Ext ai = i;
      for (std::size_t d = 0; d < n.size(); ++d) {
        ai[d] += alo[d];
        bi[d] = i[d] + blo[d];
      }
      if (!same_bits(at(a, ai), at(b, bi))) ++bad;
    });
    return bad;
  }
};

// ---------------------------------------------------------------------------
// One case.

template <class View>
using Fields = std::vector<Arr<typename View::value_type>>;

struct SchemeTimes {
  std::string scheme;
  std::vector<double> t;        // per repetition, this rank
  std::vector<double> t_start;  // khalo_split: the time start() takes
  int reps = 0;                 // timed repetitions of this scheme
};

// The value a ghost or owned element must hold after an exchange.
template <class T>
T expected(const khalo::Decomposition& dec, const Case& c, const Ext& global_ext, int field, Ext idx) {
  for (int d : c.split) {
    const auto k = static_cast<std::size_t>(d);
    idx[k] += dec.owned(d).begin - 1;
    if (idx[k] < 0 || idx[k] >= global_ext[k]) {
      if (c.boundary != khalo::Boundary::periodic) return T{};
      idx[k] = (idx[k] + global_ext[k]) % global_ext[k];
    }
  }
  return value_at<T>(field, idx);
}

template <class T>
std::int64_t count_mismatch(const Arr<T>& a, const Arr<T>& b) {
  std::int64_t bad = 0;
  for_each_index(Ext(a.ext.size(), 0), a.ext, [&](const Ext& i) {
    if (!same_bits(at(a, i), at(b, i))) ++bad;
  });
  return bad;
}

void fail_if_wrong(std::int64_t bad, const std::string& scheme, const Case& c, MPI_Comm comm) {
  std::int64_t total = 0;
  BENCH_MPI(MPI_Allreduce(&bad, &total, 1, MPI_INT64_T, MPI_SUM, comm));
  if (total > 0) {
    throw std::runtime_error("bench_halo: FAILED: scheme " + scheme + " produced a wrong halo in case " + c.name +
                             " (" + c.layout + "): " + std::to_string(total) + " element(s) differ");
  }
}

template <class DataType, int F>
std::vector<Json> run_case(const Case& c, const Options& opt, MPI_Comm world) {
  using View = Kokkos::View<DataType, Kokkos::LayoutStride, Mem>;
  using T = typename View::value_type;
  const Exec exec;
  const int rank_count = static_cast<int>(c.local.size());
  if (rank_count != static_cast<int>(View::rank) || c.fields != F) throw std::logic_error("bench_halo: bad case");
  int me = 0, nranks = 1;
  MPI_Comm_rank(world, &me);
  MPI_Comm_size(world, &nranks);

  const khalo::ProcessGrid grid(world, std::vector<int>(c.split.size(), 0));
  Ext global = c.local;
  for (std::size_t g = 0; g < c.split.size(); ++g) {
    global[static_cast<std::size_t>(c.split[g])] *= grid.dims()[g];
  }
  const khalo::Decomposition dec(grid, global, c.split);
  const Geometry geo = geometry(dec, c);
  MPI_Comm comm;
  BENCH_MPI(MPI_Comm_dup(world, &comm));

  // The same values for every scheme: owned elements from their global index, ghosts a sentinel.
  const T sentinel = T(-7);
  auto init = [&](const Arr<T>& a, int f) {
    for_each_index(Ext(a.ext.size(), 0), a.ext, [&](const Ext& i) {
      bool owned = true;
      Ext g = i;
      for (int d : c.split) {
        const auto k = static_cast<std::size_t>(d);
        owned = owned && i[k] >= 1 && i[k] <= c.local[k];
        g[k] += dec.owned(d).begin - 1;
      }
      at(a, i) = owned ? value_at<T>(f, g) : sentinel;
    });
  };
  std::array<View, F> kv, dv;
  Fields<View> karr, darr, bands;
  std::vector<Storage<T>> band_mem;
  for (int f = 0; f < F; ++f) {
    kv[f] = khalo::allocate<DataType, Mem>("khalo." + std::to_string(f), geo.padded, c.order);
    dv[f] = khalo::allocate<DataType, Mem>("datatype." + std::to_string(f), geo.padded, c.order);
    karr.push_back(arr_of(kv[f]));
    darr.push_back(arr_of(dv[f]));
    init(karr.back(), f);
    init(darr.back(), f);
    // The band of the tensor-library schemes: owned rows only.
    band_mem.emplace_back(product(c.local));
    bands.push_back(dense_at(band_mem.back().get(), c.local, c.order));
    Ext lo(c.local.size(), 0);
    for (int d : c.split) lo[static_cast<std::size_t>(d)] = 1;
    copy_box(exec, karr.back(), lo, bands.back(), Ext(c.local.size(), 0), c.local);
  }
  const khalo::HaloSpec spec(1, c.boundary);
  auto halo = std::apply([&](const auto&... v) { return khalo::Halo<Exec, Mem>(dec, spec, v...); }, kv);
  auto khalo_exchange = [&] { std::apply([&](const auto&... v) { halo.exchange(exec, v...); }, kv); };
  auto khalo_start = [&] { return std::apply([&](const auto&... v) { return halo.start(exec, v...); }, kv); };
  Concat<T> naive(true, geo, c, bands, comm, opt.fresh_alloc);
  Concat<T> seed(false, geo, c, bands, comm, opt.fresh_alloc);
  band_mem.clear();  // each concatenation scheme holds its own copy
  Datatypes<T> dt(geo, c, darr, comm);
  Raw<T> raw(geo, c, comm, opt.raw_sendrecv);

  // ---- Correctness, once per case.
  khalo_exchange();
  std::int64_t bad = 0;
  for (int f = 0; f < F; ++f) {  // ghost layers against the expected values
    for (const auto& pg : geo.phases) {
      const std::int64_t last = geo.padded[static_cast<std::size_t>(pg.dim)] - 1;
      for (std::int64_t layer : {std::int64_t{0}, last}) {
        for_each_index(box_lo(pg, layer), pg.face, [&](const Ext& i) {
          if (!same_bits(at(karr[f], i), expected<T>(dec, c, global, f, i))) ++bad;
        });
      }
    }
  }
  fail_if_wrong(bad, "khalo", c, world);
  {  // split phase, from sentinel ghosts again
    std::vector<Storage<T>> keep;
    Fields<View> ref;
    for (int f = 0; f < F; ++f) {
      keep.emplace_back(product(geo.padded));
      ref.push_back(dense_at(keep.back().get(), geo.padded, c.order));
      copy_box(exec, karr[f], Ext(geo.padded.size(), 0), ref.back(), Ext(geo.padded.size(), 0), geo.padded);
      init(karr[f], f);
    }
    khalo_start().wait();
    bad = 0;
    for (int f = 0; f < F; ++f) bad += count_mismatch(karr[f], ref[f]);
    fail_if_wrong(bad, "khalo_split", c, world);
  }
  naive.run();
  seed.run();
  dt.run();
  std::int64_t bad_naive = 0, bad_seed = 0, bad_dt = 0;
  for (int f = 0; f < F; ++f) {
    bad_naive += count_mismatch(karr[f], naive.result(f));
    bad_seed += count_mismatch(karr[f], seed.result(f));
    bad_dt += count_mismatch(karr[f], darr[f]);
  }
  fail_if_wrong(bad_naive, "naive", c, world);
  fail_if_wrong(bad_seed, "seed_fixed", c, world);
  fail_if_wrong(bad_dt, "mpi_datatype", c, world);
  raw.prepack(karr);
  raw.run();
  fail_if_wrong(raw.wrong(karr), "raw_mpi", c, world);

  // ---- khalo's counters for one exchange: a side without a neighbour costs nothing.
  halo.reset_stats();
  khalo_exchange();
  const khalo::HaloStats one = halo.stats();
  const std::int64_t want_bytes = geo.send_elems * F * static_cast<std::int64_t>(sizeof(T));
  // khalo sends one message per neighbour, or one per run where a face's runs go in place.
  std::int64_t stats_bad = (one.messages < geo.messages || one.bytes_sent != want_bytes ||
                            one.bytes_received != want_bytes || one.bytes_packed > want_bytes || one.allocations != 0)
                               ? 1
                               : 0;
  fail_if_wrong(stats_bad, "khalo (HaloStats: messages or bytes toward a side without a neighbour)", c, world);

  // ---- Timing: schemes take turns within each repetition. A slow scheme stops after
  // the repetitions that fit its time budget (at least min_reps): the same count on every rank.
  std::vector<SchemeTimes> times;
  for (const auto& s : kSchemes) times.push_back({s, {}, {}, opt.reps});
  const std::int64_t alloc_before = halo.stats().allocations;
  halo.reset_stats();
  auto run_scheme = [&](SchemeTimes& st, bool keep) {
    BENCH_MPI(MPI_Barrier(comm));
    const double t0 = MPI_Wtime();
    double ts = 0;
    if (st.scheme == "khalo") {
      khalo_exchange();
    } else if (st.scheme == "khalo_split") {
      auto pending = khalo_start();
      ts = MPI_Wtime() - t0;
      pending.wait();
    } else if (st.scheme == "naive") {
      naive.run();
    } else if (st.scheme == "seed_fixed") {
      seed.run();
    } else if (st.scheme == "mpi_datatype") {
      dt.run();
    } else {
      raw.run();
    }
    const double t = MPI_Wtime() - t0;
    if (keep) {
      st.t.push_back(t);
      st.t_start.push_back(ts);
    }
    return t;
  };
  std::vector<double> first(times.size(), 0.0);
  for (int r = 0; r < std::max(opt.warmup, 1); ++r) {
    for (std::size_t s = 0; s < times.size(); ++s) first[s] = run_scheme(times[s], false);
  }
  first = khalo_perf::max_over_ranks(first, comm);
  for (std::size_t s = 0; s < times.size(); ++s) {
    const int fit = static_cast<int>(opt.budget_s / std::max(2 * first[s], 1e-9));
    times[s].reps = std::max(std::min(opt.reps, fit), std::min(opt.reps, opt.min_reps));
  }
  for (int r = 0; r < opt.reps; ++r) {
    // A new order every repetition, the same on every rank: what ran before a scheme
    // changes its time (in a fixed cycle, the scheme after raw_mpi was 1.3-1.5x slower).
    std::vector<std::size_t> order(times.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(r)));
    for (std::size_t k : order) {
      auto& st = times[k];
      if (r < st.reps) {
        run_scheme(st, false);
        run_scheme(st, true);
      }
    }
  }
  const khalo::HaloStats timed = halo.stats();  // each timed repetition runs twice
  const std::int64_t exchanges = 2 * (std::max(opt.warmup, 1) + times[0].reps + times[1].reps);

  // ---- Where khalo's time goes: its kernels and regions, through the Kokkos Tools callbacks.
  // Per exchange: [0] exchange, [1] pack, [2] unpack, [3] boundary fill, [4] MPI_Waitall,
  // [5] posting sends and receives; medians over the profiled exchanges (a mean would
  // take in whatever else the shared machine did during one of them).
  using KT = khalo_perf::KernelTimer;
  std::vector<std::vector<double>> parts(7);
  for (int r = 0; r < opt.profile_reps; ++r) {
    BENCH_MPI(MPI_Barrier(comm));
    KT::reset();
    mpi_timer::wait_s = mpi_timer::post_s = 0;
    KT::start();
    mpi_timer::on = true;
    khalo_exchange();
    mpi_timer::on = false;
    KT::stop();
    parts[0].push_back(KT::seconds("khalo::Halo::start") + KT::seconds("khalo::Halo::wait"));
    parts[1].push_back(KT::seconds("khalo::pack"));
    parts[2].push_back(KT::seconds("khalo::unpack"));
    parts[3].push_back(KT::seconds("khalo::zero") + KT::seconds("khalo::copy"));
    parts[4].push_back(mpi_timer::wait_s);
    parts[5].push_back(mpi_timer::post_s);
    double rest = parts[0].back();  // [6] host code between the calls
    for (std::size_t k = 1; k < 6; ++k) rest -= parts[k].back();
    parts[6].push_back(rest);
  }
  auto part = [&](int k) { return khalo_perf::spread_of(parts[static_cast<std::size_t>(k)]).median; };
  // What packing the same faces costs with a row-wise copy (memcpy of every contiguous run):
  // the yardstick for khalo's pack kernel.
  std::vector<double> row_copy;
  {
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
  // The slowest rank's medians: [0]-[5] as above, [6] the rest (host code between the
  // calls), [7] the row-wise copy of the same faces.
  double breakdown[8] = {part(0), part(1), part(2), part(3),
                         part(4), part(5), 0.0,     khalo_perf::spread_of(row_copy).median};
  std::vector<double> breakdown_all(8 * static_cast<std::size_t>(nranks));
  BENCH_MPI(MPI_Gather(breakdown, 8, MPI_DOUBLE, breakdown_all.data(), 8, MPI_DOUBLE, 0, comm));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, breakdown, 8, MPI_DOUBLE, MPI_MAX, comm));

  // ---- Report.
  std::int64_t send_bytes = want_bytes, msg_bytes = geo.max_message_elems * F * static_cast<std::int64_t>(sizeof(T));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &send_bytes, 1, MPI_INT64_T, MPI_MAX, comm));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &msg_bytes, 1, MPI_INT64_T, MPI_MAX, comm));
  std::vector<khalo_perf::Spread> spreads, start_spreads;
  for (auto& st : times) {
    spreads.push_back(khalo_perf::spread_of(khalo_perf::max_over_ranks(st.t, comm)));
    start_spreads.push_back(khalo_perf::spread_of(khalo_perf::max_over_ranks(st.t_start, comm)));
  }
  // Per-rank counters (per exchange) for the table of open sides.
  std::int64_t mine[8] = {geo.phases[0].low != MPI_PROC_NULL,
                          geo.phases[0].high != MPI_PROC_NULL,
                          one.messages,
                          one.bytes_sent,
                          one.bytes_packed,
                          one.faces_packed,
                          timed.allocations,
                          alloc_before};
  std::vector<std::int64_t> all(8 * static_cast<std::size_t>(nranks));
  BENCH_MPI(MPI_Gather(mine, 8, MPI_INT64_T, all.data(), 8, MPI_INT64_T, 0, comm));
  std::int64_t alloc_timed = timed.allocations;
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &alloc_timed, 1, MPI_INT64_T, MPI_MAX, comm));
  MPI_Comm_free(&comm);

  std::vector<Json> records;
  if (me != 0) return records;
  const double raw_t = spreads[5].median, naive_t = spreads[2].median;
  std::printf("\n== %s  %s  %d ranks  field %s %s x%d, %zu split dim(s) (%s), messages up to %.1f KiB, %s boundary\n",
              c.name.c_str(), c.layout.c_str(), nranks, shape_text(geo.padded).c_str(), sizeof(T) == 8 ? "f64" : "f32",
              F, c.split.size(), khalo::ProcessGrid::shape_text(grid.dims()).c_str(), msg_bytes / 1024.0,
              khalo::to_string(c.boundary).c_str());
  std::printf("%-13s %11s %21s %10s %5s %9s %8s %9s\n", "scheme", "median ms", "q1 .. q3 ms", "min ms", "reps", "GB/s",
              "x raw", "naive/x");
  for (std::size_t s = 0; s < times.size(); ++s) {
    const auto& sp = spreads[s];
    std::printf("%-13s %11.4f %10.4f .. %-8.4f %10.4f %5d %9.2f %8.2f %9.2f\n", times[s].scheme.c_str(),
                sp.median * 1e3, sp.q1 * 1e3, sp.q3 * 1e3, sp.min * 1e3, times[s].reps,
                static_cast<double>(send_bytes) / sp.median * 1e-9, sp.median / raw_t, naive_t / sp.median);
    Json j = {{"case", c.name},
              {"layout", c.layout},
              {"ranks", nranks},
              {"scheme", times[s].scheme},
              {"bytes", send_bytes},
              {"message_bytes", msg_bytes},
              {"median_s", sp.median},
              {"q1_s", sp.q1},
              {"q3_s", sp.q3},
              {"min_s", sp.min},
              {"reps", times[s].reps},
              {"shape", geo.padded},
              {"fields", F},
              {"dtype", sizeof(T) == 8 ? "float64" : "float32"},
              {"split_dims", c.split.size()},
              {"grid", khalo::ProcessGrid::shape_text(grid.dims())},
              {"boundary", khalo::to_string(c.boundary)},
              {"fresh_alloc", opt.fresh_alloc},
              {"raw_sendrecv", opt.raw_sendrecv}};
    if (times[s].scheme == "khalo_split") j["start_median_s"] = start_spreads[s].median;
    if (times[s].scheme == "khalo") {
      j["profile"] = {{"exchange_s", breakdown[0]}, {"pack_s", breakdown[1]},          {"unpack_s", breakdown[2]},
                      {"fill_s", breakdown[3]},     {"mpi_wait_s", breakdown[4]},      {"mpi_post_s", breakdown[5]},
                      {"rest_s", breakdown[6]},     {"row_copy_pack_s", breakdown[7]}, {"reps", opt.profile_reps}};
      Json ranks = Json::array();  // the same per rank: who waits for whom
      for (int r = 0; r < nranks; ++r) {
        const double* v = &breakdown_all[8 * static_cast<std::size_t>(r)];
        ranks.push_back({{"exchange_s", v[0]},
                         {"pack_s", v[1]},
                         {"unpack_s", v[2]},
                         {"fill_s", v[3]},
                         {"mpi_wait_s", v[4]},
                         {"mpi_post_s", v[5]}});
      }
      j["profile"]["per_rank"] = ranks;
      j["allocations_while_timed"] = alloc_timed;
      // HaloStats of one exchange on every rank: an open side adds no message and no packed byte.
      Json per_rank = Json::array();
      for (int r = 0; r < nranks; ++r) {
        const std::int64_t* v = &all[8 * static_cast<std::size_t>(r)];
        per_rank.push_back({{"rank", r},
                            {"low_neighbour", v[0] != 0},
                            {"high_neighbour", v[1] != 0},
                            {"messages", v[2]},
                            {"bytes_sent", v[3]},
                            {"bytes_packed", v[4]},
                            {"faces_packed", v[5]},
                            {"allocations_at_plan", v[7]}});
      }
      j["stats_per_exchange"] = per_rank;
    }
    records.push_back(j);
  }
  std::printf(
      "khalo, per exchange (medians of %d profiled exchanges, slowest rank each): pack %.4f ms, unpack %.4f ms, "
      "boundary fill "
      "%.4f ms, MPI_Waitall %.4f ms, MPI_Isend/Irecv %.4f ms, the rest %.4f ms, of %.4f ms; split phase: start() "
      "takes %.4f ms\n"
      "  a row-wise copy (memcpy per contiguous run) of the same faces takes %.4f ms: khalo's pack takes %.1fx that\n",
      opt.profile_reps, breakdown[1] * 1e3, breakdown[2] * 1e3, breakdown[3] * 1e3, breakdown[4] * 1e3,
      breakdown[5] * 1e3, breakdown[6] * 1e3, breakdown[0] * 1e3, start_spreads[1].median * 1e3, breakdown[7] * 1e3,
      breakdown[7] > 0 ? breakdown[1] / breakdown[7] : 0.0);
  if (c.show_stats) {
    std::printf("khalo HaloStats per exchange (after %lld timed exchanges: %lld new allocations)\n",
                static_cast<long long>(exchanges), static_cast<long long>(alloc_timed));
    std::printf("%5s %4s %5s %9s %11s %13s %13s %12s\n", "rank", "low", "high", "messages", "bytes sent",
                "bytes packed", "faces packed", "allocations");
    for (int r = 0; r < nranks; ++r) {
      const std::int64_t* v = &all[8 * static_cast<std::size_t>(r)];
      std::printf("%5d %4s %5s %9lld %11lld %13lld %13lld %12lld\n", r, v[0] ? "yes" : "open", v[1] ? "yes" : "open",
                  static_cast<long long>(v[2]), static_cast<long long>(v[3]), static_cast<long long>(v[4]),
                  static_cast<long long>(v[5]), static_cast<long long>(v[7]));
    }
    std::printf(
        "(an open side adds no message and no packed byte: each rank's counts are those of its neighbours only)\n");
  }
  std::fflush(stdout);
  return records;
}

std::vector<Case> wan_cases(bool quick) {
  const StrideOrder right = {0, 1, 2, 3, 4}, last = {0, 2, 3, 4, 1};
  // (C, D, H rows per rank, W); every value of the grid appears at least once.
  std::vector<std::array<std::int64_t, 4>> shapes =
      quick ? std::vector<std::array<std::int64_t, 4>>{{8, 2, 4, 16}}
            : std::vector<std::array<std::int64_t, 4>>{{96, 4, 30, 104},  {96, 4, 120, 208}, {96, 6, 60, 416},
                                                       {192, 6, 60, 104}, {192, 4, 30, 416}, {384, 4, 30, 104},
                                                       {384, 6, 30, 208}};
  std::vector<Case> cases;
  for (const auto& [layout, order] : {std::pair{"contiguous", right}, std::pair{"channels_last_3d", last}}) {
    bool first = true;
    for (const auto& s : shapes) {
      Case c;
      c.name = "wan_c" + std::to_string(s[0]) + "_d" + std::to_string(s[1]) + "_h" + std::to_string(s[2]) + "_w" +
               std::to_string(s[3]);
      c.layout = layout;
      c.local = {1, s[0], s[1], s[2], s[3]};
      c.order = order;
      c.split = {3};
      c.show_stats = first;
      first = false;
      cases.push_back(c);
    }
  }
  return cases;
}

std::vector<Case> hpc_cases(bool quick) {
  const std::int64_t n = quick ? 16 : 128;
  std::vector<Case> cases;
  for (int fields : {1, 8}) {
    for (int dims = 1; dims <= 3; ++dims) {
      if (quick && dims == 2) continue;
      Case c;
      c.name = "hpc_" + std::to_string(n) + "cubed_split" + std::to_string(dims) + "_f" + std::to_string(fields);
      c.layout = "layout_right";
      c.local = {n, n, n};
      c.order = {0, 1, 2};
      for (int d = 0; d < dims; ++d) c.split.push_back(d);
      c.boundary = khalo::Boundary::periodic;
      c.fields = fields;
      c.fp64 = true;
      cases.push_back(c);
    }
  }
  return cases;
}

// Copy bandwidth of this machine, for context: memcpy of \p bytes, median of repetitions.
double memcpy_gbps(std::size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::vector<double> t;
  for (int r = 0; r < 12; ++r) {
    const double t0 = MPI_Wtime();
    std::memcpy(b.data(), a.data(), bytes);
    t.push_back(MPI_Wtime() - t0);
    a[r] = b[bytes - 1 - static_cast<std::size_t>(r)];  // keep the copy observable
  }
  return static_cast<double>(bytes) / khalo_perf::spread_of(t).median * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"Halo exchange: khalo beside naive, fixed seed, MPI datatypes and raw MPI (time = max over ranks)"};
  bool quick = false;
  std::string only, filter, json;
  Options opt;
  app.add_flag("--quick", quick, "tiny shapes, few repetitions (a smoke test)");
  app.add_option("--only", only, "wan or hpc")->check(CLI::IsMember({"wan", "hpc"}));
  app.add_option("--case", filter, "only cases whose name contains this text");
  app.add_option("--reps", opt.reps, "timed repetitions per scheme")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed repetitions first")->check(CLI::NonNegativeNumber);
  app.add_option("--budget", opt.budget_s, "seconds of timed repetitions per scheme and case, about")
      ->check(CLI::PositiveNumber);
  app.add_flag("--fresh-alloc", opt.fresh_alloc,
               "naive and seed_fixed concatenate into newly allocated tensors every time (as PyTorch on a CPU), "
               "paying first-touch page faults; default: into tensors allocated once (as a caching allocator)");
  app.add_flag("--raw-sendrecv", opt.raw_sendrecv,
               "raw_mpi as two MPI_Sendrecv per split dimension (serialises the directions) instead of "
               "nonblocking sends and receives all in flight");
  app.add_option("--json", json, "write the records here (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return runtime.world_rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  if (quick) {
    opt.reps = std::min(opt.reps, 3);
    opt.warmup = std::min(opt.warmup, 1);
    opt.profile_reps = 2;
  }
  const bool root = runtime.world_rank() == 0;
  std::vector<Case> cases;
  if (only != "hpc") {
    for (auto& c : wan_cases(quick)) cases.push_back(c);
  }
  if (only != "wan") {
    for (auto& c : hpc_cases(quick)) cases.push_back(c);
  }
  if (root) {
    std::printf(
        "bench_halo: %d ranks; %s; %s; time = slowest rank, median of up to %d repetitions (at least %d; about "
        "%.1f s per scheme and case) after %d warm-up\n",
        runtime.world_size(), khalo_perf::cpu_model().c_str(), khalo::build_info().c_str(), opt.reps,
        std::min(opt.reps, opt.min_reps), opt.budget_s, std::max(opt.warmup, 1));
    std::printf("memcpy on this machine: %.1f GB/s (1 MiB, in cache), %.1f GB/s (256 MiB)\n", memcpy_gbps(1 << 20),
                memcpy_gbps(std::size_t{256} << 20));
    std::printf(
        "GB/s = halo bytes the busiest rank sends per exchange / time; x raw = time / raw_mpi's time; naive/x = "
        "naive's time / time\n");
  }
  std::vector<Json> records;
  int status = 0;
  try {
    for (const auto& c : cases) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      std::vector<Json> r;
      if (!c.fp64) {
        r = run_case<float*****, 1>(c, opt, MPI_COMM_WORLD);
      } else if (c.fields == 1) {
        r = run_case<double***, 1>(c, opt, MPI_COMM_WORLD);
      } else {
        r = run_case<double***, 8>(c, opt, MPI_COMM_WORLD);
      }
      records.insert(records.end(), r.begin(), r.end());
    }
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "%s\n", e.what());
    status = 1;
  }
  if (root && status == 0 && !json.empty()) khalo_perf::write_records(json, std::move(records));
  return status;
}
