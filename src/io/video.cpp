#include "video.hpp"
#include "spawn.hpp"

#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <sstream>
#include <stdexcept>
#include <utility>

extern char** environ;

namespace khalo::io::detail {

namespace {

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

// \p name in the directories of PATH, or "".
std::string search_path(const std::string& name) {
  const char* env = std::getenv("PATH");
  const std::string path = env != nullptr ? env : "";
  std::size_t begin = 0;
  while (begin <= path.size()) {
    const std::size_t end = std::min(path.find(':', begin), path.size());
    const std::string dir = end > begin ? path.substr(begin, end - begin) : ".";
    const std::string candidate = dir + "/" + name;
    if (is_executable_file(candidate)) return candidate;
    begin = end + 1;
  }
  return {};
}

// Blocks SIGPIPE in this thread while alive; a SIGPIPE raised meanwhile by a write to a closed pipe (which
// then fails with EPIPE) is consumed before the old mask returns, so it is never delivered.
class NoSigpipe {
 public:
  NoSigpipe() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    sigemptyset(&pending);
    sigpending(&pending);
    was_pending_ = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_, &old_);
  }
  ~NoSigpipe() {
    if (raised_ && !was_pending_) {
      const timespec zero{0, 0};
      while (sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    pthread_sigmask(SIG_SETMASK, &old_, nullptr);
  }
  void raised() { raised_ = true; }
  NoSigpipe(const NoSigpipe&) = delete;
  NoSigpipe& operator=(const NoSigpipe&) = delete;

 private:
  sigset_t pipe_{};
  sigset_t old_{};
  bool was_pending_ = false;
  bool raised_ = false;
};

std::string fps_text(double fps) {
  std::ostringstream s;
  s.precision(12);
  s << fps;
  return s.str();
}

}  // namespace

std::string find_ffmpeg() {
  const char* env = std::getenv("KHALO_FFMPEG");
  const std::string name = env != nullptr && *env != '\0' ? env : "ffmpeg";
  if (name.find('/') != std::string::npos) {
    if (is_executable_file(name)) return name;
    throw std::runtime_error("--video needs ffmpeg, and KHALO_FFMPEG='" + name + "' is not an executable file");
  }
  std::string found = search_path(name);
  if (found.empty()) {
    throw std::runtime_error("--video needs ffmpeg on PATH (or KHALO_FFMPEG set to its path); '" + name +
                             "' was not found on PATH");
  }
  return found;
}

std::string container_format(const std::string& path) {
  const auto slash = path.rfind('/');
  const auto dot = path.rfind('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return {};
  std::string ext = path.substr(dot + 1);
  for (auto& c : ext) c = static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  if (ext == "mp4" || ext == "m4v") return "mp4";
  if (ext == "mov") return "mov";
  if (ext == "mkv") return "matroska";
  if (ext == "webm") return "webm";
  if (ext == "avi") return "avi";
  return {};
}

std::vector<std::string> ffmpeg_arguments(long width, long height, double fps, const std::string& format,
                                          const std::string& output) {
  return {"-hide_banner", "-loglevel", "error", "-y",
          // input: what FrameSink writes
          "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", std::to_string(width) + "x" + std::to_string(height), "-r",
          fps_text(fps), "-i", "-",
          // output: 4:2:0 chroma, which players expect, needs even sizes: odd ones get a black row or column
          "-an", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", "-pix_fmt", "yuv420p", "-f", format, output};
}

VideoPipe::VideoPipe(const std::string& program, const std::vector<std::string>& args) : program_(program) {
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("cannot start ffmpeg: pipe: ") + std::strerror(errno));
  }
  std::vector<std::string> storage;
  storage.push_back(program);
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc = 0;
  {
    detail::SpawnSetup setup(fds[0], detail::kDevNull, detail::kInherit);
    rc = ::posix_spawn(&pid, program.c_str(), &setup.actions, &setup.attr, argv.data(), environ);
  }
  ::close(fds[0]);
  if (rc != 0) {
    ::close(fds[1]);
    throw std::runtime_error("cannot start '" + program + "': " + std::strerror(rc));
  }
  pid_ = pid;
  stdin_fd_ = fds[1];
}

VideoPipe::VideoPipe(VideoPipe&& other) noexcept
    : program_(std::move(other.program_)),
      pid_(std::exchange(other.pid_, -1)),
      stdin_fd_(std::exchange(other.stdin_fd_, -1)) {}

VideoPipe& VideoPipe::operator=(VideoPipe&& other) noexcept {
  if (this != &other) {
    kill();
    program_ = std::move(other.program_);
    pid_ = std::exchange(other.pid_, -1);
    stdin_fd_ = std::exchange(other.stdin_fd_, -1);
  }
  return *this;
}

void VideoPipe::write(const void* data, std::size_t bytes) {
  if (stdin_fd_ < 0) throw std::runtime_error("ffmpeg is not running");
  const char* p = static_cast<const char*>(data);
  NoSigpipe guard;
  while (bytes > 0) {
    const ssize_t n = ::write(stdin_fd_, p, bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      if (err != EPIPE) throw std::runtime_error(std::string("cannot write to ffmpeg: ") + std::strerror(err));
      guard.raised();
      ::close(std::exchange(stdin_fd_, -1));
      throw std::runtime_error("ffmpeg stopped reading its input: " + wait_for_exit());
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void VideoPipe::finish() {
  if (stdin_fd_ >= 0) ::close(std::exchange(stdin_fd_, -1));
  if (pid_ <= 0) throw std::runtime_error("ffmpeg is not running");
  const std::string how = wait_for_exit();
  if (!how.empty()) throw std::runtime_error("ffmpeg failed: " + how);
}

std::string VideoPipe::wait_for_exit() {
  int status = 0;
  pid_t r = -1;
  do {
    r = ::waitpid(pid_, &status, 0);
  } while (r < 0 && errno == EINTR);
  pid_ = -1;
  // ECHILD: a handler of the host application reaped it; its status is lost, and the output file judges.
  if (r < 0) return {};
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status) == 0 ? ""
                                    : "'" + program_ + "' exited with status " + std::to_string(WEXITSTATUS(status)) +
                                          " (its messages are on stderr)";
  }
  if (WIFSIGNALED(status)) return "'" + program_ + "' was killed by signal " + strsignal(WTERMSIG(status));
  return "'" + program_ + "' ended abnormally";
}

void VideoPipe::kill() noexcept {
  // Killed before its input closes: a program that took the end of its input for the end of the video would
  // otherwise go on to write the file.
  if (pid_ > 0) ::kill(pid_, SIGKILL);
  if (stdin_fd_ >= 0) ::close(std::exchange(stdin_fd_, -1));
  if (pid_ <= 0) return;
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

}  // namespace khalo::io::detail
