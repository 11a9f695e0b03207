#include "h5_attributes.hpp"

#include "h5.hpp"

namespace khalo::io::detail {

void write_string_attribute(hid_t obj, const char* name, const std::string& value) {
  Datatype type(KHALO_H5_CHECK(H5Tcopy(H5T_C_S1)));
  KHALO_H5_CHECK(H5Tset_size(type.get(), value.size() + 1));
  KHALO_H5_CHECK(H5Tset_strpad(type.get(), H5T_STR_NULLTERM));
  Dataspace scalar(KHALO_H5_CHECK(H5Screate(H5S_SCALAR)));
  Attribute a(KHALO_H5_CHECK(H5Acreate2(obj, name, type.get(), scalar.get(), H5P_DEFAULT, H5P_DEFAULT)));
  KHALO_H5_CHECK(H5Awrite(a.get(), type.get(), value.c_str()));
}

void write_int_attribute(hid_t obj, const char* name, std::int64_t value) {
  Dataspace scalar(KHALO_H5_CHECK(H5Screate(H5S_SCALAR)));
  Attribute a(KHALO_H5_CHECK(H5Acreate2(obj, name, H5T_STD_I64LE, scalar.get(), H5P_DEFAULT, H5P_DEFAULT)));
  KHALO_H5_CHECK(H5Awrite(a.get(), H5T_NATIVE_INT64, &value));
}

namespace {
// One element, so that a read fills exactly one value (a file may declare any dataspace).
bool is_single(hid_t attribute) {
  Dataspace space(KHALO_H5_CHECK(H5Aget_space(attribute)));
  return KHALO_H5_CHECK(H5Sget_simple_extent_npoints(space.get())) == 1;
}
}  // namespace

std::optional<std::int64_t> read_int_attribute(hid_t obj, const char* name) {
  if (KHALO_H5_CHECK(H5Aexists(obj, name)) <= 0) return std::nullopt;
  Attribute a(KHALO_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
  Datatype t(KHALO_H5_CHECK(H5Aget_type(a.get())));
  if (H5Tget_class(t.get()) != H5T_INTEGER || !is_single(a.get())) return std::nullopt;
  std::int64_t v = 0;
  KHALO_H5_CHECK(H5Aread(a.get(), H5T_NATIVE_INT64, &v));
  return v;
}

std::string read_string_attribute(hid_t obj, const char* name) {
  if (KHALO_H5_CHECK(H5Aexists(obj, name)) <= 0) return {};
  Attribute a(KHALO_H5_CHECK(H5Aopen(obj, name, H5P_DEFAULT)));
  Datatype t(KHALO_H5_CHECK(H5Aget_type(a.get())));
  if (H5Tget_class(t.get()) != H5T_STRING || !is_single(a.get())) return {};
  if (KHALO_H5_CHECK(H5Tis_variable_str(t.get())) > 0) {
    Datatype mem(KHALO_H5_CHECK(H5Tcopy(H5T_C_S1)));
    KHALO_H5_CHECK(H5Tset_size(mem.get(), H5T_VARIABLE));
    KHALO_H5_CHECK(H5Tset_cset(mem.get(), H5Tget_cset(t.get())));
    char* s = nullptr;
    KHALO_H5_CHECK(H5Aread(a.get(), mem.get(), &s));
    std::string out = s != nullptr ? s : "";
    H5free_memory(s);
    return out.size() <= max_string_attribute ? out : std::string();
  }
  const std::size_t size = H5Tget_size(t.get());
  if (size == 0 || size > max_string_attribute) return {};
  std::string out(size, '\0');
  KHALO_H5_CHECK(H5Aread(a.get(), t.get(), out.data()));
  return out.substr(0, out.find('\0'));
}

}  // namespace khalo::io::detail
