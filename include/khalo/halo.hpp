#pragma once
/// \file
/// khalo::Halo: a halo-exchange plan over a decomposition for one or more
/// Views that carry ghost layers. Built once (collective validation, tags on
/// a private communicator, buffers); `exchange` then only packs, sends,
/// receives and unpacks, toward neighbours that exist.

#include <khalo/decomposition.hpp>
#include <khalo/detail/halo_plan.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace khalo {

template <class Exec, class MemSpace>
class Halo;

/// A started exchange. Move-only; keeps the Views and buffers alive until
/// wait() (or its destructor) completes the exchange.
template <class Exec, class MemSpace>
class [[nodiscard]] HaloExchange {
 public:
  HaloExchange(HaloExchange&& other) noexcept
      : halo_(std::exchange(other.halo_, nullptr)), exec_(std::move(other.exec_)) {}
  HaloExchange& operator=(HaloExchange&& other) noexcept {
    if (this != &other) {
      finish_quietly();
      halo_ = std::exchange(other.halo_, nullptr);
      exec_ = std::move(other.exec_);
    }
    return *this;
  }
  HaloExchange(const HaloExchange&) = delete;
  HaloExchange& operator=(const HaloExchange&) = delete;
  ~HaloExchange() { finish_quietly(); }

  /// Completes the exchange: waits for messages, unpacks, fills boundaries,
  /// runs any further dimension phases, and fences the execution space instance.
  void wait() {
    if (halo_ == nullptr) throw std::logic_error("khalo::HaloExchange::wait: nothing in flight");
    auto halo = std::exchange(halo_, nullptr);
    halo->finish(exec_);
  }

 private:
  friend class Halo<Exec, MemSpace>;
  HaloExchange(Halo<Exec, MemSpace>* halo, Exec exec) : halo_(halo), exec_(std::move(exec)) {}
  void finish_quietly() noexcept {
    if (halo_ == nullptr) return;
    try {
      wait();
    } catch (...) {  // a destructor must not throw; wait() reports errors to callers who call it
    }
  }
  Halo<Exec, MemSpace>* halo_ = nullptr;
  Exec exec_;
};

/// A halo-exchange plan for Views of memory space \p MemSpace, run on \p Exec.
///
/// Each View holds, along every split dimension d, `spec.of(d).low` ghost
/// layers, its owned layers, then `spec.of(d).high` ghost layers; other
/// dimensions are whole. Several Views (of any element type and layout)
/// travel together, one packed message per neighbour; a face of a few large
/// contiguous runs goes in place instead, one message per run, where both
/// neighbours cut it into the same runs. The plan must outlive any
/// HaloExchange it starts and must not be moved while one is in flight.
template <class Exec = Kokkos::DefaultExecutionSpace, class MemSpace = typename Exec::memory_space>
class Halo {
 public:
  using execution_space = Exec;
  using memory_space = MemSpace;

  /// Collective over the decomposition's ranks. Throws std::invalid_argument on
  /// every rank when ranks disagree (fields, types, layouts, widths) or a band
  /// is thinner than the halo needs.
  template <class... Views>
  Halo(const Decomposition& decomposition, const HaloSpec& spec, const Views&... views)
      : dec_(decomposition), spec_(spec), comm_(detail::Comm::duplicate(decomposition.grid().comm())) {
    static_assert(sizeof...(Views) >= 1, "khalo::Halo: give at least one View");
    (check_view_type<Views>(), ...);
    (types_.push_back(type_of<Views>()), ...);
    stage_ = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible && !gpu_aware_mpi();
    plan_for({detail::shape_of(views)...});
  }

  Halo(const Halo&) = delete;
  Halo& operator=(const Halo&) = delete;
  Halo(Halo&&) noexcept = default;
  Halo& operator=(Halo&&) noexcept = default;

  /// Exchanges the ghost layers of \p views (same types and order as at
  /// construction); blocks until they are filled. A shape not seen before
  /// builds a new plan, collectively: change shapes on all ranks together.
  template <class... Views>
  void exchange(const Exec& exec, const Views&... views) {
    start(exec, views...).wait();
  }

  /// Starts an exchange and returns once the messages of the first split
  /// dimension are in flight: compute what needs no ghost, then call wait().
  template <class... Views>
  HaloExchange<Exec, MemSpace> start(const Exec& exec, const Views&... views) {
    if (sizeof...(Views) != types_.size()) {
      throw std::invalid_argument("khalo::Halo::start: the plan has " + std::to_string(types_.size()) +
                                  " field(s), got " + std::to_string(sizeof...(Views)));
    }
    if (in_flight_) throw std::logic_error("khalo::Halo::start: an exchange of this plan is already in flight");
    std::size_t f = 0;
    (check_field<Views>(f++), ...);
    current_ = &plan_for({detail::shape_of(views)...});
    data_ = {static_cast<void*>(views.data())...};
    in_flight_ = true;
    Kokkos::Profiling::pushRegion("khalo::Halo::start");
    try {
      begin_phase(exec, 0);
    } catch (...) {
      Kokkos::Profiling::popRegion();
      in_flight_ = false;
      throw;
    }
    Kokkos::Profiling::popRegion();
    return HaloExchange<Exec, MemSpace>(this, exec);
  }

