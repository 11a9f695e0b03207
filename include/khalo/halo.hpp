#pragma once
/// \file
/// khalo::Halo: a halo-exchange plan over a decomposition for one or more
/// Views that carry ghost layers. Built once (collective validation, tags on
/// a private communicator, buffers); `exchange` then only packs, sends,
/// receives and unpacks, toward neighbours that exist.

#include <khalo/decomposition.hpp>
#include <khalo/detail/halo/engine.hpp>
#include <khalo/detail/halo/plan.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

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

/// A started exchange. Move-only; shares the plan's engine with its Halo, so
/// it keeps the buffers alive until wait() (or its destructor) completes the
/// exchange, even when the Halo is moved or destroyed first. The Views must
/// stay alive until then.
template <class Exec, class MemSpace>
class [[nodiscard]] HaloExchange {
 public:
  /// Takes over \p other's exchange; \p other is left with nothing in flight.
  HaloExchange(HaloExchange&& other) noexcept = default;
  /// Completes this handle's own exchange, if any (quietly), then takes over \p other's.
  HaloExchange& operator=(HaloExchange&& other) noexcept {
    if (this != &other) {
      finish_quietly();
      engine_ = std::move(other.engine_);
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
    if (engine_ == nullptr) throw std::logic_error("khalo::HaloExchange::wait: nothing in flight");
    auto engine = std::move(engine_);
    engine_ = nullptr;
    engine->finish(exec_);
  }

 private:
  using Engine = detail::HaloEngine<Exec, MemSpace>;
  friend class Halo<Exec, MemSpace>;
  HaloExchange(std::shared_ptr<Engine> engine, Exec exec) : engine_(std::move(engine)), exec_(std::move(exec)) {}
  void finish_quietly() noexcept {
    if (engine_ == nullptr) return;
    try {
      wait();
    } catch (...) {  // a destructor must not throw; wait() reports errors to callers who call it
    }
  }
  std::shared_ptr<Engine> engine_;
  Exec exec_;
};

/// A halo-exchange plan for Views of memory space \p MemSpace, run on \p Exec.
///
/// Each View holds, along every split dimension d, `spec.of(d).low` ghost
/// layers, its owned layers, then `spec.of(d).high` ghost layers; other
/// dimensions are whole. Several Views (of any element type and layout)
/// travel together, one packed message per neighbour; a face that is one
/// contiguous run goes to MPI in place, and so does a face of a few large runs,
/// one message per run, where both neighbours cut it into the same runs; a face
/// of one View may instead go as an MPI derived datatype over it, where khalo's
/// measured cost model prefers that to a pack (HaloSpec::set_transport). A Halo
/// may be moved, or destroyed,
/// while an exchange it started is in flight: the HaloExchange keeps what it needs.
template <class Exec = Kokkos::DefaultExecutionSpace, class MemSpace = typename Exec::memory_space>
class Halo {
 public:
  using execution_space = Exec;   ///< where pack and unpack kernels run
  using memory_space = MemSpace;  ///< where the Views and the plan's buffers live

  /// Collective over the decomposition's ranks. Throws std::invalid_argument on
  /// every rank when ranks disagree (fields, types, layouts, widths) or a band
  /// is thinner than the halo needs.
  template <class... Views>
  Halo(const Decomposition& decomposition, const HaloSpec& spec, const Views&... views) {
    static_assert(sizeof...(Views) >= 1, "khalo::Halo: give at least one View");
    (check_view_type<Views>(), ...);
    std::vector<detail::FieldType<Exec>> types;
    (types.push_back(type_of<Views>()), ...);
    const bool stage = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible && !gpu_aware_mpi();
    engine_ = std::make_shared<Engine>(decomposition, spec, std::move(types), stage);
    engine_->plan_for({detail::shape_of(views)...}, true);
  }

  Halo(const Halo&) = delete;
  Halo& operator=(const Halo&) = delete;
  Halo(Halo&&) noexcept = default;             ///< Takes over the plan; the moved-from Halo throws on use.
  Halo& operator=(Halo&&) noexcept = default;  ///< Takes over the plan; the moved-from Halo throws on use.

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
    Engine& engine = this->engine("start");
    if (sizeof...(Views) != engine.types().size()) {
      throw std::invalid_argument("khalo::Halo::start: the plan has " + std::to_string(engine.types().size()) +
                                  " field(s), got " + std::to_string(sizeof...(Views)));
    }
    if (engine.in_flight()) {
      throw std::logic_error("khalo::Halo::start: an exchange of this plan is already in flight");
    }
    std::size_t f = 0;
    (check_field<Views>(f++), ...);
    auto& plan = engine.plan_for({detail::shape_of(views)...}, false);
    Kokkos::Profiling::pushRegion("khalo::Halo::start");
    try {
      engine.start(exec, plan, {static_cast<void*>(views.data())...});
    } catch (...) {
      Kokkos::Profiling::popRegion();
      throw;
    }
    Kokkos::Profiling::popRegion();
    return HaloExchange<Exec, MemSpace>(engine_, exec);
  }

  /// The counters accumulated over this plan's exchanges (docs/halo.md §5).
  const HaloStats& stats() const { return engine("stats").stats(); }
  /// Sets every counter of stats() back to zero.
  void reset_stats() { engine("reset_stats").stats() = HaloStats{}; }
  /// The decomposition the plan was built for.
  const Decomposition& decomposition() const { return engine("decomposition").decomposition(); }
  /// True when buffers go through host memory because MPI cannot read MemSpace.
  bool staged() const { return engine("staged").staged(); }

 private:
  friend class HaloExchange<Exec, MemSpace>;
  using Engine = detail::HaloEngine<Exec, MemSpace>;

  Engine& engine(const char* what) const {
    if (engine_ == nullptr) throw std::logic_error(std::string("khalo::Halo::") + what + ": the Halo was moved from");
    return *engine_;
  }
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
    return detail::field_type<Exec, typename View::value_type>();
  }

  template <class View>
  void check_field(std::size_t f) const {
    check_view_type<View>();
    if (type_of<View>().type_code != engine_->types()[f].type_code) {
      throw std::invalid_argument("khalo::Halo::start: field " + std::to_string(f) +
                                  " has another element type than at construction");
    }
  }

  std::shared_ptr<Engine> engine_;
};

/// Builds a plan for \p views on the default execution space of their memory space.
template <class View, class... Views>
auto make_halo(const Decomposition& decomposition, const HaloSpec& spec, const View& view, const Views&... views) {
  using Exec = typename View::execution_space;
  return Halo<Exec, typename View::memory_space>(decomposition, spec, view, views...);
}

}  // namespace khalo
