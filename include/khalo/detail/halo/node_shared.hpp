#pragma once
/// \file
/// Node-shared send buffers: a rank whose neighbour runs on the same node packs a face into a
/// buffer in POSIX shared memory, and the neighbour unpacks it from there. That skips MPI's own
/// copy of a packed message (two copies instead of three; an MPI derived datatype also makes
/// two, through a pipeline of small fragments). MPI then carries only two empty messages per
/// face: "packed" (sender to receiver) and "read" (back), so that the sender never packs over a
/// face its neighbour is still reading. Not public.
///
/// Failure: a segment that cannot be created or mapped (no room in /dev/shm, ranks in separate
/// IPC namespaces) makes that message go through MPI as before; both sides learn it in the
/// plan's handshake. Segments are freed locally (munmap), never collectively, so a rank that
/// unwinds from an error frees its own without waiting for anyone; their names are removed as
/// soon as the neighbours have mapped them, so nothing is left in /dev/shm after a crash.

#include <khalo/detail/env_switch.hpp>
#include <khalo/detail/halo/handshake.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/mpi_error.hpp>

#include <mpi.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace khalo::detail {

/// Where a segment can be found: the name's parts, sent to the neighbours as integers.
struct SegmentName {
  std::int64_t pid = 0;
  std::int64_t serial = 0;
  std::int64_t token = 0;  // random: two containers on one node may reuse a pid
  std::int64_t bytes = 0;
  std::string path() const {
    return "/khalo." + std::to_string(pid) + "." + std::to_string(serial) + "." + std::to_string(token);
  }
};

/// One mapping of a POSIX shared-memory segment; unmapped when the last owner goes.
class SharedSegment {
 public:
  /// A new segment of \p bytes (reserved with posix_fallocate, so that a full /dev/shm fails
  /// here and not with SIGBUS later); nullptr when the node cannot give it.
  static std::shared_ptr<SharedSegment> create(std::size_t bytes) {
    static std::atomic<std::int64_t> serial{0};
    SegmentName name;
    name.pid = static_cast<std::int64_t>(getpid());
    name.serial = ++serial;
    name.token = random_token();
    name.bytes = static_cast<std::int64_t>(bytes);
    const std::string path = name.path();
    const int fd = shm_open(path.c_str(), O_CREAT | O_EXCL | O_RDWR, 0600);
    if (fd < 0) return nullptr;
    void* p = MAP_FAILED;
    if (posix_fallocate(fd, 0, static_cast<off_t>(bytes)) == 0) {
      p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    }
    close(fd);
    if (p == MAP_FAILED) {
      shm_unlink(path.c_str());
      return nullptr;
    }
    return std::shared_ptr<SharedSegment>(new SharedSegment(name, static_cast<unsigned char*>(p), true));
  }

  /// The segment a neighbour on this node created, mapped read-only; nullptr when it cannot be
  /// opened or is not the size announced.
  static std::shared_ptr<SharedSegment> open(const SegmentName& name) {
    const std::string path = name.path();
    const int fd = shm_open(path.c_str(), O_RDONLY, 0);
    if (fd < 0) return nullptr;
    struct stat st {};
    void* p = MAP_FAILED;
    if (fstat(fd, &st) == 0 && st.st_size == name.bytes) {
      p = mmap(nullptr, static_cast<std::size_t>(name.bytes), PROT_READ, MAP_SHARED, fd, 0);
    }
    close(fd);
    if (p == MAP_FAILED) return nullptr;
    return std::shared_ptr<SharedSegment>(new SharedSegment(name, static_cast<unsigned char*>(p), false));
  }

  SharedSegment(const SharedSegment&) = delete;
  SharedSegment& operator=(const SharedSegment&) = delete;
  ~SharedSegment() {
    munmap(data_, static_cast<std::size_t>(name_.bytes));
    unlink();
  }

  /// Removes the name (the creator's, once its neighbours have mapped it); the memory stays
  /// until every mapping is gone.
  void unlink() {
    if (owner_) shm_unlink(name_.path().c_str());
    owner_ = false;
  }
  unsigned char* data() const noexcept { return data_; }
  const SegmentName& name() const noexcept { return name_; }

 private:
  SharedSegment(SegmentName name, unsigned char* data, bool owner) : name_(name), data_(data), owner_(owner) {}
  // A machine without an entropy source still gets a segment: the clock stands in.
  static std::int64_t random_token() {
    try {
      return static_cast<std::int64_t>(std::random_device{}() & 0x7fffffffU);
    } catch (const std::exception&) {
      return static_cast<std::int64_t>(std::chrono::steady_clock::now().time_since_epoch().count() & 0x7fffffff);
    }
  }
  SegmentName name_;
  unsigned char* data_;
  bool owner_;
};

