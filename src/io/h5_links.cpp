#include "h5_links.hpp"

#include "h5.hpp"

#include <cstring>
#include <set>

namespace khalo::io::detail {

std::string normalize(const std::string& name) { return !name.empty() && name[0] == '/' ? name : "/" + name; }

bool link_exists(hid_t file, const std::string& name) {
  if (name.empty() || name[0] != '/') return false;
  std::size_t at = 1;
  while (at <= name.size()) {
    const std::size_t next = name.find('/', at);
    const std::string prefix = name.substr(0, next);
    if (H5Lexists(file, prefix.c_str(), H5P_DEFAULT) <= 0) {
      H5Eclear2(H5E_DEFAULT);
      return false;
    }
    if (next == std::string::npos) break;
    at = next + 1;
  }
  return true;
}

namespace {

// Where an object lives in its file: two links to one object give the same key.
std::string object_key(hid_t obj) {
#if H5_VERSION_GE(1, 12, 0)
  H5O_info2_t info{};
  KHALO_H5_CHECK(H5Oget_info3(obj, &info, H5O_INFO_BASIC));
  std::string key(sizeof(info.fileno) + sizeof(info.token), '\0');
  std::memcpy(key.data(), &info.fileno, sizeof(info.fileno));
  std::memcpy(key.data() + sizeof(info.fileno), &info.token, sizeof(info.token));
#else
  H5O_info_t info{};
  KHALO_H5_CHECK(H5Oget_info2(obj, &info, H5O_INFO_BASIC));
  std::string key(sizeof(info.fileno) + sizeof(info.addr), '\0');
  std::memcpy(key.data(), &info.fileno, sizeof(info.fileno));
  std::memcpy(key.data() + sizeof(info.fileno), &info.addr, sizeof(info.addr));
#endif
  return key;
}

void list_group(hid_t group, const std::string& prefix, std::set<std::string>& seen, std::vector<std::string>& out) {
  H5G_info_t info{};
  KHALO_H5_CHECK(H5Gget_info(group, &info));
  // Creation order when the file tracks it (khalo's files do), else by name.
  H5_index_t index = H5_INDEX_CRT_ORDER;
  if (info.nlinks > 0 && H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, 0, nullptr, 0, H5P_DEFAULT) < 0) {
    H5Eclear2(H5E_DEFAULT);
    index = H5_INDEX_NAME;
  }
  for (hsize_t i = 0; i < info.nlinks; ++i) {
    const ssize_t len = KHALO_H5_CHECK(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, nullptr, 0, H5P_DEFAULT));
    std::string name(static_cast<std::size_t>(len) + 1, '\0');
    KHALO_H5_CHECK(H5Lget_name_by_idx(group, ".", index, H5_ITER_INC, i, name.data(), name.size(), H5P_DEFAULT));
    name.resize(static_cast<std::size_t>(len));
    Object obj(H5Oopen(group, name.c_str(), H5P_DEFAULT));
    if (!obj) {  // a dangling or external link: not ours to follow
      H5Eclear2(H5E_DEFAULT);
      continue;
    }
    const H5I_type_t type = H5Iget_type(obj.get());
    if (type == H5I_DATASET) out.push_back(prefix + "/" + name);
    if (type == H5I_GROUP && seen.insert(object_key(obj.get())).second) {
      list_group(obj.get(), prefix + "/" + name, seen, out);
    }
  }
}

}  // namespace

std::vector<std::string> list_datasets(hid_t group) {
  std::set<std::string> seen{object_key(group)};
  std::vector<std::string> out;
  list_group(group, "", seen, out);
  return out;
}

}  // namespace khalo::io::detail
