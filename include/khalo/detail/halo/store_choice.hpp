#pragma once
/// \file
/// Whether a phase's packs that another process reads next (Message::stream) use non-temporal
/// stores (stream_pack.hpp) or ordinary ones, chosen from their measured time. Not public.
///
/// Why measured: which is faster depends on where the two processes run, not on the data.
/// Between cores that share no cache (other core complexes or sockets) an ordinary store first
/// fetches each line back from the reader's cache, and the streamed pack is faster. Between
/// cores that share their last-level cache the ordinary pack stays in that cache, and the
/// streamed one, which goes to memory, is slower (bench_halo; perf/RESULTS.md, "Which stores a
/// pack uses"). A virtual machine's vCPUs may move from one case to the other while a job runs.
///
/// How: a phase packs with one kind of store, streaming at first. Every kProbeEvery exchanges
/// (the first time after kFirstProbeAfter) it packs kProbeLength exchanges with the other kind,
/// then keeps the kind whose fastest pack (time per byte) was lower: of the probe, or of the
/// kProbeLength exchanges just before it. The fastest, because a slower pack was interrupted or
/// cold; just before, so that both kinds are timed where the processes now run. A probe that
/// switched kinds is checked by the next one kConfirmAfter exchanges later, not kProbeEvery: a
/// probe that won by chance (the machine busy during the packs before it) then costs 16
/// exchanges of the slower kind, not 128 (bench_halo at 19:41 UTC, perf/RESULTS.md "Direct
/// reads": a contiguous face ran 89 of its 102 exchanges with ordinary stores at 7.6 GB/s).
/// KHALO_STREAM_PACKS=1 or 0 fixes the kind instead (streaming or ordinary), to compare.

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <limits>
#include <string>

namespace khalo::detail {

enum class StorePolicy { ordinary, stream, measured };

/// KHALO_STREAM_PACKS: "0" ordinary stores, "1" streaming ones, unset or anything else measured.
inline StorePolicy store_policy() {
  const char* v = std::getenv("KHALO_STREAM_PACKS");
  if (v != nullptr && std::string(v) == "0") return StorePolicy::ordinary;
  if (v != nullptr && std::string(v) == "1") return StorePolicy::stream;
  return StorePolicy::measured;
}

inline const char* to_string(StorePolicy p) {
  return p == StorePolicy::ordinary ? "ordinary" : p == StorePolicy::stream ? "stream" : "measured";
}

class StoreChoice {
 public:
  // Where the other kind's pack is 5x slower, a probe adds 2 x 4 / 128 = 6% to the packs' time
  // (a pack is a fraction of an exchange). The first probe waits out the cold exchanges (first
  // touch, the reader's first reads), in which a streamed pack may lose to a warm ordinary one.
  static constexpr int kProbeEvery = 128;
  static constexpr int kProbeLength = 2;
  static constexpr int kFirstProbeAfter = 16;
  static constexpr int kConfirmAfter = 16;

  explicit StoreChoice(StorePolicy policy = StorePolicy::measured)
      : policy_(policy), best_(policy != StorePolicy::ordinary) {}

  /// The kind of store this exchange's packs use: true for streaming.
  bool stream() const { return probing() ? !best_ : best_; }

  using Clock = std::chrono::steady_clock;

  /// This exchange's packs, \p bytes, ran from \p start until now.
  void record(Clock::time_point start, std::size_t bytes) {
    if (bytes > 0) record(std::chrono::duration<double>(Clock::now() - start).count() / static_cast<double>(bytes));
  }

  /// This exchange's packs took \p seconds_per_byte; the next exchange may use the other kind.
  void record(double seconds_per_byte) {
    if (policy_ != StorePolicy::measured) return;
    if (probing()) {
      probe_ = std::min(probe_, seconds_per_byte);
    } else if (count_ >= probe_start_ - kProbeLength) {
      before_ = std::min(before_, seconds_per_byte);
    }
    ++count_;
    if (count_ == probe_end()) {
      const bool switched = probe_ < before_;
      if (switched) best_ = !best_;
      before_ = std::numeric_limits<double>::infinity();
      probe_ = std::numeric_limits<double>::infinity();
      probe_start_ = count_ + (switched ? kConfirmAfter : kProbeEvery) - kProbeLength;
    }
  }

 private:
  long probe_end() const { return probe_start_ + kProbeLength; }
  bool probing() const { return policy_ == StorePolicy::measured && count_ >= probe_start_ && count_ < probe_end(); }

  StorePolicy policy_;
  bool best_;       // the kind in use outside probes
  long count_ = 0;  // exchanges recorded
  long probe_start_ = kFirstProbeAfter;
  double before_ = std::numeric_limits<double>::infinity();  // fastest of the kProbeLength packs before the probe
  double probe_ = std::numeric_limits<double>::infinity();   // fastest of the probe's
};

}  // namespace khalo::detail
