#pragma once
/// \file
/// The MPI engine behind khalo::Halo: its plans per shape (their buffers: buffers.hpp),
/// requests, and the phases of one exchange. Shared by a Halo and the exchange it
/// started, so either may go first. Not public.

#include <khalo/decomposition.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/halo/direct_read.hpp>
#include <khalo/detail/halo/mapped_reads.hpp>
#include <khalo/detail/halo/node_shared.hpp>
#include <khalo/detail/halo/plan.hpp>
#include <khalo/detail/halo/single_copy.hpp>
#include <khalo/detail/halo/transport.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo_spec.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace khalo {

namespace detail {

/// Seconds a rank that meets new shapes waits for the others to plan them too
/// (KHALO_REPLAN_TIMEOUT, default 30): past that it throws instead of hanging.
inline double replan_timeout_seconds() {
  if (const char* v = std::getenv("KHALO_REPLAN_TIMEOUT"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end != v && s > 0) return s;
  }
  return 30.0;
}

template <class Exec, class MemSpace>
class HaloEngine {
 public:
  using Plan = ShapePlan<MemSpace>;

  /// Makes the phases of a new plan for \p shapes (collective): checks first, thrown on every
  /// rank alike; then the phases, with what only this rank can see wrong in \p error.
  using Planner = std::function<std::vector<Phase>(const std::vector<FieldShape>& shapes, std::string& error)>;

  /// What an engine may do, beyond its plans.
  struct Options {
    bool stage = false;           ///< buffers go through host memory (MPI may not touch MemSpace)
    bool zero_fill_once = false;  ///< see HaloSpec::set_zero_fill_once
    TransportChoice transport;    ///< see HaloSpec::set_transport, set_in_place_min_run_bytes
    bool shared_memory = true;    ///< see HaloSpec::set_shared_memory (host memory, not staged)
  };

  /// An engine over (a duplicate of) \p comm whose plans \p planner makes; \p who prefixes its
  /// errors ("khalo::HaloRows").
  HaloEngine(MPI_Comm comm, std::string who, std::vector<FieldType<Exec>> types, Options options, Planner planner)
      : who_(std::move(who)),
        comm_(Comm::duplicate(comm)),
        types_(std::move(types)),
        options_(options),
        planner_(std::move(planner)) {
    // Collective (every rank has the same options and environment): which ranks are on this
    // node, and which of them can share buffers with this one.
    if (kHost && !options_.stage) {
      on_node_ = ranks_on_my_node(comm_.get());
      if (options_.shared_memory && shared_memory_allowed()) shares_ = on_node_;
    }
  }

  /// khalo::Halo's engine: plans for the ghost layers of \p spec over \p dec.
  HaloEngine(const Decomposition& dec, const HaloSpec& spec, std::vector<FieldType<Exec>> types, bool stage)
      : HaloEngine(
            dec.grid().comm(), "khalo::Halo", types,
            Options{
                stage, spec.zero_fill_once(), {spec.transport(), spec.in_place_min_run_bytes()}, spec.shared_memory()},
            [dec, spec, types](const std::vector<FieldShape>& shapes, std::string& error) {
              validate(dec, spec, types, shapes);
              return build_phases(dec, spec, types, shapes, error);
            }) {
    dec_.emplace(dec);
  }

  const std::vector<FieldType<Exec>>& types() const noexcept { return types_; }
  /// The decomposition of khalo::Halo's engine.
  const Decomposition& decomposition() const { return dec_.value(); }
  bool staged() const noexcept { return options_.stage; }
  bool in_flight() const noexcept { return in_flight_; }
  HaloStats& stats() noexcept { return stats_; }

