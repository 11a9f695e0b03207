#pragma once
/// \file
/// HDF5 snapshots (docs/snapshots.md): one dataset per tensor, global logical
/// shape in C order whatever the memory format it was computed in, written
/// collectively by all ranks into a temporary file that is renamed over the
/// target only when complete; read back on any rank count and decomposition.

#include <khalo/decomposition.hpp>
#include <khalo/layout.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace khalo::io {

/// An I/O failure (missing or damaged file, wrong dataset, shape or type). Thrown
/// on every rank of the communicator with the same message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The element types of snapshot datasets.
enum class DType { float32 /**< IEEE binary32 (float) */, float64 /**< IEEE binary64 (double) */ };

/// "float32" or "float64".
inline std::string to_string(DType t) { return t == DType::float32 ? "float32" : "float64"; }

/// The DType of C++ type \p T (float or double; anything else does not compile).
template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "khalo::io: float or double data only");
  return std::is_same_v<T, float> ? DType::float32 : DType::float64;
}

/// What a dataset holds, from its shape, type and attributes.
struct DatasetInfo {
  std::string name;                  ///< the dataset's path ("/data")
  std::vector<std::int64_t> shape;   ///< its global logical shape, C order
  DType dtype = DType::float32;      ///< its element type
  std::string memory_format;         ///< the writer's, "" when absent (a file khalo did not write)
  std::int64_t ranks = 0;            ///< the writer's rank count, 0 when absent
  std::optional<std::int64_t> step;  ///< the `step` attribute, when present
};

/// A block of a dataset in global logical coordinates.
struct Hyperslab {
  std::vector<std::int64_t> offset;  ///< the block's first index, per dimension
  std::vector<std::int64_t> count;   ///< the block's extents
};

/// "file.h5:/group/name" -> {"file.h5", "/group/name"}; no ":" -> the default dataset.
struct PathSpec {
  std::string file;     ///< the file's path
  std::string dataset;  ///< the dataset's path inside it
};
/// Splits \p spec at its last ':' into file and dataset (\p default_dataset when there is no ':').
PathSpec parse_path_spec(const std::string& spec, const std::string& default_dataset = "/data");

namespace detail {

/// Advises the kernel to back the whole 2 MiB pages inside [\p p, \p p + \p bytes) with huge pages
/// (madvise(MADV_HUGEPAGE), where transparent huge pages are "madvise" only): first touching a large
/// buffer 4 KiB page by page costs more than the copy into it. Best effort. In src/io/snapshot_writer.cpp.
void advise_huge_pages(void* p, std::size_t bytes) noexcept;

/// An uninitialised host buffer of \p T for staging snapshot I/O, labelled `khalo::io::c_order` (Kokkos
/// Tools see it, and tests/fault fails it by that label), advised to use huge pages.
template <class T>
class Staging {
 public:
  Staging() = default;
  /// Allocates \p n elements, uninitialised.
  explicit Staging(std::size_t n) : view_(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing), n) {
    advise_huge_pages(view_.data(), n * sizeof(T));
  }
  /// The elements (nullptr when none).
  T* data() const noexcept { return view_.data(); }

 private:
  Kokkos::View<T*, Kokkos::HostSpace> view_;
};

/// Values in logical C order on the host: \p data points either into the caller's View or into \p staging.
template <class T>
struct HostCOrder {
  Staging<T> staging;       ///< the copy, when one was needed
  const T* data = nullptr;  ///< the values
};

/// The element strides of a dense array of extents \p e in C order.
inline std::vector<std::int64_t> c_order_strides(const std::vector<std::int64_t>& e) {
  std::vector<std::int64_t> s(e.size(), 1);
  for (std::size_t d = e.size(); d-- > 1;) s[d - 1] = s[d] * e[d];
  return s;
}

/// True when strides \p s lay out extents \p e densely in C order (dimensions of extent 1 aside).
inline bool is_c_order(const std::vector<std::int64_t>& e, const std::vector<std::int64_t>& s) {
  const auto c = c_order_strides(e);
  for (std::size_t d = 0; d < e.size(); ++d) {
    if (e[d] > 1 && s[d] != c[d]) return false;
  }
  return true;
}

