#pragma once
/// \file
/// safetensors checkpoints (docs/weights.md §2): an 8-byte little-endian
/// header length, a JSON header mapping each key to its dtype, shape and byte
/// range, then the raw little-endian data. F32, F16 and BF16 tensors (and F64)
/// are read as float32, each in its own dtype. The file is memory-mapped, never
/// copied whole; every length, offset and shape in it is checked against the
/// file's size before use, so a damaged or hostile file is an error, not a crash.

#include <khalo/io/tensor_source.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace khalo::io {

/// A safetensors checkpoint (docs/weights.md §2), memory-mapped on every rank of a communicator.
class SafetensorsFile final : public TensorSource {
 public:
  /// Collective over \p comm: every rank maps and checks the file, and a
  /// problem on any rank throws khalo::io::Error on all of them.
  SafetensorsFile(MPI_Comm comm, const std::string& path);
  /// Unmaps the file.
  ~SafetensorsFile() override;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::vector<std::string>& keys() const noexcept override { return keys_; }
  bool has(const std::string& key) const override { return entries_.count(key) != 0; }
  std::vector<std::int64_t> shape(const std::string& key) const override { return entry(key).shape; }
  std::string dtype(const std::string& key) const override { return entry(key).dtype; }
  std::vector<float> load(const std::string& key, const std::vector<std::int64_t>& expected_shape) const override;
  const std::string& path() const noexcept override { return path_; }

  /// The most elements one tensor may claim (2^36, 256 GiB of float32); a
  /// header claiming more is refused before anything is allocated.
  static constexpr std::int64_t kMaxElements = std::int64_t{1} << 36;
  /// The most bytes a header may have (the format's own limit).
  static constexpr std::uint64_t kMaxHeaderBytes = 100u << 20;

 private:
  struct Entry {
    std::string dtype;
    std::vector<std::int64_t> shape;
    std::size_t begin = 0;  // bytes from the start of the file
    std::size_t bytes = 0;
  };
  const Entry& entry(const std::string& key) const;
  void map_and_parse();

  std::string path_;
  const unsigned char* data_ = nullptr;  // the mapped file
  std::size_t size_ = 0;
  std::vector<std::string> keys_;
  std::map<std::string, Entry> entries_;
};

}  // namespace khalo::io
