#pragma once
/// \file
/// Whether a phase's packs that another process reads next (Message::stream) use non-temporal
/// stores (stream_pack.hpp) or ordinary ones, chosen from their measured time per byte
/// (probed_choice.hpp). Not public.
///
/// Why measured: which is faster depends on where the two processes run, not on the data.
/// Between cores that share no cache (other core complexes or sockets) an ordinary store first
/// fetches each line back from the reader's cache, and the streamed pack is faster. Between
/// cores that share their last-level cache the ordinary pack stays in that cache, and the
/// streamed one, which goes to memory, is slower (bench_halo; perf/RESULTS.md, "Which stores a
/// pack uses"). A virtual machine's vCPUs may move from one case to the other while a job runs.
/// Streaming comes first. KHALO_STREAM_PACKS=1 or 0 fixes the kind instead (streaming or
/// ordinary), to compare.

#include <khalo/detail/env_switch.hpp>
#include <khalo/detail/halo/probed_choice.hpp>

namespace khalo::detail {

enum class StorePolicy { ordinary, stream, measured };

/// KHALO_STREAM_PACKS: "0" ordinary stores, "1" streaming ones, unset or anything else measured.
inline StorePolicy store_policy() {
  const EnvSwitch s = env_switch("KHALO_STREAM_PACKS");
  return s == EnvSwitch::off ? StorePolicy::ordinary : s == EnvSwitch::on ? StorePolicy::stream : StorePolicy::measured;
}

inline const char* to_string(StorePolicy p) {
  return p == StorePolicy::ordinary ? "ordinary" : p == StorePolicy::stream ? "stream" : "measured";
}

/// The kind of store of one phase's packs: streaming is the ProbedChoice's first way.
class StoreChoice : public ProbedChoice {
 public:
  explicit StoreChoice(StorePolicy policy = StorePolicy::measured)
      : ProbedChoice(policy != StorePolicy::ordinary, policy == StorePolicy::measured) {}

  /// The kind of store this exchange's packs use: true for streaming.
  bool stream() const { return first(); }
};

}  // namespace khalo::detail