  /// The plan for \p shapes, built collectively when new. Every rank must meet
  /// new shapes together; a rank that meets them alone (its cache misses where
  /// the others' hit) cannot be seen by the others, who wait in the exchange, so
  /// it gives up after replan_timeout_seconds() with an error naming itself
  /// instead of waiting for ever. \p first: the constructor's plan, which every
  /// rank builds together by definition.
  Plan& plan_for(const std::vector<FieldShape>& shapes, bool first) {
    std::vector<std::int64_t> key;
    for (const auto& s : shapes) {
      key.insert(key.end(), s.extents.begin(), s.extents.end());
      key.insert(key.end(), s.strides.begin(), s.strides.end());
    }
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    if (!first) join_replan();
    std::string error;
    Plan plan;
    plan.phases = planner_(shapes, error);
    throw_if_any(comm_.get(), error);
    choose_transports(plan.phases, types_, {!options_.stage, kHost, options_.transport, shares_});
    if (kDirectReads && !shares_.empty()) agree_direct_reads(comm_.get(), shares_, plan.phases);
    pack_short_runs_toward_sharing(plan.phases, shares_, options_.transport);
    agree_in_place(comm_.get(), plan.phases);
    // An allocation that fails on one rank fails the plan on every rank; the share handshake
    // between them runs on every rank whatever happened before it.
    auto allocating = [&](auto&& what) {
      try {
        what();
      } catch (const std::exception& e) {
        if (error.empty()) {
          error = who_ + ": rank " + std::to_string(comm_.rank()) + " could not allocate its halo buffers: " + e.what();
        }
      }
    };
    allocating([&] { stats_.allocations += allocate_send_buffer(plan.phases, plan.buffers, options_.stage, shares_); });
    if (!shares_.empty()) {
      share_on_node(comm_.get(), shares_, plan.phases, plan.buffers.send_segment, plan.buffers.mapped);
      if (kDirectReads) agree_mapped_reads(comm_.get(), shares_, plan.phases);
    }
    choose_streaming(plan.phases, on_node_, [] { return single_copy_min_bytes(); });
    plan.stores.assign(plan.phases.size(), StoreChoice(store_policy_));
    plan.maps.assign(plan.phases.size(), MappedChoice(mapped_policy_));
    allocating([&] { stats_.allocations += allocate_recv_buffer(plan.phases, plan.buffers, options_.stage); });
    throw_if_any<std::runtime_error>(comm_.get(), error);
    return plans_.emplace(std::move(key), std::move(plan)).first->second;
  }

  /// Posts the first phase: receives, packs, sends and open-side fills.
  /// On failure, what was posted is cancelled and completed before the error goes on.
  void start(const Exec& exec, Plan& plan, std::vector<void*> data) {
    current_ = &plan;
    data_ = std::move(data);
    in_flight_ = true;
    zero_fills_ = true;
    if (options_.zero_fill_once) {
      auto& seen = plan.zeroed;
      zero_fills_ = std::find(seen.begin(), seen.end(), data_) == seen.end();
      if (zero_fills_) seen.push_back(data_);
    }
    try {
      begin_phase(exec, 0);
    } catch (...) {
      abandon();
      throw;
    }
  }

  /// Completes the exchange: the remaining phases, then a fence of \p exec.
  /// On failure, what is still posted is cancelled and completed first.
  void finish(const Exec& exec) {
    bool region = false;
    try {
      Kokkos::Profiling::pushRegion("khalo::Halo::wait");
      region = true;
      for (;;) {
        end_phase(exec);
        if (phase_ + 1 >= current_->phases.size()) break;
        begin_phase(exec, phase_ + 1);
      }
      exec.fence();
      peer_segments_.end_exchange();  // after the fence: no copy reads a segment it unmaps
    } catch (...) {
      abandon();
      if (region) Kokkos::Profiling::popRegion();
      throw;
    }
    in_flight_ = false;
    Kokkos::Profiling::popRegion();
  }

  /// An engine that goes while an exchange is in flight (its last owner unwinding
  /// from an error) first makes sure MPI will never write into the Views again.
  ~HaloEngine() {
    if (in_flight_) abandon();
  }
  HaloEngine(const HaloEngine&) = delete;
  HaloEngine& operator=(const HaloEngine&) = delete;

