#pragma once
// Private to src/io: a rank's block of a dataset, checked and selected.

#include "h5.hpp"

#include <khalo/io/snapshot.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace khalo::io::detail {

/// The native HDF5 type of \p t.
hid_t native(DType t);

/// Why \p mine is not a block of a dataset of shape \p global ("" when it is). Overflow-safe for any values.
std::string check_slab(const std::vector<std::int64_t>& global, const Hyperslab& mine);

/// A file/memory dataspace pair selecting the block \p mine (which check_slab accepted), or nothing.
std::pair<Dataspace, Dataspace> select(const std::vector<std::int64_t>& global, const Hyperslab& mine);

}  // namespace khalo::io::detail