/// Copies the array of extents \p ext from \p src (element strides \p ss) to \p dst (strides \p ds) on
/// the host, in parallel over the host execution space. When the two sides are fastest along different
/// dimensions the copy goes tile by tile (a transpose), so that both are read and written in runs of
/// whole cache lines.
template <class T>
void copy_strided(const T* src, const std::vector<std::int64_t>& ss, T* dst, const std::vector<std::int64_t>& ds,
                  const std::vector<std::int64_t>& ext) {
  const std::size_t rank = ext.size();
  for (const auto e : ext) {
    if (e == 0) return;
  }
  if (rank == 0) {
    *dst = *src;
    return;
  }
  // a: the dimension along which dst is fastest; b: the one along which src is.
  auto fastest = [&](const std::vector<std::int64_t>& st) {
    std::size_t best = rank - 1;
    for (std::size_t d = 0; d < rank; ++d) {
      if (ext[d] > 1 && (ext[best] == 1 || st[d] < st[best])) best = d;
    }
    return best;
  };
  const std::size_t a = fastest(ds), b = fastest(ss);
  const bool same = a == b;
  constexpr std::int64_t tile = 128 / static_cast<std::int64_t>(sizeof(T));  // two cache lines
  const std::int64_t ea = ext[a], eb = same ? 1 : ext[b];
  const std::int64_t btiles = (eb + tile - 1) / tile;
  std::vector<std::int64_t> outer_ext, outer_ss, outer_ds;  // every other dimension, slowest first
  for (std::size_t d = 0; d < rank; ++d) {
    if (d == a || d == b) continue;
    outer_ext.push_back(ext[d]);
    outer_ss.push_back(ss[d]);
    outer_ds.push_back(ds[d]);
  }
  std::int64_t outer = 1;
  for (const auto e : outer_ext) outer *= e;
  const std::int64_t sa = ss[a], da = ds[a], sb = ss[b], db = ds[b];
  Kokkos::parallel_for("khalo::io::copy_strided",
                       Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, outer * btiles),
                       [=](const std::int64_t item) {
                         std::int64_t rest = item / btiles, so = 0, dof = 0;
                         for (std::size_t d = outer_ext.size(); d-- > 0;) {
                           const std::int64_t i = rest % outer_ext[d];
                           rest /= outer_ext[d];
                           so += i * outer_ss[d];
                           dof += i * outer_ds[d];
                         }
                         if (same) {
                           const T* s = src + so;
                           T* t = dst + dof;
                           if (sa == 1 && da == 1) {
                             std::memcpy(t, s, static_cast<std::size_t>(ea) * sizeof(T));
                           } else {
                             for (std::int64_t j = 0; j < ea; ++j) t[j * da] = s[j * sa];
                           }
                           return;
                         }
                         const std::int64_t b0 = item % btiles * tile, b1 = std::min(eb, b0 + tile);
                         for (std::int64_t a0 = 0; a0 < ea; a0 += tile) {
                           const std::int64_t a1 = std::min(ea, a0 + tile);
                           for (std::int64_t i = b0; i < b1; ++i) {
                             const T* s = src + so + i * sb;
                             T* t = dst + dof + i * db;
                             for (std::int64_t j = a0; j < a1; ++j) t[j * da] = s[j * sa];
                           }
                         }
                       });
  Kokkos::DefaultHostExecutionSpace().fence();
}

/// How write() cuts a rank's block into pieces that go to the file one after another through one small
/// staging buffer: the dimensions slowest in the View's memory are taken one index at a time (\p split),
/// the next one in ranges of \p run (\p last), so that a piece is at most the target size and a contiguous
/// stretch of the View's memory.
struct PiecePlan {
  std::vector<std::int64_t> ext;   ///< the block's extents
  std::vector<std::size_t> split;  ///< dimensions taken one index at a time, slowest first
  std::size_t last = 0;            ///< the dimension cut into ranges, when \p has_last
  bool has_last = false;           ///< whether \p last is cut
  std::int64_t run = 1;            ///< the length of those ranges
  std::int64_t count = 1;          ///< the number of pieces
  std::int64_t max_elements = 0;   ///< the largest piece's element count

  /// The \p i-th piece, in the block's own coordinates.
  Hyperslab piece(std::int64_t i) const {
    Hyperslab h{std::vector<std::int64_t>(ext.size(), 0), ext};
    if (has_last) {
      const std::int64_t ranges = (ext[last] + run - 1) / run, j = i % ranges;
      i /= ranges;
      h.offset[last] = j * run;
      h.count[last] = std::min(run, ext[last] - j * run);
    }
    for (std::size_t k = split.size(); k-- > 0;) {
      const std::size_t d = split[k];
      h.offset[d] = i % ext[d];
      h.count[d] = 1;
      i /= ext[d];
    }
    return h;
  }
};

