#pragma once
/// \file
/// Field memory that the other ranks of a node can map: the segments behind
/// khalo::NodeSharedArena, the registry that tells the halo engine whether a View lies in one,
/// and the read-only mappings of a neighbour's segments. Not public.
///
/// A segment is an anonymous memfd (Linux): it has no name in /dev/shm, so a crash leaves
/// nothing behind. A neighbour maps it through /proc/<pid>/fd/<fd>, which the kernel allows
/// where the two processes may inspect each other (the same user and PID namespace; Yama's
/// ptrace restriction does not apply to it). The segment's first bytes hold a random token
/// and its size, which the mapper checks: a file descriptor number that the owner closed and
/// reused for another segment is never taken for the old one.

#include <khalo/detail/huge_pages.hpp>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <utility>

namespace khalo::detail {

/// Where a segment's data starts: its first page holds the header.
inline constexpr std::size_t kSharedFieldHeaderBytes = 4096;

/// The first bytes of a segment.
struct SharedFieldHeader {
  std::uint64_t magic;
  std::uint64_t token;
  std::uint64_t bytes;  // the whole segment, header included
};
inline constexpr std::uint64_t kSharedFieldMagic = 0x6b68616c6f2d6673ULL;  // "khalo-fs"

/// How a neighbour finds one segment of this process: the numbers a halo message carries.
struct SharedFieldId {
  std::int64_t pid = 0;
  std::int64_t fd = -1;
  std::int64_t token = 0;
  std::int64_t bytes = 0;
  bool operator==(const SharedFieldId& o) const {
    return pid == o.pid && fd == o.fd && token == o.token && bytes == o.bytes;
  }
};

/// A random token; the clock stands in on a machine without an entropy source.
inline std::int64_t shared_field_token() {
  try {
    std::random_device rd;
    return static_cast<std::int64_t>(((static_cast<std::uint64_t>(rd()) << 31) ^ rd()) & 0x7fffffffffffffffULL);
  } catch (const std::exception&) {
    return static_cast<std::int64_t>(std::chrono::steady_clock::now().time_since_epoch().count() &
                                     0x7fffffffffffffffLL);
  }
}

/// One segment this process created, mapped read-write; unmapped and closed with it.
class OwnedSharedFields {
 public:
  /// A segment of at least \p data_bytes after its header; nullptr (with \p why) when the
  /// node cannot give it (no memfd, no memory left: reserved here, so that it fails now and
  /// not with SIGBUS at a first touch).
  static std::unique_ptr<OwnedSharedFields> create(std::size_t data_bytes, std::string& why) {
    const std::size_t bytes = kSharedFieldHeaderBytes + data_bytes;
    const int fd = memfd_create("khalo-fields", MFD_CLOEXEC);
    if (fd < 0) {
      why = "memfd_create failed";
      return nullptr;
    }
    void* p = MAP_FAILED;
    const int err = posix_fallocate(fd, 0, static_cast<off_t>(bytes));
    if (err == 0) p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) {
      close(fd);
      why = err != 0 ? "the node has no room for " + std::to_string(bytes) + " B of shared memory"
                     : "mmap of the shared segment failed";
      return nullptr;
    }
    advise_huge_pages(static_cast<unsigned char*>(p) + kSharedFieldHeaderBytes, data_bytes);
    auto* h = static_cast<SharedFieldHeader*>(p);
    const std::int64_t token = shared_field_token();
    *h = {kSharedFieldMagic, static_cast<std::uint64_t>(token), bytes};
    SharedFieldId id{static_cast<std::int64_t>(getpid()), fd, token, static_cast<std::int64_t>(bytes)};
    return std::unique_ptr<OwnedSharedFields>(new OwnedSharedFields(id, static_cast<unsigned char*>(p)));
  }
  OwnedSharedFields(const OwnedSharedFields&) = delete;
  OwnedSharedFields& operator=(const OwnedSharedFields&) = delete;
  ~OwnedSharedFields() {
    munmap(base_, static_cast<std::size_t>(id_.bytes));
    close(static_cast<int>(id_.fd));
  }
  unsigned char* data() const noexcept { return base_ + kSharedFieldHeaderBytes; }
  std::size_t data_bytes() const noexcept { return static_cast<std::size_t>(id_.bytes) - kSharedFieldHeaderBytes; }
  const SharedFieldId& id() const noexcept { return id_; }

