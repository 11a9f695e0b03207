#include <khalo/detail/comm.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/io/weights.hpp>

#include <cstring>
#include <fstream>

namespace khalo::io {

std::unique_ptr<TensorSource> open_tensor_source(MPI_Comm comm, const std::string& path, const std::string& prefix) {
  // HDF5 files begin with this signature (at offset 0 for the files khalo and h5py write).
  static const char kHdf5Signature[8] = {'\x89', 'H', 'D', 'F', '\r', '\n', '\x1a', '\n'};
  char head[8] = {};
  std::ifstream in(path, std::ios::binary);
  const bool hdf5 = in.read(head, 8) && std::memcmp(head, kHdf5Signature, 8) == 0;
  // Every rank must take the same branch: the constructors below are collective.
  int mine = hdf5 ? 1 : 0;
  int all = 0;
  KHALO_MPI_CHECK(MPI_Allreduce(&mine, &all, 1, MPI_INT, MPI_MIN, comm));
  if (all == 1) return std::make_unique<WeightsFile>(comm, path, prefix);
  return std::make_unique<SafetensorsFile>(comm, path);
}

}  // namespace khalo::io
