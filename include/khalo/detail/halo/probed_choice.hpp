#pragma once
/// \file
/// A choice between two ways of doing a phase's work whose faster one depends on where the
/// processes run, not on the data, so it is measured while the job runs: the kind of store of
/// packs another process reads (store_choice.hpp), and whether a face in node-shared memory is
/// copied by the receiver or packed by the sender (mapped_reads.hpp). Not public.
///
/// How: the phase uses one way, the first at first. Every kProbeEvery recorded exchanges (the
/// first time after kFirstProbeAfter) it uses the other way for kProbeLength exchanges, then
/// keeps the way whose lowest cost was lower: of the probe, or of the kProbeLength exchanges
/// just before it. The lowest, because a slower exchange was interrupted or cold; just before,
/// so that both ways are timed where the processes now run. A probe that switched ways is
/// checked by the next one kConfirmAfter exchanges later, not kProbeEvery: a probe that won by
/// chance (the machine busy just before it) then costs 16 exchanges of the slower way, not 256
/// (bench_halo at 19:41 UTC, perf/RESULTS.md "Direct reads": a contiguous face ran 89 of its 102
/// exchanges with ordinary stores at 7.6 GB/s).

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <limits>

namespace khalo::detail {

class ProbedChoice {
 public:
  // Where the other way is 5x slower, a probe adds 4 x 4 / 256 = 6% to the time it costs. The
  // first probe waits out the cold exchanges (first touch, the reader's first reads), in which
  // the way in use may lose to a warm other one. A probe is 4 exchanges long, most likely to get
  // past its own first ones, the other way's cold ones: with 2, node-shared fields between ranks
  // on different core complexes kept mapping faces that packing moved 1.1-1.8x faster
  // (perf/RESULTS.md, "The probes' length").
  static constexpr int kProbeEvery = 256;
  static constexpr int kProbeLength = 4;
  static constexpr int kFirstProbeAfter = 16;
  static constexpr int kConfirmAfter = 16;

  /// \p first: the way used until a probe finds the other one cheaper; \p measured: false to
  /// keep \p first always (no probes).
  explicit ProbedChoice(bool first = true, bool measured = true) : measured_(measured), best_(first) {}

  /// The way this exchange uses: true for the first.
  bool first() const { return probing() ? !best_ : best_; }

  using Clock = std::chrono::steady_clock;

  /// Seconds from \p start until now.
  static double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
  }

  /// This exchange's work, \p bytes, ran from \p start until now.
  void record(Clock::time_point start, std::size_t bytes) {
    if (bytes > 0) record(seconds_since(start) / static_cast<double>(bytes));
  }

  /// This exchange cost \p cost (seconds, or seconds per byte: the same unit every time); the
  /// next exchange may use the other way.
  void record(double cost) {
    if (!measured_) return;
    if (probing()) {
      probe_ = std::min(probe_, cost);
    } else if (count_ >= probe_start_ - kProbeLength) {
      before_ = std::min(before_, cost);
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
  bool probing() const { return measured_ && count_ >= probe_start_ && count_ < probe_end(); }

  bool measured_;
  bool best_;       // the way in use outside probes: true for the first
  long count_ = 0;  // exchanges recorded
  long probe_start_ = kFirstProbeAfter;
  // The lowest cost of the kProbeLength exchanges before the probe, and of the probe's.
  double before_ = std::numeric_limits<double>::infinity();
  double probe_ = std::numeric_limits<double>::infinity();
};

}  // namespace khalo::detail
