#include <khalo/io/snapshot.hpp>

namespace khalo::io {

PathSpec parse_path_spec(const std::string& spec, const std::string& default_dataset) {
  const auto colon = spec.rfind(':');
  if (colon == std::string::npos || colon == 0) return {spec, default_dataset};
  const std::string dataset = spec.substr(colon + 1);
  return {spec.substr(0, colon), dataset.empty() ? default_dataset : (dataset[0] == '/' ? dataset : "/" + dataset)};
}

}  // namespace khalo::io