/// Cuts a block of extents \p ext whose View has strides \p strides into pieces of at most \p target
/// elements where possible (see PiecePlan).
inline PiecePlan plan_pieces(const std::vector<std::int64_t>& ext, const std::vector<std::int64_t>& strides,
                             std::int64_t target) {
  PiecePlan p;
  p.ext = ext;
  std::vector<std::size_t> order;
  for (std::size_t d = 0; d < ext.size(); ++d) {
    if (ext[d] > 1) order.push_back(d);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return strides[a] > strides[b]; });
  std::int64_t rest = khalo::detail::element_count(ext);
  for (std::size_t k = 0; k < order.size() && rest > target; ++k) {
    const std::size_t d = order[k];
    const std::int64_t inner = rest / ext[d];
    if (inner >= target) {
      p.split.push_back(d);
      p.count *= ext[d];
      rest = inner;
    } else {
      p.has_last = true;
      p.last = d;
      p.run = std::max<std::int64_t>(1, target / inner);
      p.count *= (ext[d] + p.run - 1) / p.run;
      rest = inner * p.run;
    }
  }
  p.max_elements = rest;
  return p;
}

/// The values of \p v in logical C order on the host: \p v's own memory when it is that already
/// (host-accessible, dense, C order), else one copy into a staging buffer.
template <class View>
HostCOrder<typename View::non_const_value_type> host_c_order(const View& v) {
  using T = typename View::non_const_value_type;
  const auto ext = khalo::detail::extents_of(v);
  const auto n = static_cast<std::size_t>(khalo::detail::element_count(ext));
  HostCOrder<T> out;
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible) {
    const auto strides = khalo::detail::strides_of(v);
    if (is_c_order(ext, strides)) {
      out.data = v.data();
      return out;
    }
    out.staging = Staging<T>(n);
    copy_strided<T>(v.data(), strides, out.staging.data(), c_order_strides(ext), ext);
  } else {
    // On the device first (its own transpose), then one copy to the host.
    using Right = Kokkos::View<typename View::non_const_data_type, Kokkos::LayoutRight, typename View::memory_space>;
    Kokkos::LayoutRight l;
    for (std::size_t d = 0; d < ext.size(); ++d) l.dimension[d] = static_cast<std::size_t>(ext[d]);
    Right dense(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing), l);
    Kokkos::deep_copy(dense, v);
    out.staging = Staging<T>(n);
    Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> host(out.staging.data(), n);
    Kokkos::View<T*, typename View::memory_space, Kokkos::MemoryUnmanaged> flat(dense.data(), n);
    Kokkos::deep_copy(host, flat);
  }
  out.data = out.staging.data();
  return out;
}

}  // namespace detail

/// Writes datasets into one snapshot file; collective over its communicator.
/// Nothing appears under the target name until commit(); a writer destroyed
/// (or killed) before that leaves any previous file there untouched.
///
/// The data go to a temporary `.NAME.khalo-tmp-*` beside the target. The
/// constructor removes temporaries of the same target left by writers that
/// died (older than an hour, or `KHALO_STALE_TEMP_SECONDS`; never one of a live
/// process on this host) and rank 0 says so in one line on stderr.
///
/// Failure contract: an error thrown by a method is thrown on every rank alike,
/// and abandons the snapshot (the temporary is removed, later calls throw). A
/// writer destroyed during stack unwinding (an exception from elsewhere, maybe
/// on one rank only) enters no collective: it removes the temporary and
/// abandons its file and communicator, and the job is expected to end
/// (docs/failure-policy.md). A writer destroyed without commit() and without an
/// exception is a collective call, like its constructor.
class SnapshotWriter {
 public:
  /// Opens a temporary file beside \p path for writing; collective over \p comm.
  SnapshotWriter(MPI_Comm comm, const std::string& path);
  /// Without commit(): removes the temporary (see the failure contract above).
  ~SnapshotWriter();
  SnapshotWriter(const SnapshotWriter&) = delete;
  SnapshotWriter& operator=(const SnapshotWriter&) = delete;

