#pragma once
/// \file
/// The boundary policies (docs/halo.md §2), each one entry of rule_of(): whether it wraps the
/// dimension around, whether and how it fills the ghost layers of a side without a neighbour,
/// and what that needs of the band. Its name is khalo::to_string(Boundary). Not public.

#include <khalo/halo_spec.hpp>

#include <cstdint>

namespace khalo::detail {

/// What a boundary policy does.
struct BoundaryRule {
  bool wraps = false;   ///< the far rank (or this one, alone along the dimension) is the neighbour
  bool fills = false;   ///< at a side without a neighbour, the ghost layers are written
  bool zeroes = false;  ///< ... with zeros; else each copies an owned layer (source_inward)
  /// Owned layers a band needs at a side without a neighbour for \p width ghost layers.
  std::int64_t (*owned_needed)(int width) = nullptr;
  /// Which owned layer ghost layer \p j (1: the nearest) copies, counted inward from the
  /// outermost owned layer (0: that layer).
  std::int64_t (*source_inward)(std::int64_t j) = nullptr;
};

// The rules' functions, named: nvcc (CUDA 13) rejects lambdas converted to function pointers
// inside a braced initializer.
inline std::int64_t no_layer(int) { return 0; }
inline std::int64_t one_layer(int) { return 1; }
inline std::int64_t width_and_edge(int width) { return width + 1; }
inline std::int64_t edge_layer(std::int64_t) { return 0; }
inline std::int64_t mirrored_layer(std::int64_t j) { return j; }

/// The rule of policy \p b.
inline BoundaryRule rule_of(Boundary b) {
  switch (b) {
    case Boundary::zero: return {false, true, true, &no_layer, nullptr};
    case Boundary::replicate: return {false, true, false, &one_layer, &edge_layer};
    case Boundary::reflect: return {false, true, false, &width_and_edge, &mirrored_layer};
    case Boundary::periodic: return {true, false, false, &no_layer, nullptr};
    case Boundary::none: return {false, false, false, &no_layer, nullptr};
  }
  return {};
}

}  // namespace khalo::detail
