#pragma once
/// \file
/// Parameters on the host by PyTorch state-dict key (docs/weights.md §1): what layers
/// are built from, whether they came from a file or from a seeded generator.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace khalo::io {
class TensorSource;
}

namespace khalo::nn {

/// A key and the shape its tensor must have.
using KeyShape = std::pair<std::string, std::vector<std::int64_t>>;

/// Float32 tensors by key, with their shapes.
struct WeightMap {
  std::map<std::string, std::vector<float>> tensors;        ///< values in C order, by key
  std::map<std::string, std::vector<std::int64_t>> shapes;  ///< PyTorch shapes, by key

  /// Whether \p key is present.
  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  /// The tensor under \p key; std::out_of_range naming the key when absent.
  const std::vector<float>& at(const std::string& key) const;
  /// Its shape; std::out_of_range naming the key when absent.
  const std::vector<std::int64_t>& shape(const std::string& key) const;

  /// Reads each of \p keys from \p file (prefixed by \p prefix in this map) with its
  /// shape checked; throws khalo::io::Error naming the first missing or mismatched key.
  void load(const io::TensorSource& file, const std::vector<KeyShape>& keys, const std::string& prefix = {});
  /// Seeded values for \p keys (prefixed by \p prefix): weights N(0, 1/fan_in), biases
  /// N(0, 0.1), norm gammas U(0.5, 1.5); the same on every rank for the same seed.
  void randomize(const std::vector<KeyShape>& keys, std::uint64_t seed, const std::string& prefix = {});
};

}  // namespace khalo::nn