 private:
  // Every rank that plans new shapes meets here; one whose peers still run the
  // old plan finds nobody before the deadline.
  void join_replan() {
    MPI_Request barrier = MPI_REQUEST_NULL;
    KHALO_MPI_CHECK(MPI_Ibarrier(comm_.get(), &barrier));
    const double timeout = replan_timeout_seconds();
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout);
    for (;;) {
      int done = 0;
      KHALO_MPI_CHECK(MPI_Test(&barrier, &done, MPI_STATUS_IGNORE));
      if (done) return;
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error(who_ + "::start: rank " + std::to_string(comm_.rank()) +
                                 " met field shapes it has no plan for, and the other ranks did not plan them "
                                 "within " +
                                 std::to_string(static_cast<int>(timeout)) +
                                 " s: shapes must change on every rank together (KHALO_REPLAN_TIMEOUT)");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }

  static constexpr bool kHost = Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible;
  // Plain host memory, which another process can read (not CUDA's managed memory).
  static constexpr bool kDirectReads = std::is_same_v<MemSpace, Kokkos::HostSpace>;

  unsigned char* field_bytes(int field) const {
    return static_cast<unsigned char*>(data_[static_cast<std::size_t>(field)]);
  }

  void begin_phase(const Exec& exec, std::size_t p) {
    phase_ = p;
    requests_.clear();
    if (p >= current_->phases.size()) return;
    const auto began = ProbedChoice::Clock::now();
    const Phase& ph = current_->phases[p];
    auto& b = current_->buffers;
    unsigned char* recv_base = options_.stage ? b.recv_host.data() : b.recv.data();
    std::size_t direct = 0;
    for (const auto& m : ph.recvs) direct += m.direct;
    ready_in_.assign(direct * data_.size(), 0);
    std::uint64_t* ready = ready_in_.data();
    mapped_in_.assign(mapped_words_of(ph.recvs), 0);
    std::int64_t* where = mapped_in_.data();
    for (const auto& m : ph.recvs) {
      if (m.direct) {
        post(MPI_Irecv, std::exchange(ready, ready + data_.size()), ready_bytes(), m);  // "ready"
      } else if (m.mapped) {
        post(MPI_Irecv, std::exchange(where, where + mapped_words(m)), mapped_bytes(m), m);  // "packed", or where
      } else if (m.shared) {
        signal(MPI_Irecv, m);  // "packed"
      } else if (m.in_place()) {
        for (const auto& r : m.runs) post(MPI_Irecv, field_bytes(r.field) + r.offset, r.bytes, m);
      } else if (m.by_datatype()) {
        post_datatype(MPI_Irecv, m);
        ++stats_.datatype_recvs;
      } else {
        post(MPI_Irecv, recv_base + m.buffer_offset, static_cast<int>(m.bytes), m);
      }
    }
    // Mapped sends whose Views lie in node-shared memory this time: told where, not packed,
    // unless the phase's MappedChoice packs them this time.
    mapped_out_.assign(mapped_words_of(ph.sends), 0);
    unpacked_.assign(ph.sends.size(), 0);
    where = mapped_out_.data();
    const bool map = current_->maps[p].map();
    mappable_ = false;
    for (std::size_t i = 0; i < ph.sends.size(); ++i) {
      const Message& m = ph.sends[i];
      if (!m.mapped) continue;
      const bool can = describe_mapped(
          m, [&](int f) { return field_bytes(f); }, types_, where);
      mappable_ = mappable_ || can;
      if (can && !map) where[0] = kFacePacked;  // a probe: packed this time
      unpacked_[i] = can && map;
      where += mapped_words(m);
    }
    auto packs = [&](std::size_t i) { return ph.sends[i].packed() && unpacked_[i] == 0; };
    StoreChoice& stores = current_->stores[p];
    bool timed = false;  // some pack here may stream: time them all
    for (std::size_t i = 0; i < ph.sends.size(); ++i) timed = timed || (packs(i) && ph.sends[i].stream);
    std::size_t packed = 0;
    const auto start = timed ? StoreChoice::Clock::now() : StoreChoice::Clock::time_point{};
    for (std::size_t i = 0; i < ph.sends.size(); ++i) {
      const Message& m = ph.sends[i];
      if (!packs(i)) continue;
      const bool stream = m.stream && stores.stream();
      for (const auto& s : m.segments) {
        types_[static_cast<std::size_t>(s.field)].kernels->pack(exec, field_bytes(s.field), s.walk,
                                                                b.send.data() + m.buffer_offset + s.offset, stream);
        ++stats_.faces_packed;
        stats_.faces_streamed += stream;
        packed += s.bytes;
      }
    }
    stats_.bytes_packed += static_cast<std::int64_t>(packed);
    // MPI reads the send buffer (or the View) from here on, and node neighbours read shared
    // faces once told: fence this instance only.
    exec.fence();
    if (timed) stores.record(start, packed);
    std::atomic_thread_fence(std::memory_order_release);
    if (options_.stage && b.send.extent(0) > 0) {
      Kokkos::deep_copy(exec, b.send_host, b.send);
      exec.fence();
    }
    unsigned char* send_base = options_.stage ? b.send_host.data() : b.send.data();
    where = mapped_out_.data();
    for (std::size_t i = 0; i < ph.sends.size(); ++i) {
      const Message& m = ph.sends[i];
      if (m.direct) {
        post(MPI_Isend, data_.data(), ready_bytes(), m);  // "ready": where my fields are
        ++stats_.messages;
        ++stats_.direct_sends;
      } else if (m.mapped) {
        post(MPI_Isend, std::exchange(where, where + mapped_words(m)), mapped_bytes(m), m);  // "packed", or where
        ++stats_.messages;
        ++(unpacked_[i] != 0 ? stats_.mapped_sends : stats_.shared_sends);
      } else if (m.shared) {
        signal(MPI_Isend, m);  // "packed": the face is in the buffer
        ++stats_.messages;
        ++stats_.shared_sends;
      } else if (m.in_place()) {
        for (const auto& r : m.runs) post(MPI_Isend, field_bytes(r.field) + r.offset, r.bytes, m);
        stats_.messages += static_cast<std::int64_t>(m.runs.size());
      } else if (m.by_datatype()) {
        post_datatype(MPI_Isend, m);
        ++stats_.messages;
        ++stats_.datatype_sends;
      } else {
        post(MPI_Isend, send_base + m.buffer_offset, static_cast<int>(m.bytes), m);
        ++stats_.messages;
      }
      stats_.bytes_sent += static_cast<std::int64_t>(m.bytes);
    }
    // Sides without a neighbour (and a periodic dimension of one rank, which has no
    // messages): filled while the messages fly. They touch only ghost layers no message
    // reads or writes.
    for (const auto& fill : ph.fills) {
      const auto& k = *types_[static_cast<std::size_t>(fill.field)].kernels;
      if (fill.boundary == Boundary::zero) {
        if (!zero_fills_) continue;
        k.zero(exec, field_bytes(fill.field), fill.ghost);
      } else {
        for (const auto& c : fill.copies) k.shift_copy(exec, field_bytes(fill.field), c);
      }
      ++stats_.fills;
    }
    phase_seconds_ = ProbedChoice::seconds_since(began);
  }

