#include "probe.hpp"
#include "spawn.hpp"

#include <khalo/config.hpp>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

/// Defined by a source that CMake adds to every program linking khalo::khalo: in the build tree it names the
/// helper built beside the library, in an installed package the installed one. Absent otherwise.
extern "C" const char* khalo_h5probe_linked_path() __attribute__((weak));

namespace khalo::io::detail {

namespace {

bool is_executable_file(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

std::string executable_dir() {
  std::string buf(4096, '\0');
  const ssize_t n = ::readlink("/proc/self/exe", buf.data(), buf.size() - 1);
  if (n <= 0) return {};
  buf.resize(static_cast<std::size_t>(n));
  const auto slash = buf.rfind('/');
  return slash == std::string::npos ? std::string() : buf.substr(0, slash);
}

int timeout_s() {
  const char* env = std::getenv("KHALO_H5PROBE_TIMEOUT");
  const long v = env != nullptr ? std::strtol(env, nullptr, 10) : 0;
  return v > 0 && v < 86400 ? static_cast<int>(v) : 60;
}

std::string first_line(const std::string& out) { return out.substr(0, out.find('\n')); }

}  // namespace

std::vector<std::string> h5probe_candidates() {
  std::vector<std::string> out;
  if (khalo_h5probe_linked_path != nullptr && khalo_h5probe_linked_path() != nullptr) {
    out.emplace_back(khalo_h5probe_linked_path());
  }
  if (const std::string dir = executable_dir(); !dir.empty()) {
    out.push_back(dir + "/khalo-h5probe");
    out.push_back(dir + "/../libexec/khalo/khalo-h5probe");
  }
  out.emplace_back(KHALO_H5PROBE_INSTALL_PATH);
  return out;
}

std::string find_h5probe() {
  if (const char* env = std::getenv("KHALO_H5PROBE"); env != nullptr && *env != '\0') {
    if (std::strcmp(env, "none") == 0) return {};
    if (!is_executable_file(env)) {
      throw std::runtime_error(std::string("cannot check the file: KHALO_H5PROBE='") + env +
                               "' is not an executable file");
    }
    return env;
  }
  const auto candidates = h5probe_candidates();
  std::string tried;
  for (const auto& c : candidates) {
    if (is_executable_file(c)) return c;
    tried += (tried.empty() ? "" : ", ") + c;
  }
  throw std::runtime_error("cannot check the file: the helper khalo-h5probe was not found (looked for " + tried +
                           "); set KHALO_H5PROBE to its path, or to 'none' to trust input files unchecked");
}

std::string probe_untrusted_file(const std::string& path) {
  const std::string helper = find_h5probe();
  if (helper.empty()) return {};
  const int limit = timeout_s();
  int fds[2] = {-1, -1};
  if (::pipe2(fds, O_CLOEXEC) != 0) {
    throw std::runtime_error(std::string("cannot check the file: pipe: ") + std::strerror(errno));
  }
  pid_t pid = -1;
  int spawn_rc = 0;
  {
    detail::SpawnSetup setup(detail::kDevNull, fds[1], detail::kDevNull);
    std::string arg0 = helper, arg1 = path;
    char* argv[] = {arg0.data(), arg1.data(), nullptr};
    spawn_rc = ::posix_spawn(&pid, helper.c_str(), &setup.actions, &setup.attr, argv, environ);
  }
  ::close(fds[1]);
  if (spawn_rc != 0) {
    ::close(fds[0]);
    throw std::runtime_error("cannot check the file: cannot start '" + helper + "': " + std::strerror(spawn_rc));
  }
  using clock = std::chrono::steady_clock;
  const auto deadline = clock::now() + std::chrono::seconds(limit);
  auto ms_left = [&] { return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count(); };
  std::string out;
  bool killed = false;
  while (true) {  // until the helper closes its end (it ended) or the deadline
    if (ms_left() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(std::min<long long>(ms_left(), 1000)));
    if (n < 0 && errno != EINTR) break;
    if (n <= 0) continue;
    char buf[4096];
    const ssize_t got = ::read(fds[0], buf, sizeof(buf));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) break;
    if (out.size() < 65536) out.append(buf, static_cast<std::size_t>(got));
  }
  ::close(fds[0]);
  int status = 0;
  bool reaped = false;
  while (true) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      reaped = true;
      break;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;  // ECHILD: a handler of the host application reaped it; judge by what it said
    if (!killed && ms_left() <= 0) {
      ::kill(pid, SIGKILL);
      killed = true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const std::string line = first_line(out);
  const std::string banner = std::string(h5probe_banner) + " ";
  const std::string verdict = line.compare(0, banner.size(), banner) == 0 ? line.substr(banner.size()) : "";
  const bool signaled = reaped && WIFSIGNALED(status);
  if (killed || (signaled && WTERMSIG(status) == SIGALRM)) {
    return "damaged file (reading its metadata did not end within " + std::to_string(limit) + " s)";
  }
  if (signaled) {
    return std::string("damaged file (the HDF5 library crashed reading its metadata: ") + strsignal(WTERMSIG(status)) +
           ")";
  }
  const int code = reaped && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (verdict.compare(0, 2, "ok") == 0 && (code == 0 || !reaped)) return {};
  if (verdict.compare(0, 10, "hdf5-error") == 0 && (code == 3 || !reaped)) return {};
  throw std::runtime_error("cannot check the file: '" + helper + "' did not answer as khalo-h5probe (exit " +
                           std::to_string(code) + (line.empty() ? ", no output" : ", said '" + line + "'") + ")");
}

}  // namespace khalo::io::detail
