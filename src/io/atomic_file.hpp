#pragma once
// Private to src/io: a file that appears under its name complete or not at all.
// It is written under a temporary name beside the target (same directory, so
// the same file system and an atomic rename), made durable on every rank that
// wrote to it, then renamed over the target. Knows nothing of HDF5.

#include <mpi.h>

#include <string>
#include <vector>

namespace khalo::io::detail {

class AtomicFile {
 public:
  /// Temporaries of a target older than this (seconds) are stale and removed by the next writer of that
  /// target. Long enough for any write still in progress to have touched its file since; the environment
  /// variable KHALO_STALE_TEMP_SECONDS overrides it (tests).
  static constexpr long default_stale_age_s = 3600;

  AtomicFile() = default;
  /// Collective over \p comm. Rank 0 checks that the target's directory exists and is writable, removes
  /// stale temporaries of the same target (and says so in one line on stderr), and names a fresh
  /// temporary; every rank learns its name. Throws io::Error on every rank, prefixed by \p where.
  AtomicFile(MPI_Comm comm, const std::string& target, const std::string& where);

  const std::string& target() const noexcept { return target_; }
  const std::string& temp() const noexcept { return temp_; }

  /// Collective, once the temporary is closed on every rank: every rank opens it with MPI-IO and
  /// MPI_File_sync's it (its own writes reach the disk, on every node), then rank 0 renames it over the
  /// target and syncs the directory. On failure the temporary is removed and every rank throws io::Error.
  void commit(MPI_Comm comm, const std::string& where);

  /// Local and best effort: removes the temporary if it is still there. Any rank may call it, alone.
  void discard() const noexcept;

 private:
  std::string target_;
  std::string temp_;
};

/// The temporaries of \p target at least \p max_age_s seconds old (by modification time; one
/// stamped after time() is of age 0), except those named by a process on this host that is still
/// alive. Removes them and returns their names.
std::vector<std::string> remove_stale_temporaries(const std::string& target, long max_age_s);

}  // namespace khalo::io::detail