  const HaloStats& stats() const noexcept { return stats_; }
  void reset_stats() noexcept { stats_ = HaloStats{}; }
  const Decomposition& decomposition() const noexcept { return dec_; }
  /// True when buffers go through host memory because MPI cannot read MemSpace.
  bool staged() const noexcept { return stage_; }

 private:
  friend class HaloExchange<Exec, MemSpace>;
  using Plan = detail::ShapePlan<MemSpace>;

  template <class View>
  static void check_view_type() {
    static_assert(Kokkos::is_view<View>::value, "khalo::Halo: fields must be Kokkos Views");
    static_assert(std::is_same_v<typename View::memory_space, MemSpace>,
                  "khalo::Halo: every View must live in the plan's memory space");
    static_assert(!std::is_const_v<typename View::value_type>,
                  "khalo::Halo: ghost layers are written; pass non-const Views");
    static_assert(std::is_trivially_copyable_v<typename View::value_type>,
                  "khalo::Halo: element types must be trivially copyable");
    static_assert(Kokkos::SpaceAccessibility<Exec, MemSpace>::accessible,
                  "khalo::Halo: the execution space cannot access the Views' memory space");
  }

  template <class View>
  static detail::FieldType<Exec> type_of() {
    using T = typename View::value_type;
    detail::FieldType<Exec> t;
    t.kernels = std::make_shared<detail::TypedKernels<Exec, T>>();
    t.elem_size = sizeof(T);
    t.align = alignof(T);
    t.type_name = typeid(T).name();
    t.type_code = static_cast<std::int64_t>(std::hash<std::string>{}(t.type_name) & 0x7fffffffffffffffULL);
    return t;
  }

  template <class View>
  void check_field(std::size_t f) const {
    check_view_type<View>();
    if (type_of<View>().type_code != types_[f].type_code) {
      throw std::invalid_argument("khalo::Halo::start: field " + std::to_string(f) +
                                  " has another element type than at construction");
    }
  }

  Plan& plan_for(const std::vector<detail::FieldShape>& shapes) {
    std::vector<std::int64_t> key;
    for (const auto& s : shapes) {
      key.insert(key.end(), s.extents.begin(), s.extents.end());
      key.insert(key.end(), s.strides.begin(), s.strides.end());
    }
    auto it = plans_.find(key);
    if (it != plans_.end()) return it->second;
    detail::validate(dec_, spec_, types_, shapes);
    Plan plan;
    plan.phases = detail::build_phases(dec_, spec_, types_, shapes, !stage_);
    detail::agree_in_place(comm_.get(), plan.phases);
    allocate(plan);
    return plans_.emplace(std::move(key), std::move(plan)).first->second;
  }

  // One send and one receive buffer, big enough for the largest phase; a rank
  // whose messages all go in place (or that has no neighbour) allocates nothing.
  void allocate(Plan& plan) {
    std::size_t send = 0;
    std::size_t recv = 0;
    for (auto& ph : plan.phases) {
      std::size_t s = 0;
      std::size_t r = 0;
      for (auto& m : ph.sends) {
        if (!m.in_place()) m.buffer_offset = std::exchange(s, detail::align_up(s + m.bytes, 64));
      }
      for (auto& m : ph.recvs) {
        if (!m.in_place()) m.buffer_offset = std::exchange(r, detail::align_up(r + m.bytes, 64));
      }
      send = std::max(send, s);
      recv = std::max(recv, r);
    }
    auto& b = plan.buffers;
    if (send > 0) {
      b.send = typename detail::Buffers<MemSpace>::Device(
          Kokkos::view_alloc("khalo::send", Kokkos::WithoutInitializing), send);
      ++stats_.allocations;
      if (stage_) {
        b.send_host = Kokkos::create_mirror_view(b.send);
        ++stats_.allocations;
      }
    }
    if (recv > 0) {
      b.recv = typename detail::Buffers<MemSpace>::Device(
          Kokkos::view_alloc("khalo::recv", Kokkos::WithoutInitializing), recv);
      ++stats_.allocations;
      if (stage_) {
        b.recv_host = Kokkos::create_mirror_view(b.recv);
        ++stats_.allocations;
      }
    }
  }

  unsigned char* field_bytes(int field) const {
    return static_cast<unsigned char*>(data_[static_cast<std::size_t>(field)]);
  }

