#pragma once
// Private to src/io: dataset names inside a file, and the walk that lists them.

#include <hdf5.h>

#include <string>
#include <vector>

namespace khalo::io::detail {

/// "a/b" -> "/a/b"; absolute names are kept.
std::string normalize(const std::string& name);

/// Whether every link on the way to the absolute \p name exists (H5Lexists fails on a missing parent).
bool link_exists(hid_t file, const std::string& name);

/// Every dataset below \p group, in creation order where the file tracks it, else by name. Each group is
/// entered once, so a file whose hard links form a cycle (legal in HDF5) is listed in finite time.
std::vector<std::string> list_datasets(hid_t group);

}  // namespace khalo::io::detail
