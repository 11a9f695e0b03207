#pragma once
// Private to src/io: one owner type per HDF5 id kind, one checking macro for
// every HDF5 call (Release builds too), and the guard that keeps HDF5 from
// printing its error stack while khalo's own calls run. Needs only HDF5, so
// that the probe helper (khalo-h5probe) can use it without MPI or Kokkos.

#include <hdf5.h>

#include <stdexcept>
#include <string>
#include <utility>

namespace khalo::io::detail {

/// The innermost message on HDF5's error stack (what actually went wrong); clears the stack.
std::string h5_error_text();

/// While it lives, HDF5 prints nothing on error (khalo reports errors itself);
/// the caller's setting (H5Eget_auto2) comes back when it goes, so a host
/// application that wants HDF5's error printing keeps it outside khalo's calls.
class QuietHdf5Errors {
 public:
  QuietHdf5Errors() noexcept {
    // An application that set a version-1 handler (H5Eset_auto1) cannot have it read back here: its
    // setting is left as it is rather than lost.
    restore_ = H5Eget_auto2(H5E_DEFAULT, &func_, &data_) >= 0;
    if (restore_) H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  }
  ~QuietHdf5Errors() {
    if (restore_) H5Eset_auto2(H5E_DEFAULT, func_, data_);
  }
  QuietHdf5Errors(const QuietHdf5Errors&) = delete;
  QuietHdf5Errors& operator=(const QuietHdf5Errors&) = delete;

 private:
  H5E_auto2_t func_ = nullptr;
  void* data_ = nullptr;
  bool restore_ = false;
};

[[noreturn]] inline void throw_h5_error(const char* call, const char* file, int line) {
  throw std::runtime_error(std::string("HDF5 call failed: ") + call + " -> " + h5_error_text() + " (" + file + ":" +
                           std::to_string(line) + ")");
}

/// Owns an HDF5 id and closes it with \p Close; move-only.
template <herr_t (*Close)(hid_t)>
class H5Handle {
 public:
  H5Handle() = default;
  explicit H5Handle(hid_t id) : id_(id) {}
  H5Handle(const H5Handle&) = delete;
  H5Handle& operator=(const H5Handle&) = delete;
  H5Handle(H5Handle&& o) noexcept : id_(std::exchange(o.id_, H5I_INVALID_HID)) {}
  H5Handle& operator=(H5Handle&& o) noexcept {
    if (this != &o) {
      reset();
      id_ = std::exchange(o.id_, H5I_INVALID_HID);
    }
    return *this;
  }
  ~H5Handle() { reset(); }
  hid_t get() const noexcept { return id_; }
  /// Gives up ownership without closing (an id whose close would be collective, on a rank that must not enter one).
  hid_t release() noexcept { return std::exchange(id_, H5I_INVALID_HID); }
  explicit operator bool() const noexcept { return id_ >= 0; }
  /// Closes now and reports a failure (a destructor cannot).
  void close();
  void reset() noexcept {
    if (id_ >= 0) Close(id_);
    id_ = H5I_INVALID_HID;
  }

 private:
  hid_t id_ = H5I_INVALID_HID;
};

using File = H5Handle<H5Fclose>;
using Dataset = H5Handle<H5Dclose>;
using Dataspace = H5Handle<H5Sclose>;
using Datatype = H5Handle<H5Tclose>;
using PropList = H5Handle<H5Pclose>;
using Attribute = H5Handle<H5Aclose>;
using Group = H5Handle<H5Gclose>;
using Object = H5Handle<H5Oclose>;

}  // namespace khalo::io::detail

namespace khalo::io::detail {
/// File access for a reader on one process (POSIX I/O, no MPI): HDF5's file
/// locking where the file system supports it, ignored where it does not.
H5Handle<H5Pclose> local_read_fapl();

/// Passes an HDF5 return value (herr_t, hid_t, htri_t, ssize_t) through, throwing when negative.
template <class R>
R h5_check(R rc, const char* call, const char* file, int line) {
  if (rc < 0) throw_h5_error(call, file, line);
  return rc;
}
}  // namespace khalo::io::detail

/// Checks an HDF5 call that returns herr_t or hid_t (negative means failure).
#define KHALO_H5_CHECK(call) ::khalo::io::detail::h5_check((call), #call, __FILE__, __LINE__)

namespace khalo::io::detail {
template <herr_t (*Close)(hid_t)>
void H5Handle<Close>::close() {
  if (id_ >= 0) {
    const hid_t id = std::exchange(id_, H5I_INVALID_HID);
    KHALO_H5_CHECK(Close(id));
  }
}
}  // namespace khalo::io::detail
