#include <khalo/io/weights.hpp>

#include <algorithm>

namespace khalo::io {

using khalo::detail::shape_text;

WeightsFile::WeightsFile(MPI_Comm comm, const std::string& path, std::string prefix)
    : reader_(comm, path), path_(path), prefix_(std::move(prefix)) {
  const std::string lead = "/" + prefix_;
  for (const auto& name : reader_.datasets()) {
    if (name.compare(0, lead.size(), lead) == 0) keys_.push_back(name.substr(lead.size()));
  }
}

bool WeightsFile::has(const std::string& key) const {
  return std::find(keys_.begin(), keys_.end(), key) != keys_.end();
}

std::vector<std::int64_t> WeightsFile::shape(const std::string& key) const {
  if (!has(key)) {
    throw Error("khalo::io::WeightsFile: '" + path_ + "': missing key '" + key + "'" +
                (prefix_.empty() ? std::string() : " (dataset '" + dataset_of(key) + "', prefix '" + prefix_ + "')"));
  }
  return reader_.info(dataset_of(key)).shape;
}

std::string WeightsFile::dtype(const std::string& key) const {
  shape(key);  // names a missing key
  return reader_.info(dataset_of(key)).dtype == DType::float32 ? "F32" : "F64";
}

std::vector<float> WeightsFile::load(const std::string& key, const std::vector<std::int64_t>& expected_shape) const {
  const auto actual = shape(key);
  const std::string where = "khalo::io::WeightsFile: '" + path_ + "': key '" + key + "' ";
  if (actual != expected_shape) {
    throw Error(where + "has shape " + shape_text(actual) + ", expected " + shape_text(expected_shape));
  }
  const DatasetInfo info = reader_.info(dataset_of(key));
  if (info.dtype != DType::float32) throw Error(where + "holds " + to_string(info.dtype) + " values, expected float32");
  std::vector<float> values(static_cast<std::size_t>(khalo::detail::element_count(actual)));
  Hyperslab all{std::vector<std::int64_t>(actual.size(), 0), actual};
  reader_.read_raw(dataset_of(key), actual, all, values.data(), DType::float32);
  return values;
}

}  // namespace khalo::io
