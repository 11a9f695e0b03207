#include "h5.hpp"

#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/io/snapshot.hpp>

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

namespace khalo::io {

namespace fs = std::filesystem;
using namespace khalo::io::detail;

namespace detail {

std::string h5_error_text() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        if (e->desc != nullptr && *e->desc != '\0') *static_cast<std::string*>(out) = e->desc;  // innermost wins
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "unknown HDF5 error" : text;
}

}  // namespace detail

namespace {

// HDF5 prints its error stack to stderr by default; khalo reports errors itself.
void silence_hdf5() {
  static const bool done = [] {
    H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
    return true;
  }();
  (void)done;
}

// Runs f; whatever any rank throws, every rank throws the first failing rank's message as io::Error.
template <class F>
void collectively(MPI_Comm comm, const std::string& where, F&& f) {
  std::string error;
  try {
    f();
  } catch (const std::exception& e) {
    error = where + e.what();
  }
  khalo::detail::throw_if_any<Error>(comm, error);
}

hid_t native(DType t) { return t == DType::float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE; }

PropList mpio_fapl(MPI_Comm comm) {
  PropList fapl(KHALO_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
  KHALO_H5_CHECK(H5Pset_fapl_mpio(fapl.get(), comm, MPI_INFO_NULL));
  return fapl;
}

std::vector<hsize_t> to_hsize(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }

// A file/memory dataspace pair selecting this rank's block (or nothing).
std::pair<Dataspace, Dataspace> select(const std::vector<std::int64_t>& global, const Hyperslab& mine) {
  const auto dims = to_hsize(global);
  Dataspace file(KHALO_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  const auto count = to_hsize(mine.count);
  Dataspace mem(KHALO_H5_CHECK(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)));
  if (khalo::detail::element_count(mine.count) == 0) {
    KHALO_H5_CHECK(H5Sselect_none(file.get()));
    KHALO_H5_CHECK(H5Sselect_none(mem.get()));
  } else {
    const auto offset = to_hsize(mine.offset);
    KHALO_H5_CHECK(H5Sselect_hyperslab(file.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr));
  }
  return {std::move(file), std::move(mem)};
}

std::string check_slab(const std::vector<std::int64_t>& global, const Hyperslab& mine) {
  if (mine.offset.size() != global.size() || mine.count.size() != global.size()) {
    return "the block has " + std::to_string(mine.count.size()) + " dimensions, the dataset " +
           std::to_string(global.size());
  }
  for (std::size_t d = 0; d < global.size(); ++d) {
    if (mine.offset[d] < 0 || mine.count[d] < 0 || mine.offset[d] + mine.count[d] > global[d]) {
      return "the block exceeds the dataset in dimension " + std::to_string(d);
    }
  }
  return {};
}

// Fixed-length strings: a variable-length one lives in the global heap, and
// HDF5 1.10 crashes reading a damaged global heap (found by the corruption test).
void write_string_attribute(hid_t obj, const char* name, const std::string& value) {
  Datatype type(KHALO_H5_CHECK(H5Tcopy(H5T_C_S1)));
  KHALO_H5_CHECK(H5Tset_size(type.get(), value.size() + 1));
  KHALO_H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLTERM));
  Dataspace scalar(KHALO_H5_CHECK(H5Screate(H5S_SCALAR)));
  Attribute a(KHALO_H5_CHECK(H5Acreate2(obj, name, type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT)));
  KHALO_H5_CHECK(H5Awrite(a.get(), type.get(), value.c_str()));
}

void write_int_attribute(hid_t obj, const char* name, std::int64_t value) {
  Dataspace scalar(KHALO_H5_CHECK(H5Screate(H5S_SCALAR)));
  Attribute a(KHALO_H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT)));
  KHALO_H5_CHECK(H5Awrite(a.get(), H5T_NATIVE_INT64, &value));
}

std::optional<std::int64_t> read_int_attribute(hid_t obj, const char* name) {
  if (KHALO_H5_CHECK(H5Aexists(obj, name)) <= 0) return std::nullopt;
  Attribute a(KHALO_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
  Datatype t(KHALO_H5_CHECK(H5Aget_type(a.get())));
  if (H5Tget_class(t.get()) != H5T_INTEGER) return std::nullopt;
  std::int64_t v = 0;
  KHALO_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_INT64, &v));
  return v;
}

