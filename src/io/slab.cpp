#include "slab.hpp"

namespace khalo::io::detail {

namespace {
std::vector<hsize_t> to_hsize(const std::vector<std::int64_t>& v) { return {v.begin(), v.end()}; }
}  // namespace

hid_t native(DType t) { return t == DType::float32 ? H5T_NATIVE_FLOAT : H5T_NATIVE_DOUBLE; }

std::string check_slab(const std::vector<std::int64_t>& global, const Hyperslab& mine) {
  if (mine.offset.size() != global.size() || mine.count.size() != global.size()) {
    return "the block has " + std::to_string(mine.count.size()) + " dimensions, the dataset " +
           std::to_string(global.size());
  }
  for (std::size_t d = 0; d < global.size(); ++d) {
    if (global[d] < 0 || mine.offset[d] < 0 || mine.count[d] < 0 || mine.offset[d] > global[d] ||
        mine.count[d] > global[d] - mine.offset[d]) {
      return "the block exceeds the dataset in dimension " + std::to_string(d);
    }
  }
  return {};
}

std::pair<Dataspace, Dataspace> select(const std::vector<std::int64_t>& global, const Hyperslab& mine) {
  const auto dims = to_hsize(global);
  Dataspace file(KHALO_H5_CHECK(H5Screate_simple(static_cast<int>(dims.size()), dims.data(), nullptr)));
  const auto count = to_hsize(mine.count);
  Dataspace mem(KHALO_H5_CHECK(H5Screate_simple(static_cast<int>(count.size()), count.data(), nullptr)));
  bool empty = false;
  for (const auto c : mine.count) empty = empty || c == 0;
  if (empty) {
    KHALO_H5_CHECK(H5Sselect_none(file.get()));
    KHALO_H5_CHECK(H5Sselect_none(mem.get()));
  } else {
    const auto offset = to_hsize(mine.offset);
    KHALO_H5_CHECK(H5Sselect_hyperslab(file.get(), H5S_SELECT_SET, offset.data(), nullptr, count.data(), nullptr));
  }
  return {std::move(file), std::move(mem)};
}

}  // namespace khalo::io::detail