  // "ready" carries data_ as it is: the fields' addresses, which read_direct takes as 64-bit
  // integers.
  static_assert(sizeof(void*) == sizeof(std::uint64_t), "direct reads need 64-bit addresses");
  int ready_bytes() const { return static_cast<int>(data_.size() * sizeof(void*)); }

  // A mapped message's "packed" (mapped_reads.hpp): its words, over all of \p messages.
  static int mapped_bytes(const Message& m) { return static_cast<int>(mapped_words(m) * sizeof(std::int64_t)); }
  static std::size_t mapped_words_of(const std::vector<Message>& messages) {
    std::size_t n = 0;
    for (const auto& m : messages) n += m.mapped ? mapped_words(m) : 0;
    return n;
  }

  template <class Post, class Ptr>
  void post(Post mpi_post, Ptr* ptr, int bytes, const Message& m, int tag_base = 0) {
    requests_.push_back(MPI_REQUEST_NULL);
    KHALO_MPI_CHECK(mpi_post(ptr, bytes, MPI_BYTE, m.peer, tag_base + m.tag, comm_.get(), &requests_.back()));
  }

  // An empty message about m (a shared face: "packed", or "read" with kReadTag).
  template <class Post>
  void signal(Post mpi_post, const Message& m, int tag_base = 0) {
    post(mpi_post, static_cast<unsigned char*>(nullptr), 0, m, tag_base);
  }