std::string read_string_attribute(hid_t obj, const char* name) {
  if (KHALO_H5_CHECK(H5Aexists(obj, name)) <= 0) return {};
  Attribute a(KHALO_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
  Datatype t(KHALO_H5_CHECK(H5Aget_type(a.get())));
  if (H5Tget_class(t.get()) != H5T_STRING) return {};
  Dataspace space(KHALO_H5_CHECK(H5Aget_space(a.get())));
  if (H5Sget_simple_extent_npoints(space.get()) != 1) return {};
  if (H5Tis_variable_str(t.get()) > 0) {
    Datatype mem(KHALO_H5_CHECK(H5Tcopy(H5T_C_S1)));
    KHALO_H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE));
    KHALO_H5_CHECK(H5Tset_cset(mem.get(), H5Tget_cset(t.get())));
    char* s = nullptr;
    KHALO_H5_CHECK(H5Aread(a.get(), mem.get(), &s));
    std::string out = s != nullptr ? s : "";
    H5free_memory(s);
    return out;
  }
  std::string out(H5Tget_size(t.get()), '\0');
  KHALO_H5_CHECK(H5Aread(a.get(), t.get(), out.data()));
  return out.substr(0, out.find('\0'));
}

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

void fsync_path(const std::string& path, bool directory) {
  const int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;  // best effort: some file systems refuse directory fds
  ::fsync(fd);
  ::close(fd);
}

bool link_exists(hid_t file, const std::string& name) {
  if (name.empty() || name[0] != '/') return false;
  std::size_t at = 1;
  while (at <= name.size()) {
    const std::size_t next = name.find('/', at);
    const std::string prefix = name.substr(0, next);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) return false;
    if (next == std::string::npos) break;
    at = next + 1;
  }
  return true;
}

std::string normalize(const std::string& name) { return !name.empty() && name[0] == '/' ? name : "/" + name; }

}  // namespace

PathSpec parse_path_spec(const std::string& spec, const std::string& default_dataset) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, default_dataset};
  const std::string dataset = spec.substr(colon + 1);
  return {spec.substr(0, colon), dataset.empty() ? default_dataset : normalize(dataset)};
}

// ---------------------------------------------------------------- writer

struct SnapshotWriter::Impl {
  khalo::detail::Comm comm;
  std::string target;
  std::string temp;
  File file;
  bool committed = false;
  int rank = 0;
};

SnapshotWriter::SnapshotWriter(MPI_Comm comm, const std::string& path) : impl_(std::make_unique<Impl>()) {
  silence_hdf5();
  impl_->comm = khalo::detail::Comm::duplicate(comm);
  impl_->target = path;
  impl_->rank = impl_->comm.rank();
  const std::string where = "khalo::io::SnapshotWriter: '" + path + "': ";
  MPI_Comm c = impl_->comm.get();
  // Rank 0 names the temporary file beside the target (same file system, so the rename is atomic).
  std::string temp;
  collectively(c, where, [&] {
    if (impl_->rank != 0) return;
    const fs::path target(path);
    const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
    if (target.filename().empty()) throw std::runtime_error("the path names no file");
    if (!fs::is_directory(dir)) throw std::runtime_error("directory '" + dir.string() + "' does not exist");
    if (::access(dir.c_str(), W_OK) != 0) throw std::runtime_error("directory '" + dir.string() + "' is not writable");
    if (fs::is_directory(target)) throw std::runtime_error("the target is a directory");
    std::random_device rd;
    temp = (dir / ("." + target.filename().string() + ".khalo-tmp-" + std::to_string(::getpid()) + "-" +
                   std::to_string(rd() % 1000000)))
               .string();
  });
  int len = static_cast<int>(temp.size());
  KHALO_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, c));
  temp.resize(static_cast<std::size_t>(len));
  KHALO_MPI_CHECK(MPI_Bcast(temp.data(), len, MPI_CHAR, 0, c));
  impl_->temp = temp;
  collectively(c, where, [&] {
    PropList fcpl(KHALO_H5_CHECK(H5Pcreate(H5P_FILE_CREATE)));
    // Creation order lets readers (khalo-compare) list layer dumps in the order they were written.
    KHALO_H5_CHECK(H5Pset_link_creation_order(fcpl.get(), H5P_CRT_ORDER_TRACKED | H5P_CRT_ORDER_INDEXED));
    auto fapl = mpio_fapl(c);
    impl_->file = File(KHALO_H5_CHECK(H5Fcreate(temp.c_str(), H5F_ACC_TRUNC, fcpl.get(), fapl.get())));
  });
}

