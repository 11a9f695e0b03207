// khalo-h5probe FILE: parses, in a process of its own, everything a khalo reader
// will parse in FILE, so that a crash of the HDF5 library on damaged metadata
// ends this process instead of an MPI job (see probe.hpp). Started by khalo's
// readers; installed in libexec/khalo. One line on stdout, then the exit code:
//   khalo-h5probe/1 ok N datasets             0  the file parses
//   khalo-h5probe/1 hdf5-error MESSAGE        3  HDF5 fails on it cleanly
//   khalo-h5probe/1 usage: ...                2  wrong arguments
// A crash is a death by signal, a loop ends by SIGALRM after KHALO_H5PROBE_TIMEOUT
// seconds (default 60); the reader calls both a damaged file.
#include "h5.hpp"
#include "h5_attributes.hpp"
#include "h5_links.hpp"
#include "probe.hpp"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

namespace {

using namespace khalo::io::detail;

// The first and last element of a float dataset: walks its layout and any chunk index.
void read_ends(hid_t ds, hid_t space) {
  const int rank = KHALO_H5_CHECK(H5Sget_simple_extent_ndims(space));
  if (rank < 1 || rank > H5S_MAX_RANK) return;
  std::vector<hsize_t> dims(static_cast<std::size_t>(rank)), point(static_cast<std::size_t>(rank));
  KHALO_H5_CHECK(H5Sget_simple_extent_dims(space, dims.data(), nullptr));
  for (const hsize_t d : dims) {
    if (d == 0) return;
  }
  for (const bool last : {false, true}) {
    for (std::size_t d = 0; d < dims.size(); ++d) point[d] = last ? dims[d] - 1 : 0;
    KHALO_H5_CHECK(H5Sselect_elements(space, H5S_SELECT_SET, 1, point.data()));
    const hsize_t one = 1;
    Dataspace mem(KHALO_H5_CHECK(H5Screate_simple(1, &one, nullptr)));
    double value = 0;
    KHALO_H5_CHECK(H5Dread(ds, H5T_NATIVE_DOUBLE, mem.get(), space, H5P_DEFAULT, &value));
  }
}

std::size_t probe(const char* path) {
  auto fapl = local_read_fapl();
  File f(KHALO_H5_CHECK(H5Fopen(path, H5F_ACC_RDONLY, fapl.get())));
  Group root(KHALO_H5_CHECK(H5Gopen2(f.get(), "/", H5P_DEFAULT)));
  const auto names = list_datasets(root.get());
  for (const auto& name : names) {
    Dataset ds(KHALO_H5_CHECK(H5Dopen2(f.get(), name.c_str(), H5P_DEFAULT)));
    (void)read_string_attribute(ds.get(), "memory_format");
    (void)read_int_attribute(ds.get(), "ranks");
    (void)read_int_attribute(ds.get(), "step");
    Datatype type(KHALO_H5_CHECK(H5Dget_type(ds.get())));
    Dataspace space(KHALO_H5_CHECK(H5Dget_space(ds.get())));
    if (H5Tget_class(type.get()) == H5T_FLOAT) read_ends(ds.get(), space.get());
  }
  return names.size();
}

}  // namespace

int main(int argc, char** argv) {
  const char* banner = khalo::io::detail::h5probe_banner;
  if (argc != 2) {
    std::printf("%s usage: khalo-h5probe FILE\n", banner);
    return 2;
  }
  const char* env = std::getenv("KHALO_H5PROBE_TIMEOUT");
  const long limit = env != nullptr ? std::strtol(env, nullptr, 10) : 0;
  ::alarm(static_cast<unsigned>(limit > 0 && limit < 86400 ? limit : 60));  // damaged metadata can loop forever
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);                              // this process reports through its answer
  try {
    const std::size_t n = probe(argv[1]);
    std::printf("%s ok %zu datasets\n", banner, n);
    return 0;
  } catch (const std::exception& e) {
    std::printf("%s hdf5-error %s\n", banner, e.what());
    return 3;
  }
}
