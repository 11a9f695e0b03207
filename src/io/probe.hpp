#pragma once
// Private to src/io: vetting an untrusted HDF5 file in a process of its own.
//
// HDF5 1.10 crashes, rather than failing, on some damaged metadata (a test that
// flips random bytes finds such files). So before a reader lets HDF5 parse a
// file in the MPI process, the helper executable khalo-h5probe parses everything
// the reader will (every dataset's type, shape and attributes, and the first and
// last element, which walks any chunk index). It is started with posix_spawn:
// no fork of the MPI process, whose address space may be large, pinned or
// shared with progress threads.

#include <string>
#include <vector>

namespace khalo::io::detail {

/// The line the helper prints first, and its version of the protocol.
inline constexpr const char* h5probe_banner = "khalo-h5probe/1";

/// Where the helper is, searched in this order:
///  1. the environment variable KHALO_H5PROBE (a path; "none" turns probing off, trusting every file);
///  2. the helper that was built or installed with the khalo this program linked (set at link time: the
///     build tree's, or the installed package's as found by find_package(khalo));
///  3. khalo-h5probe beside the running executable (/proc/self/exe), then ../libexec/khalo/ from there;
///  4. the libexec directory khalo was configured to install into (KHALO_H5PROBE_INSTALL_PATH).
/// Returns "" for "none"; throws std::runtime_error naming every place it looked when there is none.
std::string find_h5probe();

/// The paths find_h5probe() tries after the environment, in order.
std::vector<std::string> h5probe_candidates();

/// Runs the helper on \p path. Returns "" when the file parses, or when HDF5 fails on it cleanly (the reader
/// then meets and reports HDF5's own error); else "damaged file (...)", when parsing crashed or did not
/// end within KHALO_H5PROBE_TIMEOUT seconds (default 60). Throws std::runtime_error when the helper
/// cannot be found or run, or does not answer as khalo-h5probe.
std::string probe_untrusted_file(const std::string& path);

}  // namespace khalo::io::detail
