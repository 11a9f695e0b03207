#pragma once
/// \file
/// What the io readers and writers share: their error type, the element types of datasets, a
/// dataset's description, a block of one, and "file:dataset" paths.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace khalo::io {

/// An I/O failure (missing or damaged file, wrong dataset, shape or type). Thrown
/// on every rank of the communicator with the same message.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The element types of snapshot datasets.
enum class DType { float32 /**< IEEE binary32 (float) */, float64 /**< IEEE binary64 (double) */ };

/// "float32" or "float64".
inline std::string to_string(DType t) { return t == DType::float32 ? "float32" : "float64"; }

/// The DType of C++ type \p T (float or double; anything else does not compile).
template <class T>
constexpr DType dtype_of() {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>, "khalo::io: float or double data only");
  return std::is_same_v<T, float> ? DType::float32 : DType::float64;
}

/// What a dataset holds, from its shape, type and attributes.
struct DatasetInfo {
  std::string name;                  ///< the dataset's path ("/data")
  std::vector<std::int64_t> shape;   ///< its global logical shape, C order
  DType dtype = DType::float32;      ///< its element type
  std::string memory_format;         ///< the writer's, "" when absent (a file khalo did not write)
  std::int64_t ranks = 0;            ///< the writer's rank count, 0 when absent
  std::optional<std::int64_t> step;  ///< the `step` attribute, when present
};

/// A block of a dataset in global logical coordinates.
struct Hyperslab {
  std::vector<std::int64_t> offset;  ///< the block's first index, per dimension
  std::vector<std::int64_t> count;   ///< the block's extents
};

/// "file.h5:/group/name" -> {"file.h5", "/group/name"}; no ":" -> the default dataset.
struct PathSpec {
  std::string file;     ///< the file's path
  std::string dataset;  ///< the dataset's path inside it
};
/// Splits \p spec at its last ':' into file and dataset (\p default_dataset when there is no ':').
PathSpec parse_path_spec(const std::string& spec, const std::string& default_dataset = "/data");

}  // namespace khalo::io