  /// Writes this rank's owned block \p owned (extents `dec.local_extents()`,
  /// any layout, any memory space) into dataset \p name of global shape
  /// `dec.global_extents()`.
  template <class View>
  void write(const std::string& name, const Decomposition& dec, const View& owned,
             std::optional<std::int64_t> step = std::nullopt) {
    using T = typename View::non_const_value_type;
    const auto extents = khalo::detail::extents_of(owned);
    std::string error;
    if (extents != dec.local_extents()) {
      error = "khalo::io::SnapshotWriter::write: the block to write has other extents than the rank's owned block";
    }
    Hyperslab slab{std::vector<std::int64_t>(extents.size()), extents};
    for (int d = 0; d < dec.rank(); ++d) slab.offset[static_cast<std::size_t>(d)] = dec.owned(d).begin;
    const std::string format = (View::rank == 4 || View::rank == 5) ? format_name(owned) : "contiguous";
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible) {
      const auto strides = khalo::detail::strides_of(owned);
      if (error.empty() && !detail::is_c_order(extents, strides)) {
        // Piece by piece through one staging buffer of a few MiB: the converted values are still in cache
        // when HDF5 copies them to the file, and no buffer the size of the block is allocated and touched.
        const auto plan = detail::plan_pieces(extents, strides, static_cast<std::int64_t>(piece_bytes / sizeof(T)));
        detail::Staging<T> buf(static_cast<std::size_t>(plan.max_elements));
        write_pieces(
            name, dec.global_extents(), slab, plan.count,
            [&](std::int64_t i, Hyperslab& piece) -> const void* {
              piece = plan.piece(i);
              const T* src = owned.data();
              for (std::size_t d = 0; d < extents.size(); ++d) {
                src += piece.offset[d] * strides[d];
                piece.offset[d] += slab.offset[d];
              }
              detail::copy_strided<T>(src, strides, buf.data(), detail::c_order_strides(piece.count), piece.count);
              return buf.data();
            },
            dtype_of<T>(), format, step);
        return;
      }
    }
    detail::HostCOrder<T> values;
    if (error.empty()) values = detail::host_c_order(owned);
    write_raw(name, dec.global_extents(), slab, values.data, dtype_of<T>(), format, step, error);
  }

  /// The same from a host buffer in C order; collective. A non-empty \p local_error
  /// (found by the caller on this rank) makes every rank throw it.
  void write_raw(const std::string& name, const std::vector<std::int64_t>& global_shape, const Hyperslab& mine,
                 const void* host_c_order, DType dtype, const std::string& memory_format,
                 std::optional<std::int64_t> step, const std::string& local_error = {});

  /// Closes the temporary file; every rank syncs its writes to disk (MPI_File_sync); then rank 0 renames
  /// it over the target and syncs the directory. Collective.
  void commit();
  /// The target path given at construction.
  const std::string& path() const noexcept;

 private:
  template <class View>
  static std::string format_name(const View& v) {
    if constexpr (View::rank == 4 || View::rank == 5) {
      return to_string(memory_format(v));
    } else {
      return "contiguous";
    }
  }
  /// The size of the pieces write() converts and writes one after another.
  static constexpr std::size_t piece_bytes = std::size_t{8} << 20;
  /// Gives the \p i-th piece of this rank's block: sets its block (global coordinates) and returns its
  /// values in C order, valid until the next call.
  using PieceSource = std::function<const void*(std::int64_t i, Hyperslab& piece)>;
  /// write_raw() for a block given as \p pieces pieces (this rank's count) by \p source; collective.
  void write_pieces(const std::string& name, const std::vector<std::int64_t>& global_shape, const Hyperslab& mine,
                    std::int64_t pieces, const PieceSource& source, DType dtype, const std::string& memory_format,
                    std::optional<std::int64_t> step, const std::string& local_error = {});
  struct Impl;
  std::unique_ptr<Impl> impl_;

 public:
  /// The values of \p v in logical C order, on the host.
  template <class View>
  static std::vector<typename View::non_const_value_type> to_host_c_order(const View& v) {
    using T = typename View::non_const_value_type;
    using Right = Kokkos::View<typename View::non_const_data_type, Kokkos::LayoutRight, typename View::memory_space>;
    Right dense(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing),
                khalo_layout_right(khalo::detail::extents_of(v)));
    Kokkos::deep_copy(dense, v);
    std::vector<T> out(dense.span());
    Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> host(out.data(), out.size());
    Kokkos::View<T*, typename View::memory_space, Kokkos::MemoryUnmanaged> flat(dense.data(), dense.span());
    Kokkos::deep_copy(host, flat);
    return out;
  }
  /// A LayoutRight with extents \p e.
  static Kokkos::LayoutRight khalo_layout_right(const std::vector<std::int64_t>& e) {
    Kokkos::LayoutRight l;
    for (std::size_t d = 0; d < e.size(); ++d) l.dimension[d] = static_cast<std::size_t>(e[d]);
    return l;
  }
};

