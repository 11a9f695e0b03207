// SnapshotReader: any rank count reads any snapshot. The file is untrusted:
// rank 0 has it vetted by the probe helper before HDF5 parses it here, and
// every size read from it is checked before anything is sized by it.
//
// Each rank opens the file on its own (POSIX I/O; its reads are independent
// anyway), so that closing it is never a collective: a reader destroyed on one
// rank alone, while unwinding, leaves no other rank waiting.
#include "collective.hpp"
#include "h5.hpp"
#include "h5_attributes.hpp"
#include "h5_links.hpp"
#include "probe.hpp"
#include "slab.hpp"

#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/detail/strides.hpp>
#include <khalo/io/snapshot.hpp>

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

namespace khalo::io {

namespace fs = std::filesystem;
using namespace khalo::io::detail;

namespace {

// The 8-byte signature at 0, 512, 1024, ... (HDF5 allows a user block before it).
bool looks_like_hdf5(const std::string& path) {
  static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
  std::ifstream in(path, std::ios::binary);
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  if (!in || ec) return false;
  for (std::uintmax_t at = 0; at + 8 <= size; at = at == 0 ? 512 : at * 2) {
    unsigned char buf[8] = {};
    in.seekg(static_cast<std::streamoff>(at));
    if (!in.read(reinterpret_cast<char*>(buf), 8)) return false;
    if (std::memcmp(buf, sig, 8) == 0) return true;
  }
  return false;
}

// Collective: the physical memory of every node of \p comm, added up: no dataset larger than this can be
// read by the job, whatever its decomposition.
std::int64_t job_memory_bytes(MPI_Comm comm) {
  MPI_Comm raw = MPI_COMM_NULL;
  KHALO_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &raw));
  const khalo::detail::Comm node(raw);
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  std::int64_t mine = 0;
  if (node.rank() == 0 && pages > 0 && page > 0) {
    mine = static_cast<std::int64_t>(pages) > std::numeric_limits<std::int64_t>::max() / page
               ? std::numeric_limits<std::int64_t>::max()
               : static_cast<std::int64_t>(pages) * page;
  }
  double total = 0;  // a sum that cannot overflow; clamped below
  const double as_double = static_cast<double>(mine);
  KHALO_MPI_CHECK(MPI_Allreduce(&as_double, &total, 1, MPI_DOUBLE, MPI_SUM, comm));
  return total >= 9.2e18 ? std::numeric_limits<std::int64_t>::max() : static_cast<std::int64_t>(total);
}

using khalo::detail::shape_text;

// The shape of \p space, refused (with the reason) when it claims more elements or bytes than can be
// counted, or more bytes than \p limit: nothing is ever sized by a file before this check.
std::vector<std::int64_t> checked_shape(hid_t space, std::size_t element_size, std::int64_t limit) {
  const int rank = KHALO_H5_CHECK(H5Sget_simple_extent_ndims(space));
  if (rank > H5S_MAX_RANK) throw std::runtime_error("claims " + std::to_string(rank) + " dimensions");
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
  KHALO_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
  std::vector<std::int64_t> shape;
  std::uint64_t elements = 1;
  bool overflow = false;
  for (const hsize_t d : dims) {
    if (d > static_cast<hsize_t>(std::numeric_limits<std::int64_t>::max())) {
      throw std::runtime_error("claims an extent of " + std::to_string(d) + ", beyond what khalo can index");
    }
    shape.push_back(static_cast<std::int64_t>(d));
    overflow = overflow || __builtin_mul_overflow(elements, static_cast<std::uint64_t>(d), &elements);
  }
  std::uint64_t bytes = 0;
  overflow = overflow || __builtin_mul_overflow(elements, static_cast<std::uint64_t>(element_size), &bytes) ||
             bytes > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  if (overflow) {
    throw std::runtime_error("claims shape " + shape_text(shape) + ", more elements than can be counted; refused");
  }
  if (bytes > static_cast<std::uint64_t>(limit)) {
    throw std::runtime_error("claims " + std::to_string(elements) + " elements (" + std::to_string(bytes) +
                             " bytes, shape " + shape_text(shape) + "), more than the " + std::to_string(limit) +
                             " bytes of memory of all nodes of this job; refused");
  }
  return shape;
}

}  // namespace

struct SnapshotReader::Impl {
  khalo::detail::Comm comm;
  std::string path;
  std::string where;
  std::int64_t memory_limit = 0;
  File file;
};

