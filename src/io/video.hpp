#pragma once
// Private to src/io: feeding raw frames to an ffmpeg process.
//
// ffmpeg is started with posix_spawn (no fork of the MPI process, as for
// khalo-h5probe), its stdin a pipe, its stderr this process's (so its own
// complaints reach the job's log). A write to the pipe after ffmpeg died is an
// error (EPIPE), never a SIGPIPE that kills the rank. Knows nothing of MPI.

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <vector>

namespace khalo::io::detail {

/// The ffmpeg to run: the environment variable KHALO_FFMPEG (a path, or a name
/// searched on PATH), else "ffmpeg" on PATH. Throws std::runtime_error
/// ("--video needs ffmpeg on PATH ...") when there is none.
std::string find_ffmpeg();

/// ffmpeg's name of the container for \p path's extension (".mp4" -> "mp4",
/// ".mkv" -> "matroska", ...), or "" for an extension it is not chosen for.
std::string container_format(const std::string& path);

/// ffmpeg's arguments (after argv[0]): rgb24 rawvideo frames of \p width x
/// \p height at \p fps on stdin, encoded to \p output in \p format.
std::vector<std::string> ffmpeg_arguments(long width, long height, double fps, const std::string& format,
                                          const std::string& output);

class VideoPipe {
 public:
  VideoPipe() = default;
  /// Starts \p program with \p args; throws std::runtime_error when it cannot.
  VideoPipe(const std::string& program, const std::vector<std::string>& args);
  ~VideoPipe() { kill(); }
  VideoPipe(VideoPipe&& other) noexcept;
  VideoPipe& operator=(VideoPipe&& other) noexcept;
  VideoPipe(const VideoPipe&) = delete;
  VideoPipe& operator=(const VideoPipe&) = delete;

  bool running() const noexcept { return pid_ > 0; }
  /// Writes all of \p data to the program's stdin; throws std::runtime_error
  /// when the program stopped reading (it exited: its status is in the message).
  void write(const void* data, std::size_t bytes);
  /// Closes stdin and waits for the program to end; throws std::runtime_error
  /// unless it exited with status 0.
  void finish();
  /// Ends the program (SIGKILL) and reaps it; nothing when none is running.
  void kill() noexcept;

 private:
  // Reaps the program, blocking; "" when it exited 0, else how it ended.
  std::string wait_for_exit();
  std::string program_;
  pid_t pid_ = -1;
  int stdin_fd_ = -1;
};

}  // namespace khalo::io::detail
