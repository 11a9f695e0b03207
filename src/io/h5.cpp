#include "h5.hpp"

namespace khalo::io::detail {

std::string h5_error_text() {
  std::string text;
  H5Ewalk2(
      H5E_DEFAULT, H5E_WALK_DOWNWARD,
      [](unsigned, const H5E_error2_t* e, void* out) -> herr_t {
        if (e->desc != nullptr && *e->desc != '\0') *static_cast<std::string*>(out) = e->desc;  // innermost wins
        return 0;
      },
      &text);
  H5Eclear2(H5E_DEFAULT);
  return text.empty() ? "unknown HDF5 error" : text;
}

PropList local_read_fapl() {
  PropList fapl(KHALO_H5_CHECK(H5Pcreate(H5P_FILE_ACCESS)));
  KHALO_H5_CHECK(H5Pset_fapl_sec2(fapl.get()));
#if H5_VERSION_GE(1, 10, 7)
  KHALO_H5_CHECK(H5Pset_file_locking(fapl.get(), true, true));
#endif
  return fapl;
}

}  // namespace khalo::io::detail