SnapshotWriter::~SnapshotWriter() {
  if (!impl_ || impl_->committed) return;
  impl_->file.reset();
  if (impl_->rank == 0 && !impl_->temp.empty()) std::remove(impl_->temp.c_str());
}

const std::string& SnapshotWriter::path() const noexcept { return impl_->target; }

void SnapshotWriter::write_raw(const std::string& name, const std::vector<std::int64_t>& global_shape,
                               const Hyperslab& mine, const void* host_c_order, DType dtype,
                               const std::string& memory_format, std::optional<std::int64_t> step,
                               const std::string& local_error) {
  const std::string where = "khalo::io::SnapshotWriter: '" + impl_->target + "': dataset '" + name + "': ";
  MPI_Comm c = impl_->comm.get();
  if (!impl_->file) khalo::detail::throw_if_any<Error>(c, where + "the snapshot is already committed");
  std::string error = local_error;
  if (error.empty()) error = check_slab(global_shape, mine);
  if (error.empty() && khalo::detail::element_count(mine.count) > 0 && host_c_order == nullptr) error = "no data";
  std::vector<std::int64_t> sig(global_shape);
  sig.push_back(static_cast<std::int64_t>(dtype));
  sig.push_back(static_cast<std::int64_t>(std::hash<std::string>{}(name) >> 1));
  const std::string disagree = khalo::detail::disagreement(c, sig, {});
  khalo::detail::throw_if_any<Error>(c, disagree.empty() ? (error.empty() ? "" : where + error) : where + disagree);
  int ranks = 1;
  KHALO_MPI_CHECK(MPI_Comm_size(c, &ranks));
  collectively(c, where, [&] {
    const std::string path = normalize(name);
    if (link_exists(impl_->file.get(), path)) throw std::runtime_error("already written to this snapshot");
    auto [filespace, memspace] = select(global_shape, mine);
    PropList lcpl(KHALO_H5_CHECK(H5Pcreate(H5P_LINK_CREATE)));
    KHALO_H5_CHECK(H5Pset_create_intermediate_group(lcpl.get(), 1));
    PropList dcpl(KHALO_H5_CHECK(H5Pcreate(H5P_DATASET_CREATE)));
    KHALO_H5_CHECK(H5Pset_fill_time(dcpl.get(), H5D_FILL_TIME_NEVER));  // every element is written
    const hid_t file_type = dtype == DType::float32 ? H5T_IEEE_F32LE : H5T_IEEE_F64LE;
    Dataset ds(KHALO_H5_CHECK(
        H5Dcreate2(impl_->file.get(), path.c_str(), file_type, filespace.get(), lcpl.get(), dcpl.get(), H5P_DEFAULT)));
    write_int_attribute(ds.get(), "khalo_format_version", 1);
    if (global_shape.size() == 5 || global_shape.size() == 4) {
      write_string_attribute(ds.get(), "logical_dims", global_shape.size() == 5 ? "NCDHW" : "NCHW");
    }
    write_string_attribute(ds.get(), "memory_format", memory_format);
    write_int_attribute(ds.get(), "ranks", ranks);
    if (step) write_int_attribute(ds.get(), "step", *step);
    PropList dxpl(KHALO_H5_CHECK(H5Pcreate(H5P_DATASET_XFER)));
    KHALO_H5_CHECK(H5Pset_dxpl_mpio(dxpl.get(), H5FD_MPIO_COLLECTIVE));
    KHALO_H5_CHECK(H5Dwrite(ds.get(), native(dtype), memspace.get(), filespace.get(), dxpl.get(), host_c_order));
    ds.close();
  });
}

