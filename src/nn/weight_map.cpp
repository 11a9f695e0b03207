#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/weight_map.hpp>

#include <cmath>
#include <random>
#include <stdexcept>

namespace khalo::nn {

const std::vector<float>& WeightMap::at(const std::string& key) const {
  const auto it = tensors.find(key);
  if (it == tensors.end()) throw std::out_of_range("khalo::nn::WeightMap: no tensor '" + key + "'");
  return it->second;
}

const std::vector<std::int64_t>& WeightMap::shape(const std::string& key) const {
  const auto it = shapes.find(key);
  if (it == shapes.end()) throw std::out_of_range("khalo::nn::WeightMap: no tensor '" + key + "'");
  return it->second;
}

void WeightMap::load(const io::TensorSource& file, const std::vector<KeyShape>& keys, const std::string& prefix) {
  for (const auto& [key, shape] : keys) {
    tensors[prefix + key] = file.load(key, shape);
    shapes[prefix + key] = shape;
  }
}

void WeightMap::randomize(const std::vector<KeyShape>& keys, std::uint64_t seed, const std::string& prefix) {
  std::mt19937_64 rng(seed);
  for (const auto& [key, shape] : keys) {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    std::vector<float> v(static_cast<std::size_t>(n));
    const bool gamma = key.find("gamma") != std::string::npos;
    const bool bias = key.find("bias") != std::string::npos;
    const double fan_in = shape.size() > 1 ? static_cast<double>(n / shape[0]) : 1.0;
    std::normal_distribution<double> normal(0.0, bias ? 0.1 : 1.0 / std::sqrt(fan_in));
    std::uniform_real_distribution<double> uniform(0.5, 1.5);
    for (auto& x : v) x = static_cast<float>(gamma ? uniform(rng) : normal(rng));
    tensors[prefix + key] = std::move(v);
    shapes[prefix + key] = shape;
  }
}

}  // namespace khalo::nn
