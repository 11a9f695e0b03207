#pragma once
// What posix_spawn needs to start a helper program (khalo-h5probe, ffmpeg) from an MPI
// process, owned and released however the call ends. Never fork: an MPI process must not.

#include <spawn.h>

namespace khalo::io::detail {

/// A standard stream of the child: a descriptor to dup2 onto it, /dev/null, or this process's.
constexpr int kDevNull = -1;
constexpr int kInherit = -2;

struct SpawnSetup {
  posix_spawn_file_actions_t actions{};
  posix_spawnattr_t attr{};
  /// The child's stdin, stdout and stderr (a descriptor, kDevNull or kInherit); every other
  /// descriptor is closed in the child (MPI's sockets and files stay here, glibc >= 2.34),
  /// and the child starts with default signal handlers and no blocked signal: the MPI
  /// runtime's handlers and mask are not the helper's, and a crash there must be a plain
  /// death by signal that this process sees.
  SpawnSetup(int in, int out, int err);
  ~SpawnSetup();
  SpawnSetup(const SpawnSetup&) = delete;
  SpawnSetup& operator=(const SpawnSetup&) = delete;
};

}  // namespace khalo::io::detail