void SnapshotWriter::commit() {
  const std::string where = "khalo::io::SnapshotWriter: '" + impl_->target + "': ";
  MPI_Comm c = impl_->comm.get();
  if (!impl_->file) khalo::detail::throw_if_any<Error>(c, where + "already committed");
  collectively(c, where, [&] { impl_->file.close(); });
  KHALO_MPI_CHECK(MPI_Barrier(c));
  collectively(c, where, [&] {
    if (impl_->rank != 0) return;
    fsync_path(impl_->temp, false);
    if (std::rename(impl_->temp.c_str(), impl_->target.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      std::remove(impl_->temp.c_str());
      throw std::runtime_error("cannot rename the finished file over the target: " + why);
    }
    const fs::path dir = fs::path(impl_->target).has_parent_path() ? fs::path(impl_->target).parent_path() : ".";
    fsync_path(dir.string(), true);
  });
  impl_->committed = true;
}

// ---------------------------------------------------------------- reader

namespace {
std::string probe_in_child(const std::string& path);
void list_group(hid_t group, const std::string& prefix, std::vector<std::string>& out);
}  // namespace

struct SnapshotReader::Impl {
  khalo::detail::Comm comm;
  std::string path;
  File file;
};

SnapshotReader::SnapshotReader(MPI_Comm comm, const std::string& path) : impl_(std::make_unique<Impl>()) {
  silence_hdf5();
  impl_->comm = khalo::detail::Comm::duplicate(comm);
  impl_->path = path;
  const std::string where = "khalo::io::SnapshotReader: '" + path + "': ";
  MPI_Comm c = impl_->comm.get();
  collectively(c, where, [&] {
    if (impl_->comm.rank() != 0) return;
    std::error_code ec;
    if (!fs::exists(path, ec)) throw std::runtime_error("no such file");
    if (!fs::is_regular_file(path, ec)) throw std::runtime_error("not a regular file");
    if (::access(path.c_str(), R_OK) != 0) throw std::runtime_error("not readable");
    if (!looks_like_hdf5(path)) throw std::runtime_error("not an HDF5 file");
    if (const std::string damage = probe_in_child(path); !damage.empty()) throw std::runtime_error(damage);
  });
  collectively(c, where, [&] {
    auto fapl = mpio_fapl(c);
    impl_->file = File(KHALO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl.get())));
  });
}

SnapshotReader::~SnapshotReader() = default;

const std::string& SnapshotReader::path() const noexcept { return impl_->path; }

namespace {

void list_group(hid_t group, const std::string& prefix, std::vector<std::string>& out) {
  H5G_info_t info{};
  KHALO_H5_CHECK(H5Gget_info(group, &info));
  // Creation order when the file tracks it (khalo's files do), else by name.
  H5_index_t index = H5_INDEX_CRT_ORDER;
  if (info.nlinks > 0 && H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    index = H5_INDEX_NAME;
  }
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = KHALO_H5_CHECK(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    KHALO_H5_CHECK(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT));
    name.resize(static_cast<std::size_t>(len));
    Object obj(H5Oopen(group, name.c_str(), H5P_DEFAULT));
    if (!obj) {  // a dangling or external link: not ours to follow
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_DATASET) out.push_back(prefix + "/" + name);
    if (type == H5I_GROUP) list_group(obj.get(), prefix + "/" + name, out);
  }
}

}  // namespace

namespace {

// Everything a reader will parse, done first by a child process: HDF5 1.10
// crashes (rather than failing) on some damaged metadata, which a test that
// flips random bytes finds. A crash there becomes an error here.
// Returns "" when the file parses (or fails cleanly: the reader then reports
// HDF5's own message), else why it is damaged.
std::string probe_in_child(const std::string& path) {
  std::fflush(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return {};  // cannot probe: read without the safety net
  if (pid == 0) {
    // A crash here is the expected outcome for some damaged files: die quietly
    // instead of through MPI's handlers, which would report a failed job.
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) std::signal(sig, SIG_DFL);
    ::alarm(60);  // damaged metadata can also loop forever
    int rc = 0;
    try {
      File f(KHALO_H5_CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT)));
      Group root(KHALO_H5_CHECK(H5Gopen2(f.get(), "/", H5P_DEFAULT)));
      std::vector<std::string> names;
      list_group(root.get(), "", names);
      for (const auto& name : names) {
        Dataset ds(KHALO_H5_CHECK(H5Dopen2(f.get(), name.c_str(), H5P_DEFAULT)));
        (void)read_string_attribute(ds.get(), "memory_format");
        (void)read_int_attribute(ds.get(), "ranks");
        (void)read_int_attribute(ds.get(), "step");
        Datatype type(KHALO_H5_CHECK(H5Dget_type(ds.get())));
        Dataspace space(KHALO_H5_CHECK(H5Dget_space(ds.get())));
        const hssize_t n = H5Sget_simple_extent_npoints(space.get());
        if (H5Tget_class(type.get()) != H5T_FLOAT || n <= 0) continue;
        // The first and last element: walks the layout (and any chunk index).
        for (const hsize_t at : {hsize_t{0}, static_cast<hsize_t>(n - 1)}) {
          const int rank = H5Sget_simple_extent_ndims(space.get());
          std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), point(static_cast<std::size_t>(rank));
          H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr);
          hsize_t rest = at;
          for (int d = rank - 1; d >= 0; --d) {
            point[static_cast<std::size_t>(d)] = rest % dims[static_cast<std::size_t>(d)];
            rest /= dims[static_cast<std::size_t>(d)];
          }
          KHALO_H5_CHECK(H5Sselect_elements(space.get(), H5S_SELECT_SET, 1, point.data()));
          const hsize_t one = 1;
          Dataspace mem(KHALO_H5_CHECK(H5Screate_simple(1, &one, nullptr)));
          double value = 0;
          KHALO_H5_CHECK(H5Dread(ds.get(), H5T_NATIVE_DOUBLE, mem.get(), space.get(), H5P_DEFAULT, &value));
        }
      }
    } catch (...) {
      rc = 3;  // a clean HDF5 error: the reader will report it
    }
    ::_exit(rc);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 3)) return {};
  if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) return "damaged file (reading its metadata does not end)";
  return "damaged file (the HDF5 library crashed reading its metadata)";
}

}  // namespace