  // One message described by m.datatype over its one field's memory (choose_transports).
  template <class Post>
  void post_datatype(Post mpi_post, const Message& m) {
    requests_.push_back(MPI_REQUEST_NULL);
    KHALO_MPI_CHECK(mpi_post(field_bytes(m.segments.front().field), 1, m.datatype->get(), m.peer, m.tag, comm_.get(),
                             &requests_.back()));
  }

  void end_phase(const Exec& exec) {
    const auto began = ProbedChoice::Clock::now();
    const Phase& ph = current_->phases[phase_];
    auto& b = current_->buffers;
    wait_all();
    std::atomic_thread_fence(std::memory_order_acquire);
    if (options_.stage && b.recv.extent(0) > 0) Kokkos::deep_copy(exec, b.recv, b.recv_host);
    bool acknowledge = false;  // some face another process reads, or I read from another
    const std::uint64_t* ready = ready_in_.data();
    const std::int64_t* where = mapped_in_.data();
    for (const auto& m : ph.recvs) {
      stats_.bytes_received += static_cast<std::int64_t>(m.bytes);
      // The receive side's copies out of a neighbour's View, named for profilers as the kernels are.
      if (m.mapped && std::exchange(where, where + mapped_words(m))[0] == kFaceMapped) {
        in_region("khalo::Halo::mapped_read", [&] { copy_mapped(exec, m, where - mapped_words(m)); });
        ++stats_.mapped_recvs;
        acknowledge = true;
        continue;
      }
      if (m.direct) {
        in_region("khalo::Halo::direct_read", [&] {
          read_direct(m, data_, std::exchange(ready, ready + data_.size()),
                      who_ + ": rank " + std::to_string(comm_.rank()));
        });
        ++stats_.direct_recvs;
        acknowledge = true;
      }
      if (!m.packed()) continue;
      const unsigned char* from = m.shared ? m.shared_from : b.recv.data() + m.buffer_offset;
      for (const auto& s : m.segments) {
        types_[static_cast<std::size_t>(s.field)].kernels->unpack(exec, field_bytes(s.field), s.walk, from + s.offset);
      }
      if (m.shared) ++stats_.shared_recvs;
      acknowledge = acknowledge || m.shared;
    }
    for (const auto& m : ph.sends) acknowledge = acknowledge || m.shared || m.direct;
    if (!acknowledge) return;
    // Shared and direct faces: tell each sender its face is read, and wait until every
    // neighbour has read mine, so that no rank packs over a face still being read (the next
    // phase or exchange reuses the buffer) or returns a View a neighbour still reads.
    exec.fence();
    for (const auto& m : ph.recvs) {
      if (m.shared || m.direct) signal(MPI_Isend, m, kReadTag);
    }
    for (const auto& m : ph.sends) {
      if (m.shared || m.direct) signal(MPI_Irecv, m, kReadTag);
    }
    wait_all();
    // A mapped send is a shared one, so a phase that could map one ends here, after its
    // neighbours' "read": their copies of this rank's faces are in its time.
    if (mappable_) {
      phase_seconds_ += ProbedChoice::seconds_since(began);
      current_->maps[phase_].record(phase_seconds_);
    }
  }