/// Reads datasets of a snapshot (or any HDF5 file of float datasets); collective.
///
/// Files are untrusted. Before HDF5 parses a file in this process, rank 0 has
/// the helper `khalo-h5probe` parse it in a process of its own (posix_spawn,
/// no fork), so that a file on which the HDF5 library crashes or loops is
/// reported as "damaged file" on every rank. The helper is found through
/// `KHALO_H5PROBE` (its path; `none` trusts every file unchecked), else the
/// one built or installed with this khalo; a missing helper is an error.
/// `KHALO_H5PROBE_TIMEOUT` (seconds, default 60) bounds its run. Every size a
/// file declares is checked before anything is sized by it: a dataset larger
/// than the memory of all the job's nodes is refused. Each rank opens the file
/// on its own, so destroying a reader is never a collective.
class SnapshotReader {
 public:
  /// Opens \p path for reading (after the probe above); collective over \p comm. Throws
  /// khalo::io::Error on every rank for a missing or damaged file.
  SnapshotReader(MPI_Comm comm, const std::string& path);
  /// Closes the file; not collective.
  ~SnapshotReader();
  SnapshotReader(const SnapshotReader&) = delete;
  SnapshotReader& operator=(const SnapshotReader&) = delete;

  /// Every dataset in the file ("/a", "/g/b"), in creation order where the file tracks it, else by name.
  std::vector<std::string> datasets() const;
  /// True when the file has a dataset \p name.
  bool has(const std::string& name) const;
  /// Throws khalo::io::Error naming the dataset when it is missing, not float32/float64, or claims more
  /// elements than the job's memory could hold.
  DatasetInfo info(const std::string& name) const;

  /// Reads this rank's owned block of dataset \p name into \p owned (any
  /// layout, any memory space); the dataset's shape must be the
  /// decomposition's global shape and its type the View's.
  template <class View>
  void read(const std::string& name, const Decomposition& dec, const View& owned) const {
    using T = typename View::non_const_value_type;
    const auto extents = khalo::detail::extents_of(owned);
    std::string error;
    if (extents != dec.local_extents()) {
      error = "khalo::io::SnapshotReader::read: the block to read into has other extents than the rank's owned block";
    }
    Hyperslab slab{std::vector<std::int64_t>(extents.size()), extents};
    for (int d = 0; d < dec.rank(); ++d) slab.offset[static_cast<std::size_t>(d)] = dec.owned(d).begin;
    const auto n = static_cast<std::size_t>(khalo::detail::element_count(extents));
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible) {
      // Straight into the View when it is dense C order, else through one staging buffer and one copy.
      const auto strides = khalo::detail::strides_of(owned);
      if (error.empty() && detail::is_c_order(extents, strides)) {
        read_raw(name, dec.global_extents(), slab, owned.data(), dtype_of<T>(), error);
        return;
      }
      detail::Staging<T> host(error.empty() ? n : 0);
      read_raw(name, dec.global_extents(), slab, host.data(), dtype_of<T>(), error);
      detail::copy_strided<T>(host.data(), detail::c_order_strides(extents), owned.data(), strides, extents);
    } else {
      detail::Staging<T> host(error.empty() ? n : 0);
      read_raw(name, dec.global_extents(), slab, host.data(), dtype_of<T>(), error);
      using Right = Kokkos::View<typename View::non_const_data_type, Kokkos::LayoutRight, typename View::memory_space>;
      Right dense(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing),
                  SnapshotWriter::khalo_layout_right(extents));
      Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> src(host.data(), n);
      Kokkos::View<T*, typename View::memory_space, Kokkos::MemoryUnmanaged> flat(dense.data(), dense.span());
      Kokkos::deep_copy(flat, src);
      Kokkos::deep_copy(owned, dense);
    }
  }

  /// Reads the block \p mine of dataset \p name (whose shape must be \p
  /// global_shape, or anything when it is empty) into a host buffer in C order.
  void read_raw(const std::string& name, const std::vector<std::int64_t>& global_shape, const Hyperslab& mine,
                void* host_c_order, DType dtype, const std::string& local_error = {}) const;

  /// The file's path.
  const std::string& path() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace khalo::io
