#pragma once
/// \file
/// Weights files (docs/weights.md §1): one float32 dataset per parameter, named by
/// its PyTorch state-dict key; an optional prefix selects one stage of a whole
/// converted checkpoint. Every rank loads what it asks for; errors name the key.

#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

namespace khalo::io {

/// An HDF5 weights file of one stage (docs/weights.md §1), opened on every rank of a communicator.
class WeightsFile final : public TensorSource {
 public:
  /// Collective. \p prefix (e.g. "decoder.up_blocks.1.") is put before every key.
  WeightsFile(MPI_Comm comm, const std::string& path, std::string prefix = {});

  /// Keys under the prefix, with the prefix removed, in the file's order.
  const std::vector<std::string>& keys() const noexcept override { return keys_; }
  bool has(const std::string& key) const override;
  /// Shape of \p key; throws khalo::io::Error naming the key when it is missing.
  std::vector<std::int64_t> shape(const std::string& key) const override;
  /// "F32" or "F64".
  std::string dtype(const std::string& key) const override;
  /// Values of \p key in C order; throws khalo::io::Error naming the key when it
  /// is missing, not float32, or not exactly \p expected_shape. Collective.
  std::vector<float> load(const std::string& key, const std::vector<std::int64_t>& expected_shape) const override;

  const std::string& path() const noexcept override { return path_; }
  std::string prefix() const override { return prefix_; }

 private:
  std::string dataset_of(const std::string& key) const { return "/" + prefix_ + key; }
  SnapshotReader reader_;
  std::string path_;
  std::string prefix_;
  std::vector<std::string> keys_;
};

}  // namespace khalo::io
