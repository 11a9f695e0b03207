#include <khalo/detail/comm.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/io/weights.hpp>

#include <cstring>
#include <fstream>

namespace khalo::io {

PrefixedSource::PrefixedSource(std::shared_ptr<const TensorSource> source, std::string prefix)
    : source_(std::move(source)), prefix_(std::move(prefix)) {
  for (const auto& key : source_->keys()) {
    if (key.compare(0, prefix_.size(), prefix_) == 0) keys_.push_back(key.substr(prefix_.size()));
  }
}

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
  auto file = std::make_unique<SafetensorsFile>(comm, path);
  if (prefix.empty()) return file;
  return std::make_unique<PrefixedSource>(std::move(file), prefix);
}

}  // namespace khalo::io