SnapshotReader::SnapshotReader(MPI_Comm comm, const std::string& path) : impl_(std::make_unique<Impl>()) {
  QuietHdf5Errors quiet;
  Impl& m = *impl_;
  m.comm = khalo::detail::Comm::duplicate(comm);
  m.path = path;
  m.where = "khalo::io::SnapshotReader: '" + path + "': ";
  MPI_Comm c = m.comm.get();
  collectively(c, m.where, [&] {
    if (m.comm.rank() != 0) return;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error("no such file");
    if (!fs::is_regular_file(path, ec)) throw std::runtime_error("not a regular file");
    if (::access(path.c_str(), R_OK) != 0) throw std::runtime_error("not readable");
    if (!looks_like_hdf5(path)) throw std::runtime_error("not an HDF5 file");
    if (const std::string damage = probe_untrusted_file(path); !damage.empty()) throw std::runtime_error(damage);
  });
  m.memory_limit = job_memory_bytes(c);
  collectively(c, m.where, [&] {
    auto fapl = local_read_fapl();
    m.file = File(KHALO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get())));
  });
}

SnapshotReader::~SnapshotReader() = default;

const std::string& SnapshotReader::path() const noexcept { return impl_->path; }

std::vector<std::string> SnapshotReader::datasets() const {
  QuietHdf5Errors quiet;
  std::vector<std::string> out;
  collectively(impl_->comm.get(), impl_->where, [&] {
    Group root(KHALO_H5_CHECK(H5Gopen2(impl_->file.get(), "/", H5P_DEFAULT)));
    out = list_datasets(root.get());
  });
  return out;
}

bool SnapshotReader::has(const std::string& name) const {
  QuietHdf5Errors quiet;
  return link_exists(impl_->file.get(), normalize(name));
}

DatasetInfo SnapshotReader::info(const std::string& name) const {
  QuietHdf5Errors quiet;
  DatasetInfo info;
  info.name = normalize(name);
  const std::string where = impl_->where + "dataset '" + info.name + "': ";
  collectively(impl_->comm.get(), where, [&] {
    const hid_t file = impl_->file.get();
    if (!link_exists(file, info.name)) throw std::runtime_error("no such dataset");
    Object obj(KHALO_H5_CHECK(H5Oopen(file, info.name.c_str(), H5P_DEFAULT)));
    if (H5Iget_type(obj.get()) != H5I_DATASET) throw std::runtime_error("not a dataset");
    Dataset ds(KHALO_H5_CHECK(H5Dopen2(file, info.name.c_str(), H5P_DEFAULT)));
    Datatype type(KHALO_H5_CHECK(H5Dget_type(ds.get())));
    const std::size_t size = H5Tget_size(type.get());
    if (H5Tget_class(type.get()) != H5T_FLOAT || (size != 4 && size != 8)) {
      throw std::runtime_error("holds neither float32 nor float64 values");
    }
    info.dtype = size == 4 ? DType::float32 : DType::float64;
    Dataspace space(KHALO_H5_CHECK(H5Dget_space(ds.get())));
    info.shape = checked_shape(space.get(), size, impl_->memory_limit);
    info.memory_format = read_string_attribute(ds.get(), "memory_format");
    info.ranks = read_int_attribute(ds.get(), "ranks").value_or(0);
    info.step = read_int_attribute(ds.get(), "step");
  });
  return info;
}

void SnapshotReader::read_raw(const std::string& name, const std::vector<std::int64_t>& global_shape,
                              const Hyperslab& mine, void* host_c_order, DType dtype,
                              const std::string& local_error) const {
  QuietHdf5Errors quiet;
  const std::string path = normalize(name);
  const std::string where = impl_->where + "dataset '" + path + "': ";
  MPI_Comm c = impl_->comm.get();
  khalo::detail::throw_if_any<Error>(c, local_error.empty() ? "" : where + local_error);
  const DatasetInfo di = info(path);
  std::string error;
  if (!global_shape.empty() && di.shape != global_shape) {
    error = where + "has shape " + shape_text(di.shape) + ", expected " + shape_text(global_shape);
  } else if (di.dtype != dtype) {
    error = where + "holds " + to_string(di.dtype) + " values, expected " + to_string(dtype);
  } else if (auto bad = check_slab(di.shape, mine); !bad.empty()) {
    error = where + bad;
  }
  khalo::detail::throw_if_any<Error>(c, error);
  // Independent reads: a rank whose part of a damaged file fails cannot leave others in a collective.
  collectively(c, where, [&] {
    Dataset ds(KHALO_H5_CHECK(H5Dopen2(impl_->file.get(), path.c_str(), H5P_DEFAULT)));
    auto [filespace, memspace] = select(di.shape, mine);
    KHALO_H5_CHECK(H5Dread(ds.get(), native(dtype), memspace.get(), filespace.get(), H5P_DEFAULT, host_c_order));
  });
}

}  // namespace khalo::io
