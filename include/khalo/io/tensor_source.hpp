#pragma once
/// \file
/// A read-only set of named tensors (a model's weights), whatever the file
/// format: the HDF5 weights file (WeightsFile) or a safetensors checkpoint
/// (SafetensorsFile). Keys are matched whole, never by suffix.

#include <mpi.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace khalo::io {

/// The interface every weights reader implements: named float tensors, read whole.
class TensorSource {
 public:
  /// Closes what the reader holds.
  virtual ~TensorSource() = default;

  /// Every key, in the file's order.
  virtual const std::vector<std::string>& keys() const noexcept = 0;
  /// True when \p key is present exactly (no prefix or suffix matching).
  virtual bool has(const std::string& key) const = 0;
  /// Shape of \p key; throws khalo::io::Error naming the key when it is missing.
  virtual std::vector<std::int64_t> shape(const std::string& key) const = 0;
  /// The stored element type of \p key as safetensors names it: "F32", "F16", "BF16", "F64".
  virtual std::string dtype(const std::string& key) const = 0;
  /// Values of \p key as float32 in C order; throws khalo::io::Error naming the key
  /// when it is missing or not exactly \p expected_shape.
  virtual std::vector<float> load(const std::string& key, const std::vector<std::int64_t>& expected_shape) const = 0;
  /// The file it reads.
  virtual const std::string& path() const noexcept = 0;
  /// What is put before every key to find it in the file (empty: keys are whole).
  virtual std::string prefix() const { return {}; }

 protected:
  TensorSource() = default;                                ///< Only as a base.
  TensorSource(const TensorSource&) = default;             ///< For implementations that can be copied.
  TensorSource& operator=(const TensorSource&) = default;  ///< For implementations that can be copied.
};

/// The tensors of \p source whose keys start with \p prefix, under their keys
/// without it (e.g. one up-block, `decoder.up_blocks.1.`, of a whole checkpoint).
class PrefixedSource final : public TensorSource {
 public:
  /// Shares \p source (several prefixes of one file, the layers of a model, read through one
  /// open file); its keys are those of \p source that start with \p prefix, without it.
  PrefixedSource(std::shared_ptr<const TensorSource> source, std::string prefix);
  const std::vector<std::string>& keys() const noexcept override { return keys_; }
  bool has(const std::string& key) const override { return source_->has(prefix_ + key); }
  std::vector<std::int64_t> shape(const std::string& key) const override { return source_->shape(prefix_ + key); }
  std::string dtype(const std::string& key) const override { return source_->dtype(prefix_ + key); }
  std::vector<float> load(const std::string& key, const std::vector<std::int64_t>& expected_shape) const override {
    return source_->load(prefix_ + key, expected_shape);
  }
  const std::string& path() const noexcept override { return source_->path(); }
  /// The whole prefix from the file's root (the source's own prefix first).
  std::string prefix() const override { return source_->prefix() + prefix_; }

 private:
  std::shared_ptr<const TensorSource> source_;
  std::string prefix_;
  std::vector<std::string> keys_;
};

/// Opens \p path as a safetensors file or an HDF5 weights file, by its first
/// bytes (HDF5's signature, else safetensors). Collective over \p comm; errors
/// are thrown on every rank with the same message. With a \p prefix, keys are
/// those under it, without it.
std::unique_ptr<TensorSource> open_tensor_source(MPI_Comm comm, const std::string& path,
                                                 const std::string& prefix = {});

}  // namespace khalo::io