  void begin_phase(const Exec& exec, std::size_t p) {
    phase_ = p;
    requests_.clear();
    if (p >= current_->phases.size()) return;
    const detail::Phase& ph = current_->phases[p];
    auto& b = current_->buffers;
    unsigned char* recv_base = stage_ ? b.recv_host.data() : b.recv.data();
    for (const auto& m : ph.recvs) {
      if (m.in_place()) {
        for (const auto& r : m.runs) post(MPI_Irecv, field_bytes(r.field) + r.offset, r.bytes, m);
      } else {
        post(MPI_Irecv, recv_base + m.buffer_offset, static_cast<int>(m.bytes), m);
      }
    }
    for (const auto& m : ph.sends) {
      if (m.in_place()) continue;
      for (const auto& s : m.segments) {
        types_[s.field].kernels->pack(exec, field_bytes(s.field), s.walk, b.send.data() + m.buffer_offset + s.offset);
        ++stats_.faces_packed;
        stats_.bytes_packed += static_cast<std::int64_t>(s.bytes);
      }
    }
    // MPI reads the send buffer (or the View) from here on: fence this instance only.
    exec.fence();
    if (stage_ && b.send.extent(0) > 0) {
      Kokkos::deep_copy(exec, b.send_host, b.send);
      exec.fence();
    }
    unsigned char* send_base = stage_ ? b.send_host.data() : b.send.data();
    for (const auto& m : ph.sends) {
      if (m.in_place()) {
        for (const auto& r : m.runs) post(MPI_Isend, field_bytes(r.field) + r.offset, r.bytes, m);
        stats_.messages += static_cast<std::int64_t>(m.runs.size());
      } else {
        post(MPI_Isend, send_base + m.buffer_offset, static_cast<int>(m.bytes), m);
        ++stats_.messages;
      }
      stats_.bytes_sent += static_cast<std::int64_t>(m.bytes);
    }
    // Sides without a neighbour: filled while the messages fly. They touch
    // only ghost layers no message reads or writes.
    for (const auto& fill : ph.fills) {
      const auto& k = *types_[static_cast<std::size_t>(fill.field)].kernels;
      if (fill.boundary == Boundary::zero) {
        k.zero(exec, field_bytes(fill.field), fill.ghost);
      } else {
        for (const auto& [walk, shift] : fill.copies) k.shift_copy(exec, field_bytes(fill.field), walk, shift);
      }
    }
  }

  template <class Post, class Ptr>
  void post(Post mpi_post, Ptr* ptr, int bytes, const detail::Message& m) {
    requests_.emplace_back();
    KHALO_MPI_CHECK(mpi_post(ptr, bytes, MPI_BYTE, m.peer, m.tag, comm_.get(), &requests_.back()));
  }

  void end_phase(const Exec& exec) {
    const detail::Phase& ph = current_->phases[phase_];
    auto& b = current_->buffers;
    if (!requests_.empty()) {
      KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE));
    }
    if (stage_ && b.recv.extent(0) > 0) Kokkos::deep_copy(exec, b.recv, b.recv_host);
    for (const auto& m : ph.recvs) {
      stats_.bytes_received += static_cast<std::int64_t>(m.bytes);
      if (m.in_place()) continue;
      for (const auto& s : m.segments) {
        types_[s.field].kernels->unpack(exec, field_bytes(s.field), s.walk, b.recv.data() + m.buffer_offset + s.offset);
      }
    }
  }

  void finish(const Exec& exec) {
    Kokkos::Profiling::pushRegion("khalo::Halo::wait");
    try {
      for (;;) {
        end_phase(exec);
        if (phase_ + 1 >= current_->phases.size()) break;
        begin_phase(exec, phase_ + 1);
      }
      exec.fence();
    } catch (...) {
      in_flight_ = false;
      Kokkos::Profiling::popRegion();
      throw;
    }
    in_flight_ = false;
    Kokkos::Profiling::popRegion();
  }

  Decomposition dec_;
  HaloSpec spec_;
  detail::Comm comm_;
  std::vector<detail::FieldType<Exec>> types_;
  std::map<std::vector<std::int64_t>, Plan> plans_;
  Plan* current_ = nullptr;
  std::vector<void*> data_;
  std::vector<MPI_Request> requests_;
  std::size_t phase_ = 0;
  bool stage_ = false;
  bool in_flight_ = false;
  HaloStats stats_;
};

/// Builds a plan for \p views on the default execution space of their memory space.
template <class View, class... Views>
auto make_halo(const Decomposition& decomposition, const HaloSpec& spec, const View& view, const Views&... views) {
  using Exec = typename View::execution_space;
  return Halo<Exec, typename View::memory_space>(decomposition, spec, view, views...);
}

}  // namespace khalo