std::vector<std::string> SnapshotReader::datasets() const {
  std::vector<std::string> out;
  collectively(impl_->comm.get(), "khalo::io::SnapshotReader: '" + impl_->path + "': ", [&] {
    Group root(KHALO_H5_CHECK(H5Gopen2(impl_->file.get(), "/", H5P_DEFAULT)));
    list_group(root.get(), "", out);
  });
  return out;
}

bool SnapshotReader::has(const std::string& name) const { return link_exists(impl_->file.get(), normalize(name)); }

DatasetInfo SnapshotReader::info(const std::string& name) const {
  DatasetInfo info;
  info.name = normalize(name);
  const std::string where = "khalo::io::SnapshotReader: '" + impl_->path + "': dataset '" + info.name + "': ";
  collectively(impl_->comm.get(), where, [&] {
    if (!link_exists(impl_->file.get(), info.name)) throw std::runtime_error("no such dataset");
    Object obj(KHALO_H5_CHECK(H5Oopen(impl_->file.get(), info.name.c_str(), H5P_DEFAULT)));
    if (H5Iget_type(obj.get()) != H5I_DATASET) throw std::runtime_error("not a dataset");
    Dataset ds(KHALO_H5_CHECK(H5Dopen2(impl_->file.get(), info.name.c_str(), H5P_DEFAULT)));
    Datatype type(KHALO_H5_CHECK(H5Dget_type(ds.get())));
    const std::size_t size = H5Tget_size(type.get());
    if (H5Tget_class(type.get()) != H5T_FLOAT || (size != 4 && size != 8)) {
      throw std::runtime_error("holds neither float32 nor float64 values");
    }
    info.dtype = size == 4 ? DType::float32 : DType::float64;
    Dataspace space(KHALO_H5_CHECK(H5Dget_space(ds.get())));
    const int rank = KHALO_H5_CHECK(H5Sget_simple_extent_ndims(space.get()));
    std::vector<hsize_t> dims(static_cast<std::size_t>(rank));
    KHALO_H5_CHECK(H5Sget_simple_extent_dims(space.get(), dims.data(), nullptr));
    info.shape.assign(dims.begin(), dims.end());
    info.memory_format = read_string_attribute(ds.get(), "memory_format");
    info.ranks = read_int_attribute(ds.get(), "ranks").value_or(0);
    info.step = read_int_attribute(ds.get(), "step");
  });
  return info;
}

void SnapshotReader::read_raw(const std::string& name, const std::vector<std::int64_t>& global_shape,
                              const Hyperslab& mine, void* host_c_order, DType dtype,
                              const std::string& local_error) const {
  const std::string path = normalize(name);
  const std::string where = "khalo::io::SnapshotReader: '" + impl_->path + "': dataset '" + path + "': ";
  MPI_Comm c = impl_->comm.get();
  khalo::detail::throw_if_any<Error>(c, local_error.empty() ? "" : where + local_error);
  const DatasetInfo di = info(path);
  std::string error;
  auto shape_text = [](const std::vector<std::int64_t>& s) {
    std::string t = "(";
    for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
    return t + ")";
  };
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
