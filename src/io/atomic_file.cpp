#include "atomic_file.hpp"

#include "collective.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <random>
#include <stdexcept>

namespace khalo::io::detail {

namespace fs = std::filesystem;

namespace {

constexpr const char* temp_tag = ".khalo-tmp-";

std::string host_name() {
  char name[256] = {};
  if (::gethostname(name, sizeof(name) - 1) != 0) return {};
  return name;
}

// ".NAME.khalo-tmp-" for target NAME: every temporary of that target starts so.
std::string temp_prefix(const fs::path& target) { return "." + target.filename().string() + temp_tag; }

fs::path directory_of(const fs::path& target) { return target.has_parent_path() ? target.parent_path() : "."; }

// "<pid>-<random>@<host>" (what a writer names its temporary after), or no pid when \p rest is not that:
// another target's temporary whose name merely begins like this one's.
struct TempName {
  long pid = -1;
  std::string host;  // "" for names written before the host was recorded
};
TempName parse_temp_rest(const std::string& rest) {
  TempName t;
  std::size_t at = 0;
  auto digits = [&] {
    const std::size_t begin = at;
    while (at < rest.size() && rest[at] >= '0' && rest[at] <= '9') ++at;
    return at > begin && at - begin < 12;
  };
  if (!digits()) return t;
  const long pid = std::strtol(rest.substr(0, at).c_str(), nullptr, 10);
  if (at >= rest.size() || rest[at] != '-') return t;
  ++at;
  if (!digits()) return t;
  if (at < rest.size()) {
    if (rest[at] != '@' || rest.find('/', at) != std::string::npos) return t;
    t.host = rest.substr(at + 1);
  }
  t.pid = pid;
  return t;
}

bool alive_here(const TempName& t, const std::string& here) {
  if (t.host.empty() || t.host != here) return false;
  return ::kill(static_cast<pid_t>(t.pid), 0) == 0 || errno == EPERM;
}

long stale_age_s() {
  const char* env = std::getenv("KHALO_STALE_TEMP_SECONDS");
  if (env == nullptr || *env == '\0') return AtomicFile::default_stale_age_s;
  char* end = nullptr;
  const long v = std::strtol(env, &end, 10);
  return (*end == '\0' && v >= 0) ? v : AtomicFile::default_stale_age_s;
}

void fsync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd < 0) return;  // best effort: some file systems refuse directory fds
  ::fsync(fd);
  ::close(fd);
}

std::string mpi_error_text(int code) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  MPI_Error_string(code, text, &len);
  return std::string(text, static_cast<std::size_t>(len));
}

}  // namespace

std::vector<std::string> remove_stale_temporaries(const std::string& target, long max_age_s) {
  const fs::path t(target);
  const std::string prefix = temp_prefix(t);
  const std::string here = host_name();
  const std::time_t now = std::time(nullptr);
  std::vector<std::string> removed;
  std::error_code ec;
  for (fs::directory_iterator it(directory_of(t), ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    const TempName parsed = parse_temp_rest(name.substr(prefix.size()));
    if (parsed.pid < 0 || alive_here(parsed, here)) continue;
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    // A modification time ahead of time() is age 0: the kernel may stamp a file from a finer
    // clock than time()'s, a second ahead of it at a second's turn (and another host's file
    // server may run ahead), and a file of age 0 is stale at KHALO_STALE_TEMP_SECONDS=0.
    if (std::max<std::time_t>(0, now - st.st_mtime) < max_age_s) continue;
    if (::unlink(it->path().c_str()) == 0) removed.push_back(name);
  }
  return removed;
}

AtomicFile::AtomicFile(MPI_Comm comm, const std::string& target, const std::string& where) : target_(target) {
  int rank = 0;
  KHALO_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  std::string temp;
  collectively(comm, where, [&] {
    if (rank != 0) return;
    const fs::path t(target);
    const fs::path dir = directory_of(t);
    if (t.filename().empty()) throw std::runtime_error("the path names no file");
    if (!fs::is_directory(dir)) throw std::runtime_error("directory '" + dir.string() + "' does not exist");
    if (::access(dir.c_str(), W_OK) != 0) throw std::runtime_error("directory '" + dir.string() + "' is not writable");
    if (fs::is_directory(t)) throw std::runtime_error("the target is a directory");
    const long age = stale_age_s();
    const auto removed = remove_stale_temporaries(target, age);
    if (!removed.empty()) {
      std::string line = where + "removed " + std::to_string(removed.size()) + " stale temporar" +
                         (removed.size() == 1 ? "y" : "ies") + " older than " + std::to_string(age) + " s:";
      for (const auto& name : removed) line += " " + name;
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    std::random_device rd;
    temp = (dir / (temp_prefix(t) + std::to_string(::getpid()) + "-" + std::to_string(rd() % 1000000000u) + "@" +
                   host_name()))
               .string();
  });
  int len = static_cast<int>(temp.size());
  KHALO_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, 0, comm));
  temp.resize(static_cast<std::size_t>(len));
  KHALO_MPI_CHECK(MPI_Bcast(temp.data(), len, MPI_CHAR, 0, comm));
  temp_ = temp;
}

void AtomicFile::commit(MPI_Comm comm, const std::string& where) {
  int rank = 0;
  KHALO_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  auto fail_if_any = [&](const std::string& error) {
    try {
      khalo::detail::throw_if_any<Error>(comm, error.empty() ? error : where + error);
    } catch (const Error&) {
      if (rank == 0) discard();
      throw;
    }
  };
  // Every rank's writes reach the disk, whichever node they were made on: MPI_File_sync is collective
  // and syncs each process's own file handle.
  MPI_File fh = MPI_FILE_NULL;
  const int open_rc = MPI_File_open(comm, temp_.c_str(), MPI_MODE_RDWR, MPI_INFO_NULL, &fh);
  // A rank that did open it keeps the handle when another failed: closing it is collective.
  fail_if_any(open_rc == MPI_SUCCESS ? "" : "cannot open the finished file to sync it: " + mpi_error_text(open_rc));
  const int sync_rc = MPI_File_sync(fh);
  const int close_rc = MPI_File_close(&fh);
  fail_if_any(sync_rc != MPI_SUCCESS    ? "cannot sync the finished file: " + mpi_error_text(sync_rc)
              : close_rc != MPI_SUCCESS ? "cannot close the finished file: " + mpi_error_text(close_rc)
                                        : "");
  // Every rank has synced (the agreement above is a collective after each rank's sync); now the name.
  collectively(comm, where, [&] {
    if (rank != 0) return;
    if (std::rename(temp_.c_str(), target_.c_str()) != 0) {
      const std::string why = std::strerror(errno);
      discard();
      throw std::runtime_error("cannot rename the finished file over the target: " + why);
    }
    fsync_directory(directory_of(target_));
  });
}

void AtomicFile::discard() const noexcept {
  if (!temp_.empty()) ::unlink(temp_.c_str());
}

}  // namespace khalo::io::detail