 private:
  OwnedSharedFields(SharedFieldId id, unsigned char* base) : id_(id), base_(base) {}
  SharedFieldId id_;
  unsigned char* base_;
};

/// Where a View's memory lies in one of this process's segments.
struct SharedFieldPlace {
  SharedFieldId id;
  std::int64_t offset = 0;  // of the pointer, from the segment's start (header included)
  std::int64_t room = 0;    // bytes from the pointer to the segment's end
};

/// The segments of this process, by the address of their data: what the halo engine asks
/// when it sends a face. Thread-safe.
class SharedFieldRegistry {
 public:
  static SharedFieldRegistry& instance() {
    static SharedFieldRegistry r;
    return r;
  }
  void add(const OwnedSharedFields& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    by_start_[reinterpret_cast<std::uintptr_t>(s.data())] = &s;
  }
  void remove(const OwnedSharedFields& s) {
    std::lock_guard<std::mutex> lock(mutex_);
    by_start_.erase(reinterpret_cast<std::uintptr_t>(s.data()));
  }
  /// The segment \p p lies in, if any.
  std::optional<SharedFieldPlace> find(const void* p) const {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_start_.upper_bound(a);
    if (it == by_start_.begin()) return std::nullopt;
    --it;
    const OwnedSharedFields& s = *it->second;
    if (a - it->first >= s.data_bytes()) return std::nullopt;
    const auto offset = static_cast<std::int64_t>(kSharedFieldHeaderBytes + (a - it->first));
    return SharedFieldPlace{s.id(), offset, s.id().bytes - offset};
  }
  /// Whether any segment exists: an exchange asks nothing more when none does.
  bool empty() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return by_start_.empty();
  }

 private:
  mutable std::mutex mutex_;
  std::map<std::uintptr_t, const OwnedSharedFields*> by_start_;
};

/// A neighbour's segment, mapped read-only here.
class PeerSharedFields {
 public:
  /// Maps \p id; nullptr when the kernel refuses (another PID namespace or user) or the file
  /// there is not the segment announced (its header's token and size differ).
  static std::shared_ptr<PeerSharedFields> open(const SharedFieldId& id) {
    const std::string path = "/proc/" + std::to_string(id.pid) + "/fd/" + std::to_string(id.fd);
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return nullptr;
    struct stat st {};
    void* p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size == id.bytes &&
        id.bytes >= static_cast<std::int64_t>(kSharedFieldHeaderBytes)) {
      p = mmap(nullptr, static_cast<std::size_t>(id.bytes), PROT_READ, MAP_SHARED, fd, 0);
    }
    ::close(fd);
    if (p == MAP_FAILED) return nullptr;
    const auto* h = static_cast<const SharedFieldHeader*>(p);
    if (h->magic != kSharedFieldMagic || h->token != static_cast<std::uint64_t>(id.token) ||
        h->bytes != static_cast<std::uint64_t>(id.bytes)) {
      munmap(p, static_cast<std::size_t>(id.bytes));
      return nullptr;
    }
    return std::shared_ptr<PeerSharedFields>(new PeerSharedFields(id, static_cast<const unsigned char*>(p)));
  }
  PeerSharedFields(const PeerSharedFields&) = delete;
  PeerSharedFields& operator=(const PeerSharedFields&) = delete;
  ~PeerSharedFields() { munmap(const_cast<unsigned char*>(base_), static_cast<std::size_t>(id_.bytes)); }
  /// The segment's start (its header), as the owner's offsets count.
  const unsigned char* base() const noexcept { return base_; }
  const SharedFieldId& id() const noexcept { return id_; }

 private:
  PeerSharedFields(SharedFieldId id, const unsigned char* base) : id_(id), base_(base) {}
  SharedFieldId id_;
  const unsigned char* base_;
};

/// A tiny segment of this process, made once, that neighbours map in a plan's handshake to
/// learn whether they can map this process's segments at all; nullptr where it cannot be made.
inline const OwnedSharedFields* shared_fields_probe() {
  static const std::unique_ptr<OwnedSharedFields> probe = [] {
    std::string why;
    return OwnedSharedFields::create(0, why);
  }();
  return probe.get();
}

}  // namespace khalo::detail
