#pragma once
/// \file
/// HDF5 snapshots (docs/snapshots.md): one dataset per tensor, global logical
/// shape in C order whatever the memory format it was computed in, written
/// collectively by all ranks into a temporary file that is renamed over the
/// target only when complete; read back on any rank count and decomposition.

#include <khalo/decomposition.hpp>
#include <khalo/io/dataset.hpp>
#include <khalo/io/detail/c_order.hpp>
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
        // Piece by piece through one staging buffer of a few MiB, no buffer the size of the block. The pieces
        // are cut in the file's order (C order), not the View's, so that each goes to the file in long
        // contiguous runs, and the file is written front to back: while one piece is converted, the disk
        // already writes the previous ones (write_pieces), and the commit's sync has little left to do.
        // Where the cut falls on the View's fastest dimension, it falls on whole cache lines.
        const auto plan = detail::plan_pieces(
            extents, detail::c_order_strides(extents), static_cast<std::int64_t>(piece_bytes / sizeof(T)),
            detail::fastest_dimension(extents, strides), static_cast<std::int64_t>(cache_line_bytes / sizeof(T)));
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
  /// The size of the pieces write() and write_raw() write one after another (write() cuts the View's
  /// fastest dimension only on whole cache lines, which may make a piece up to 4 x larger; see
  /// detail::plan_pieces).
  static constexpr std::size_t piece_bytes = std::size_t{8} << 20;
  /// The cache line those cuts fall on.
  static constexpr std::size_t cache_line_bytes = 64;
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