/// False when the environment turns node-shared buffers off for every Halo: KHALO_SHARED_MEMORY=0
/// (a node whose /dev/shm is too small, or to compare with MPI's own transport).
inline bool shared_memory_allowed() { return env_switch("KHALO_SHARED_MEMORY") != EnvSwitch::off; }

/// The ranks of \p comm that run on this rank's node (MPI_COMM_TYPE_SHARED). Collective.
inline std::vector<bool> ranks_on_my_node(MPI_Comm comm) {
  int size = 0;
  KHALO_MPI_CHECK(MPI_Comm_size(comm, &size));
  MPI_Comm node = MPI_COMM_NULL;
  KHALO_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &node));
  MPI_Group all = MPI_GROUP_NULL;
  MPI_Group local = MPI_GROUP_NULL;
  KHALO_MPI_CHECK(MPI_Comm_group(comm, &all));
  KHALO_MPI_CHECK(MPI_Comm_group(node, &local));
  int n = 0;
  KHALO_MPI_CHECK(MPI_Group_size(local, &n));
  std::vector<int> mine(static_cast<std::size_t>(n));
  std::vector<int> theirs(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) mine[static_cast<std::size_t>(i)] = i;
  KHALO_MPI_CHECK(MPI_Group_translate_ranks(local, n, mine.data(), all, theirs.data()));
  MPI_Group_free(&local);
  MPI_Group_free(&all);
  MPI_Comm_free(&node);
  std::vector<bool> on_node(static_cast<std::size_t>(size), false);
  for (int r : theirs) on_node[static_cast<std::size_t>(r)] = true;
  return on_node;
}

/// Tags of the plan's share handshake and of an exchange's "read" messages, above the
/// exchange's own (2 per split dimension) and below agree_in_place's.
inline constexpr int kShareTag = 1024;
inline constexpr int kReadTag = 2048;

/// Collective with the neighbours on this node (\p on_node): which messages go through the
/// sender's node-shared buffer \p segment (nullptr: none). For each message between two ranks
/// of one node, the sender tells the receiver where the face lies in its segment (or that it
/// does not pack it there), the receiver maps the segment and answers whether it could; both
/// then mark the message shared, or neither. Mapped segments are kept in \p mapped.
inline void share_on_node(MPI_Comm comm, const std::vector<bool>& on_node, std::vector<Phase>& phases,
                          const std::shared_ptr<SharedSegment>& segment,
                          std::vector<std::shared_ptr<SharedSegment>>& mapped) {
  // An offer: packs there?, then the segment's pid, serial, token and bytes, and the face's offset.
  auto offer_of = [&](const Message& m) {
    const bool packs = segment != nullptr && m.packed();
    const SegmentName n = packs ? segment->name() : SegmentName{};
    return std::vector<std::int64_t>{packs ? 1 : 0, n.pid,   n.serial,
                                     n.token,       n.bytes, static_cast<std::int64_t>(m.buffer_offset)};
  };
  std::map<std::array<std::int64_t, 3>, std::shared_ptr<SharedSegment>> opened;  // by pid, serial, token
  auto accept = [&](Message& m, const std::vector<std::int64_t>& offer) {
    if (offer.size() != 6 || offer[0] != 1) return false;
    const SegmentName n{offer[1], offer[2], offer[3], offer[4]};
    const std::array<std::int64_t, 3> key{n.pid, n.serial, n.token};
    auto it = opened.find(key);
    if (it == opened.end()) it = opened.emplace(key, SharedSegment::open(n)).first;
    if (it->second == nullptr || offer[5] + static_cast<std::int64_t>(m.bytes) > n.bytes) return false;
    m.shared_from = it->second->data() + offer[5];
    return true;
  };
  auto agreed = [](Message& m, bool yes) {
    m.shared = yes;
    if (yes) {  // a receiver unpacks from the sender's buffer, whatever it chose itself
      m.runs.clear();
      m.datatype.reset();
    }
  };
  offer_on_node(comm, kShareTag, phases, on_node, offer_of, accept, agreed);
  for (auto& [key, s] : opened) {
    if (s != nullptr) mapped.push_back(s);
  }
  if (segment != nullptr) segment->unlink();  // every neighbour has answered: mapped or not
}

}  // namespace khalo::detail
