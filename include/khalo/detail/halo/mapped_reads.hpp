#pragma once
/// \file
/// Mapped reads: a face that goes through a node-shared buffer (node_shared.hpp) is copied by
/// the receiver straight out of the sender's View when that View lies in node-shared memory
/// (khalo::NodeSharedArena, shared_fields.hpp): one copy by loads, no pack. The plan's
/// handshake agrees which messages may go this way (the receiver can map the sender's
/// segments, and both sides walk the face in the same runs); each exchange the sender decides,
/// since its Views may change between exchanges: its "packed" message then carries where each
/// field lies in its segments, or says it packed the face as before. The "read" that follows
/// keeps the sender's View as it is until the receiver has copied it, as for a direct read
/// (direct_read.hpp). Not public.

#include <khalo/detail/block.hpp>
#include <khalo/detail/env_switch.hpp>
#include <khalo/detail/halo/handshake.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/halo/probed_choice.hpp>
#include <khalo/detail/shared_fields.hpp>

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace khalo::detail {

/// Tag of the plan's mapped-read handshake (two per message), above the direct reads'.
inline constexpr int kMappedTag = 12288;

/// A mapped message's "packed": a mode word, then per segment the field's segment (pid, fd,
/// token, bytes) and its data pointer's offset there.
inline constexpr std::size_t kMappedWordsPerSegment = 5;
inline std::size_t mapped_words(const Message& m) { return 1 + kMappedWordsPerSegment * m.segments.size(); }
enum MappedMode : std::int64_t { kFacePacked = 0, kFaceMapped = 1 };

/// KHALO_MAPPED_READS: "0" off (to compare: a rank where it is off still takes part in the
/// handshake; it offers nothing and accepts none), "1" every face that can be mapped is, unset
/// or anything else measured (MappedChoice).
enum class MappedPolicy { off, always, measured };

inline MappedPolicy mapped_policy() {
  const EnvSwitch s = env_switch("KHALO_MAPPED_READS");
  return s == EnvSwitch::off ? MappedPolicy::off : s == EnvSwitch::on ? MappedPolicy::always : MappedPolicy::measured;
}

inline bool mapped_reads_allowed() { return mapped_policy() != MappedPolicy::off; }

inline const char* to_string(MappedPolicy p) {
  return p == MappedPolicy::off ? "off" : p == MappedPolicy::always ? "always" : "measured";
}

/// Whether one phase's sends that could be mapped this exchange are (the first way), or packed
/// into the node-shared buffer as faces of Views elsewhere are, chosen from the phase's measured
/// time (probed_choice.hpp). Why measured: which is faster depends on where the two processes
/// run. Where they share a cache the receiver's one copy beats a pack and an unpack on every
/// Wan face; where they do not, the receiver loads each short run from the other cache, and on
/// faces of 416-byte runs mapped faces took 1.14-1.65x the time of the packed path, which streams
/// locally (perf/RESULTS.md, "Every target met in one perf/run.sh"). The time is the phase's inside the
/// engine on this rank (its packs, its wait, its copies and the wait for its neighbours' "read"),
/// which holds the neighbour's copy of this rank's face; the caller's work between start() and
/// wait() is not in it.
class MappedChoice : public ProbedChoice {
 public:
  explicit MappedChoice(MappedPolicy policy = mapped_policy()) : ProbedChoice(true, policy == MappedPolicy::measured) {}

  /// Whether this exchange's sends that can be mapped are.
  bool map() const { return first(); }
};

/// Collective with the neighbours on this node (\p on_node), after share_on_node: which shared
/// messages the receiver may copy straight from the sender's node-shared View
/// (Message::mapped). The sender offers its probe segment and its walk of each segment; the
/// receiver accepts when it maps the probe and walks every segment in runs of the same extents
/// (strides may differ: copy_block).
inline void agree_mapped_reads(MPI_Comm comm, const std::vector<bool>& on_node, std::vector<Phase>& phases) {
  const bool allowed = mapped_reads_allowed();
  const OwnedSharedFields* probe = allowed ? shared_fields_probe() : nullptr;
  // An offer: 1, the probe's pid, fd, token and bytes, then per segment ndims, base, count,
  // extents and strides; or 0 alone.
  auto offer_of = [&](const Message& m) {
    if (probe == nullptr || !m.shared) return std::vector<std::int64_t>{0};
    const SharedFieldId& id = probe->id();
    std::vector<std::int64_t> o{1, id.pid, id.fd, id.token, id.bytes};
    for (const auto& s : m.segments) {
      const BlockWalk& w = s.walk;
      o.insert(o.end(), {w.ndims, w.base, w.count});
      for (int k = 0; k < w.ndims; ++k) o.push_back(w.extent[k]);
      for (int k = 0; k < w.ndims; ++k) o.push_back(w.stride[k]);
    }
    return o;
  };
  std::map<std::int64_t, bool> can_map;  // by the sender's pid
  auto accept = [&](Message& m, const std::vector<std::int64_t>& offer) {
    if (!allowed || !m.shared || offer.size() < 5 || offer[0] != 1) return false;
    std::vector<BlockWalk> theirs;
    std::size_t k = 5;
    for (const auto& s : m.segments) {
      if (k + 3 > offer.size()) return false;
      BlockWalk w;
      w.ndims = static_cast<int>(offer[k]);
      w.base = offer[k + 1];
      w.count = offer[k + 2];
      k += 3;
      if (w.ndims != s.walk.ndims || w.count != s.walk.count ||
          k + 2 * static_cast<std::size_t>(w.ndims) > offer.size()) {
        return false;
      }
      for (int d = 0; d < w.ndims; ++d) w.extent[d] = offer[k + static_cast<std::size_t>(d)];
      for (int d = 0; d < w.ndims; ++d) w.stride[d] = offer[k + static_cast<std::size_t>(w.ndims + d)];
      k += 2 * static_cast<std::size_t>(w.ndims);
      for (int d = 0; d < w.ndims; ++d) {
        if (w.extent[d] != s.walk.extent[d]) return false;
      }
      theirs.push_back(w);
    }
    if (k != offer.size()) return false;
    const SharedFieldId id{offer[1], offer[2], offer[3], offer[4]};
    auto it = can_map.find(id.pid);
    if (it == can_map.end()) it = can_map.emplace(id.pid, PeerSharedFields::open(id) != nullptr).first;
    if (!it->second) return false;
    m.remote_walks = std::move(theirs);
    return true;
  };
  auto agreed = [](Message& m, bool yes) {
    m.mapped = yes;
    if (!yes) m.remote_walks.clear();
  };
  offer_on_node(comm, kMappedTag, phases, on_node, offer_of, accept, agreed);
}

/// The sender's side of a mapped message in one exchange: fills \p words (mapped_words(m) of
/// them) and returns true when every field of \p m lies in one of this process's node-shared
/// segments with room for its whole walk; else words[0] = kFacePacked and false (pack it).
/// \p types holds each field's FieldType (fields.hpp), for its element size.
template <class FieldBytes, class Types>
bool describe_mapped(const Message& m, const FieldBytes& field_bytes, const Types& types, std::int64_t* words) {
  words[0] = kFacePacked;
  const auto& registry = SharedFieldRegistry::instance();
  if (registry.empty()) return false;
  std::int64_t* at = words + 1;
  for (const auto& s : m.segments) {
    const auto place = registry.find(field_bytes(s.field));
    if (!place) return false;
    const BlockWalk& w = s.walk;
    const auto elem = static_cast<std::int64_t>(types[static_cast<std::size_t>(s.field)].elem_size);
    if (w.base < 0 || (w.base + w.span()) * elem > place->room) return false;
    at[0] = place->id.pid;
    at[1] = place->id.fd;
    at[2] = place->id.token;
    at[3] = place->id.bytes;
    at[4] = place->offset;
    at += kMappedWordsPerSegment;
  }
  words[0] = kFaceMapped;
  return true;
}

/// A neighbour's segment that no exchange of this engine has read for this many exchanges is
/// unmapped: so the memory of an arena its owner destroyed (or stopped using) is not held here
/// for the rest of the job. A sender that takes turns between a few arenas keeps them mapped.
inline constexpr std::uint64_t kPeerSegmentIdleExchanges = 8;

/// The neighbours' segments this rank has mapped, by pid and fd: a segment that its owner
/// closed and replaced (another token or size) is mapped again, and one left unread for
/// kPeerSegmentIdleExchanges exchanges is unmapped.
class PeerSegments {
 public:
  /// The base of the segment that \p words name (a mapped segment's first 4 words: pid, fd,
  /// token, bytes); nullptr when it cannot be mapped (the sender's process or arena is gone).
  const unsigned char* base(const std::int64_t* words) {
    const SharedFieldId id{words[0], words[1], words[2], words[3]};
    const std::pair<std::int64_t, std::int64_t> key{id.pid, id.fd};
    auto& slot = by_fd_[key];
    if (slot.segment == nullptr || !(slot.segment->id() == id)) slot.segment = PeerSharedFields::open(id);
    if (slot.segment == nullptr) {
      by_fd_.erase(key);
      return nullptr;
    }
    slot.last_read = exchanges_;
    return slot.segment->base();
  }

  /// Called when an exchange's copies are done: unmaps the segments left unread too long.
  void end_exchange() {
    ++exchanges_;
    for (auto it = by_fd_.begin(); it != by_fd_.end();) {
      if (exchanges_ - it->second.last_read > kPeerSegmentIdleExchanges) {
        it = by_fd_.erase(it);
      } else {
        ++it;
      }
    }
  }

  /// How many segments are mapped now.
  std::size_t size() const noexcept { return by_fd_.size(); }

 private:
  struct Slot {
    std::shared_ptr<PeerSharedFields> segment;
    std::uint64_t last_read = 0;  // the exchange that last read it
  };
  std::map<std::pair<std::int64_t, std::int64_t>, Slot> by_fd_;
  std::uint64_t exchanges_ = 0;
};

}  // namespace khalo::detail