  // Runs \p f in the Kokkos profiling region \p name, which ends however f does.
  template <class F>
  static void in_region(const char* name, const F& f) {
    Kokkos::Profiling::pushRegion(name);
    try {
      f();
    } catch (...) {
      Kokkos::Profiling::popRegion();
      throw;
    }
    Kokkos::Profiling::popRegion();
  }

  // Copies the face of the mapped receive \p m out of the sender's node-shared Views, which its
  // "packed" \p words locate (mapped_reads.hpp).
  void copy_mapped(const Exec& exec, const Message& m, const std::int64_t* words) {
    const std::int64_t* at = words + 1;
    for (std::size_t i = 0; i < m.segments.size(); ++i, at += kMappedWordsPerSegment) {
      const Segment& s = m.segments[i];
      const unsigned char* base = peer_segments_.base(at);
      if (base == nullptr) {
        throw std::runtime_error(who_ + ": rank " + std::to_string(comm_.rank()) +
                                 " could not map the node-shared View of rank " + std::to_string(m.peer) +
                                 " (process " + std::to_string(at[0]) + ", " + std::to_string(at[3]) +
                                 " B): its arena is gone or not the one it announced");
      }
      const unsigned char* from = base + at[4];
      types_[static_cast<std::size_t>(s.field)].kernels->copy(exec, from, m.remote_walks[i], field_bytes(s.field),
                                                              s.walk);
    }
  }

  void wait_all() {
    if (!requests_.empty()) {
      KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    }
    requests_.clear();
  }

  // After a failure: cancels what is still posted and completes it, so that no
  // request outlives the exchange and MPI never writes into a View later.
  // Errors here are ignored; the first error is the one that goes on.
  void abandon() noexcept {
    for (auto& r : requests_) {
      if (r != MPI_REQUEST_NULL) MPI_Cancel(&r);
    }
    for (auto& r : requests_) {
      if (r != MPI_REQUEST_NULL) MPI_Wait(&r, MPI_STATUS_IGNORE);
    }
    requests_.clear();
    in_flight_ = false;
  }

  std::string who_;
  Comm comm_;
  std::vector<FieldType<Exec>> types_;
  std::map<std::vector<std::int64_t>, Plan> plans_;
  Plan* current_ = nullptr;
  std::vector<void*> data_;
  std::vector<MPI_Request> requests_;
  std::vector<std::uint64_t> ready_in_;   // the senders' of this phase's direct reads
  std::vector<std::int64_t> mapped_in_;   // the "packed" of this phase's mapped receives,
  std::vector<std::int64_t> mapped_out_;  // and of its mapped sends
  std::vector<char> unpacked_;            // per send of this phase: mapped, not packed, this time
  bool mappable_ = false;                 // some send of this phase could be mapped this time
  double phase_seconds_ = 0;              // this phase's time in begin_phase and end_phase
  PeerSegments peer_segments_;            // the neighbours' node-shared Views, mapped here
  std::size_t phase_ = 0;
  Options options_;
  bool in_flight_ = false;
  bool zero_fills_ = true;  // this exchange zeroes open sides (see HaloSpec::set_zero_fill_once)
  Planner planner_;
  std::vector<bool> on_node_;                     // per rank: on this node (host memory, not staged)
  std::vector<bool> shares_;                      // per rank: on this node, so packed faces go through shared buffers
  StorePolicy store_policy_ = store_policy();     // faces read next by another process: their stores
  MappedPolicy mapped_policy_ = mapped_policy();  // faces that can be mapped: whether they are
  std::optional<Decomposition> dec_;              // khalo::Halo's
  HaloStats stats_;
};

}  // namespace detail
}  // namespace khalo
