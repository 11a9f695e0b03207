// SnapshotWriter: every rank writes its block collectively into a temporary
// file (AtomicFile), which commit() makes durable and renames over the target.
//
// Failure contract:
// - An error that a writer method throws is thrown on every rank alike; the
//   writer then closes the file collectively (every rank is there), removes
//   the temporary, and refuses further calls. The target is untouched.
// - A writer destroyed during stack unwinding (an exception from elsewhere,
//   maybe on this rank only) enters no collective: it removes the temporary
//   (best effort, from whichever rank gets there) and abandons its HDF5 file
//   and communicator, whose close would be collective. The job is expected to
//   end (docs/failure-policy.md: a rank failing alone ends the job); HDF5 closes the
//   abandoned file at MPI_Finalize, which is collective again, so a
//   throw-only program must not go on to finalize while other ranks wait.
// - A writer destroyed without commit() and without an exception (every rank
//   dropping it, as they made it) closes collectively and removes the
//   temporary.
#include "atomic_file.hpp"
#include "collective.hpp"
#include "h5.hpp"
#include "h5_attributes.hpp"
#include "h5_links.hpp"
#include "slab.hpp"

#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/io/snapshot.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <exception>
#include <functional>

namespace khalo::io {

namespace detail {

void advise_huge_pages(void* p, std::size_t bytes) noexcept {
#ifdef MADV_HUGEPAGE
  // Debian's default is "madvise": without this a 128 MiB buffer takes 32768 page faults on first touch
  // (0.18 s measured here), with it 64 (0.05 s).
  constexpr std::uintptr_t huge = std::uintptr_t{2} << 20;
  const auto begin = (reinterpret_cast<std::uintptr_t>(p) + huge - 1) & ~(huge - 1);
  const auto end = (reinterpret_cast<std::uintptr_t>(p) + bytes) & ~(huge - 1);
  if (p != nullptr && end > begin) (void)::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace detail

using namespace khalo::io::detail;

struct SnapshotWriter::Impl {
  enum class State { open, committed, discarded };
  khalo::detail::Comm comm;
  AtomicFile atomic;
  File file;
  State state = State::open;
  int rank = 0;
  int uncaught = 0;  // std::uncaught_exceptions() when the writer was made
  std::string where;

  // Collective, on an error that every rank throws alike: closes the file everywhere, removes the temporary.
  void discard_collectively() noexcept {
    try {
      file.close();
    } catch (...) {  // the error being thrown says what went wrong
    }
    if (rank == 0) atomic.discard();
    state = State::discarded;
  }

  // Runs the collective steps \p f; an io::Error from them (thrown on every rank alike) abandons the snapshot.
  template <class F>
  void run(F&& f) {
    try {
      f();
    } catch (const Error&) {
      discard_collectively();
      throw;
    }
  }

  void refuse_if_closed(const std::string& where_now) const {
    if (state == State::open) return;
    khalo::detail::throw_if_any<Error>(
        comm.get(), where_now + (state == State::committed ? "the snapshot is already committed"
                                                           : "the snapshot was abandoned after an error"));
  }
};

namespace {
PropList mpio_fapl(MPI_Comm comm) {
  PropList fapl(KHALO_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
  KHALO_H5_CHECK(H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL));
  return fapl;
}
}  // namespace

SnapshotWriter::SnapshotWriter(MPI_Comm comm, const std::string& path) : impl_(std::make_unique<Impl>()) {
  QuietHdf5Errors quiet;
  Impl& m = *impl_;
  m.uncaught = std::uncaught_exceptions();
  m.comm = khalo::detail::Comm::duplicate(comm);
  m.rank = m.comm.rank();
  m.where = "khalo::io::SnapshotWriter: '" + path + "': ";
  MPI_Comm c = m.comm.get();
  m.atomic = AtomicFile(c, path, m.where);
  try {
    collectively(c, m.where, [&] {
      PropList fcpl(KHALO_H5_CHECK(H5Pcreate(H5P_FILE_CREATE)));
      // Creation order lets readers (khalo-compare) list layer dumps in the order they were written.
      KHALO_H5_CHECK(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
      auto fapl = mpio_fapl(c);
      m.file = File(KHALO_H5_CHECK(H5Fcreate(m.atomic.temp().c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get())));
    });
  } catch (const Error&) {
    // H5Fcreate is collective: where it succeeded while another rank failed, closing would wait for that rank.
    (void)m.file.release();
    if (m.rank == 0) m.atomic.discard();
    m.state = Impl::State::discarded;
    throw;
  }
}

SnapshotWriter::~SnapshotWriter() {
  if (!impl_ || impl_->state != Impl::State::open) return;
  QuietHdf5Errors quiet;
  if (std::uncaught_exceptions() > impl_->uncaught) {
    // Unwinding, maybe on this rank alone: no collective (see the contract above).
    impl_->atomic.discard();
    (void)impl_->file.release();
    (void)impl_.release();  // and the communicator: MPI_Comm_free is collective too
    return;
  }
  impl_->discard_collectively();
}

const std::string& SnapshotWriter::path() const noexcept { return impl_->atomic.target(); }

namespace {

// Starts the disk writing what a rank has just written to the temporary, while it goes on converting and
// writing the next piece; it does not wait for the disk. Left to itself, the kernel would write nothing
// before the commit's sync (256 MiB is far below its dirty-page thresholds), and the sync would then wait
// for all of it: bench_io --mib 256, 1 rank, commit 0.08-0.14 s before, 0.005 s after. Only a hint, best
// effort and Linux only: the commit's MPI_File_sync on every rank, before the rename, is what makes the
// snapshot durable (docs/snapshots.md §3), here as before. Through a descriptor of its own (MPI-IO does
// not lend its own), opened read-only; where the file cannot be opened so, nothing is done.
class Writeback {
 public:
  Writeback(const std::string& path, hid_t dataset, const std::vector<std::int64_t>& global, std::size_t size)
      : strides_(c_order_strides(global)), size_(static_cast<std::int64_t>(size)) {
#ifdef SYNC_FILE_RANGE_WRITE
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const haddr_t at = H5Dget_offset(dataset);  // contiguous storage: where the dataset's values begin
    if (at != HADDR_UNDEF) base_ = static_cast<std::int64_t>(at);
#else
    (void)path;
    (void)dataset;
#endif
  }
  ~Writeback() {
    if (fd_ >= 0) ::close(fd_);
  }
  Writeback(const Writeback&) = delete;
  Writeback& operator=(const Writeback&) = delete;

  /// Starts writing the file's bytes from \p piece's first element to its last (global coordinates),
  /// the whole file when the dataset's place in it is unknown.
  void start(const Hyperslab& piece) const noexcept {
#ifdef SYNC_FILE_RANGE_WRITE
    if (fd_ < 0) return;
    std::int64_t first = 0, last = 0;
    for (std::size_t d = 0; d < strides_.size(); ++d) {
      if (piece.count[d] == 0) return;
      first += piece.offset[d] * strides_[d];
      last += (piece.offset[d] + piece.count[d] - 1) * strides_[d];
    }
    if (base_ < 0) {
      (void)::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE);
    } else {
      (void)::sync_file_range(fd_, base_ + first * size_, (last + 1 - first) * size_, SYNC_FILE_RANGE_WRITE);
    }
#else
    (void)piece;
#endif
  }

 private:
  std::vector<std::int64_t> strides_;
  std::int64_t size_ = 4;
  std::int64_t base_ = -1;
  int fd_ = -1;
};

}  // namespace

void SnapshotWriter::write_raw(const std::string& name, const std::vector<std::int64_t>& global_shape,
                               const Hyperslab& mine, const void* host_c_order, DType dtype,
                               const std::string& memory_format, std::optional<std::int64_t> step,
                               const std::string& local_error) {
  std::string error = local_error;
  bool empty = false;
  for (const auto n : mine.count) empty = empty || n == 0;
  const bool valid = check_slab(global_shape, mine).empty();
  if (error.empty() && !empty && host_c_order == nullptr && valid) error = "no data";
  // In pieces too, each one contiguous in the buffer and in the file's order, so that the disk writes one
  // while the next is copied (write_pieces). A block write_pieces will refuse goes as one piece.
  const std::size_t size = dtype == DType::float32 ? 4 : 8;
  const auto strides = c_order_strides(mine.count);
  const auto plan = valid && error.empty() && !empty
                        ? plan_pieces(mine.count, strides, static_cast<std::int64_t>(piece_bytes / size))
                        : PiecePlan{mine.count, {}, 1, 0};
  write_pieces(
      name, global_shape, mine, plan.count,
      [&](std::int64_t i, Hyperslab& piece) -> const void* {
        if (plan.count == 1) {
          piece = mine;
          return host_c_order;
        }
        piece = plan.piece(i);
        std::int64_t at = 0;
        for (std::size_t d = 0; d < strides.size(); ++d) {
          at += piece.offset[d] * strides[d];
          piece.offset[d] += mine.offset[d];
        }
        return static_cast<const char*>(host_c_order) + at * static_cast<std::int64_t>(size);
      },
      dtype, memory_format, step, error);
}

void SnapshotWriter::write_pieces(const std::string& name, const std::vector<std::int64_t>& global_shape,
                                  const Hyperslab& mine, std::int64_t pieces, const PieceSource& source, DType dtype,
                                  const std::string& memory_format, std::optional<std::int64_t> step,
                                  const std::string& local_error) {
  QuietHdf5Errors quiet;
  Impl& m = *impl_;
  const std::string where = m.where + "dataset '" + name + "': ";
  MPI_Comm c = m.comm.get();
  m.refuse_if_closed(where);
  m.run([&] {
    const std::string path = normalize(name);
    std::string error = local_error;
    if (error.empty()) error = check_slab(global_shape, mine);
    if (error.empty() && link_exists(m.file.get(), path)) error = "already written to this snapshot";
    std::vector<std::int64_t> sig(global_shape);
    sig.push_back(static_cast<std::int64_t>(dtype));
    sig.push_back(static_cast<std::int64_t>(std::hash<std::string>{}(name) >> 1));
    const std::string disagree = khalo::detail::disagreement(c, sig, {});
    khalo::detail::throw_if_any<Error>(c, disagree.empty() ? (error.empty() ? "" : where + error) : where + disagree);
    const int ranks = m.comm.size();
    collectively(c, where, [&] {
      auto [filespace, memspace] = select(global_shape, mine);
      PropList lcpl(KHALO_H5_CHECK(H5Pcreate(H5P_LINK_CREATE)));
      KHALO_H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));
      PropList dcpl(KHALO_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
      KHALO_H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));  // every element is written
      const hid_t file_type = dtype == DType::float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
      Dataset ds(KHALO_H5_CHECK(
          H5Dcreate2(m.file.get(), path.c_str(), file_type, filespace.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT)));
      write_int_attribute(ds.get(), "khalo_format_version", 1);
      if (global_shape.size() == 5 || global_shape.size() == 4) {
        write_string_attribute(ds.get(), "logical_dims", global_shape.size() == 5 ? "NCDHW" : "NCHW");
      }
      write_string_attribute(ds.get(), "memory_format", memory_format);
      write_int_attribute(ds.get(), "ranks", ranks);
      if (step) write_int_attribute(ds.get(), "step", *step);
      PropList dxpl(KHALO_H5_CHECK(H5Pcreate(H5P_DATASET_XFER)));
      // Independent transfers: each rank writes its own pieces straight to the file. Collective ones went
      // through OMPIO's aggregation (one more copy and an exchange between ranks) and, in pieces, one
      // round of it per piece: bench_io --mib 256 at 2 ranks, write() 0.89-0.93 s collective, 0.60-0.62 s
      // independent. The dataset, its attributes and the commit stay collective.
      KHALO_H5_CHECK(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_INDEPENDENT));
      Writeback writeback(m.atomic.temp(), ds.get(), global_shape, dtype == DType::float32 ? 4 : 8);
      for (std::int64_t i = 0; i < pieces; ++i) {
        Hyperslab piece;
        const void* values = source(i, piece);
        auto [piece_file, piece_mem] = select(global_shape, piece);
        KHALO_H5_CHECK(H5Dwrite(ds.get(), native(dtype), piece_mem.get(), piece_file.get(), dxpl.get(), values));
        writeback.start(piece);
      }
      ds.close();
    });
  });
}

void SnapshotWriter::commit() {
  QuietHdf5Errors quiet;
  Impl& m = *impl_;
  MPI_Comm c = m.comm.get();
  m.refuse_if_closed(m.where);
  m.run([&] {
    collectively(c, m.where, [&] { m.file.close(); });
    m.atomic.commit(c, m.where);
  });
  m.state = Impl::State::committed;
}

}  // namespace khalo::io
