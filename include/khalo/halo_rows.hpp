#pragma once
/// \file
/// The seed-parity API: for a tensor band that has no ghost layers (the
/// usual PyTorch-style split of H across ranks), exchange k boundary rows
/// into persistent buffers in the tensor's own memory format. The first and
/// last rank hold zeros on their open side and copy nothing for it.

#include <khalo/detail/block.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/halo/engine.hpp>
#include <khalo/detail/halo/plan.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <climits>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

namespace khalo {

/// Exchanges the k rows at each end of a band with the neighbouring ranks
/// (rank r-1 above, r+1 below, in the communicator's order).
template <class View, class Exec = typename View::execution_space>
class HaloRows {
 public:
  using value_type = typename View::non_const_value_type;  ///< the band's element type
  using memory_space = typename View::memory_space;        ///< where the band and the row buffers live
  /// Row buffers: dense, in the band's stride order.
  using buffer_type = Kokkos::View<typename View::non_const_data_type, Kokkos::LayoutStride, memory_space>;

  /// Collective over \p comm. \p dim is the split dimension (default: H, the
  /// second-to-last). Throws std::invalid_argument on every rank when ranks
  /// disagree on type, layout, k or the other extents, or a band that has a
  /// neighbour holds fewer than k rows.
  HaloRows(MPI_Comm comm, const View& band, int k = 1, int dim = static_cast<int>(View::rank) - 2) : k_(k), dim_(dim) {
    const std::string where = "khalo::HaloRows: ";
    const int rank = static_cast<int>(View::rank);
    int me = 0, size = 1;
    KHALO_MPI_CHECK(MPI_Comm_rank(comm, &me));
    KHALO_MPI_CHECK(MPI_Comm_size(comm, &size));
    const int low = me > 0 ? me - 1 : MPI_PROC_NULL;
    const int high = me + 1 < size ? me + 1 : MPI_PROC_NULL;
    std::string error;
    if (dim < 0 || dim >= rank) {
      error = where + "split dimension " + std::to_string(dim) + " is outside 0.." + std::to_string(rank - 1);
    } else if (k < 1) {
      error = where + "k must be at least 1, got " + std::to_string(k);
    } else if ((low != MPI_PROC_NULL || high != MPI_PROC_NULL) && static_cast<int>(band.extent(dim)) < k) {
      error = where + "rank " + std::to_string(me) + " holds " + std::to_string(band.extent(dim)) +
              " row(s), fewer than the " + std::to_string(k) + " its neighbours need";
    }
    const auto extents = detail::extents_of(band);
    const auto order = stride_order(band);
    std::vector<std::int64_t> sig{rank, k, dim, static_cast<std::int64_t>(sizeof(value_type)),
                                  static_cast<std::int64_t>(std::hash<std::string>{}(typeid(value_type).name()) >> 1)};
    std::vector<std::string> names{"the tensor rank", "k", "the split dimension", "the element type",
                                   "the element type"};
    for (const std::int64_t v : detail::layout_signature(extents, order)) {
      sig.push_back(v);
      names.push_back("the memory layout (stride order)");
    }
    for (int d = 0; d < rank; ++d) {
      sig.push_back(d == dim ? 0 : extents[static_cast<std::size_t>(d)]);
      names.push_back("extent " + std::to_string(d) + " (all but the split dimension must match)");
    }
    const std::string disagree = detail::disagreement(comm, sig, names);
    detail::throw_if_any(comm, disagree.empty() ? error : where + disagree);

    auto row_extents = extents;
    row_extents[static_cast<std::size_t>(dim)] = k;
    top_ = allocate<typename View::non_const_data_type, memory_space>("khalo::HaloRows::top", row_extents, order);
    bottom_ = allocate<typename View::non_const_data_type, memory_space>("khalo::HaloRows::bottom", row_extents, order);
    // Open sides hold zeros from now on; exchanges never touch them.
    Kokkos::deep_copy(top_, value_type{});
    Kokkos::deep_copy(bottom_, value_type{});
    // Halo's engine, with a plan of its own: one phase whose sends are the band's first and
    // last k rows and whose receives are top and bottom (fields 1 and 2), no fills.
    const auto type = detail::field_type<Exec, value_type>();
    const std::vector<detail::FieldType<Exec>> types{type, type, type};
    const bool stage = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible && !gpu_aware_mpi();
    typename Engine::Options options;
    options.stage = stage;
    engine_ = std::make_shared<Engine>(
        comm, "khalo::HaloRows", types, options,
        [types, low, high, k, dim](const std::vector<detail::FieldShape>& shapes, std::string& error) {
          return std::vector<detail::Phase>{row_phase(shapes, types, low, high, k, dim, error)};
        });
    engine_->plan_for(shapes_of(band), true);
  }

  HaloRows(const HaloRows&) = delete;
  HaloRows& operator=(const HaloRows&) = delete;
  HaloRows(HaloRows&&) = default;             ///< Takes over the plan and the row buffers.
  HaloRows& operator=(HaloRows&&) = default;  ///< Takes over the plan and the row buffers.

  /// Fills top() with the last k rows of the rank above and bottom() with the
  /// first k rows of the rank below. Blocks until done. It runs on khalo::Halo's
  /// engine: rows that form one run go to MPI in place; a band of another row
  /// count than before builds a new plan, collectively (as Halo: change shapes on
  /// every rank together).
  void exchange(const Exec& exec, const View& band) {
    Kokkos::Profiling::pushRegion("khalo::HaloRows::exchange");
    try {
      check_band(band);
      auto& plan = engine_->plan_for(shapes_of(band), false);
      engine_->start(exec, plan, {static_cast<void*>(band.data()), top_.data(), bottom_.data()});
      engine_->finish(exec);
    } catch (...) {
      Kokkos::Profiling::popRegion();
      throw;
    }
    Kokkos::Profiling::popRegion();
  }

  /// The k rows above this band (zeros on the first rank).
  const buffer_type& top() const noexcept { return top_; }
  /// The k rows below this band (zeros on the last rank).
  const buffer_type& bottom() const noexcept { return bottom_; }

  /// A tensor with k more rows on each side, in the band's memory format.
  buffer_type allocate_padded(const View& band, const std::string& label) const {
    auto e = detail::extents_of(band);
    e[static_cast<std::size_t>(dim_)] += 2 * k_;
    return allocate<typename View::non_const_data_type, memory_space>(label, e, stride_order(band));
  }

  /// Writes [top, band, bottom] along the split dimension into \p padded (from
  /// allocate_padded, or any View of those extents), for callers who want one tensor.
  template <class Padded>
  void assemble(const Exec& exec, const View& band, const Padded& padded) const {
    check_band(band);
    const auto e = detail::extents_of(band);
    const std::int64_t rows = e[static_cast<std::size_t>(dim_)];
    auto pe = detail::extents_of(padded);
    auto want = e;
    want[static_cast<std::size_t>(dim_)] += 2 * k_;
    if (pe != want) throw std::invalid_argument("khalo::HaloRows::assemble: the padded tensor has the wrong extents");
    const auto order = stride_order(band);
    auto copy = [&](const auto& src, std::int64_t at) {
      auto ext = detail::extents_of(src);
      detail::Block sb{detail::Extents(ext.size(), 0), ext};
      detail::Block db{detail::Extents(ext.size(), 0), ext};
      db.lo[static_cast<std::size_t>(dim_)] = at;
      detail::copy_block(exec, src.data(), detail::make_walk(detail::strides_of(src), order, sb, false), padded.data(),
                         detail::make_walk(detail::strides_of(padded), order, db, false));
    };
    copy(top_, 0);
    copy(band, k_);
    copy(bottom_, k_ + rows);
    exec.fence();
  }

  /// The counters accumulated over this object's exchanges (docs/halo.md §5); top() and
  /// bottom() count as two allocations.
  HaloStats stats() const {
    HaloStats s = engine_->stats();
    s.allocations += 2;
    return s;
  }
  /// True when rows go through host buffers because MPI cannot read the band's memory.
  bool staged() const noexcept { return engine_->staged(); }

 private:
  void check_band(const View& band) const {
    auto e = detail::extents_of(band);
    auto t = detail::extents_of(top_);
    e[static_cast<std::size_t>(dim_)] = k_;
    if (e != t || stride_order(band) != stride_order(top_)) {
      throw std::invalid_argument(
          "khalo::HaloRows: the band's extents or layout differ from the one the exchange was built for");
    }
  }

  using Engine = detail::HaloEngine<Exec, memory_space>;

  std::vector<detail::FieldShape> shapes_of(const View& band) const {
    return {detail::shape_of(band), detail::shape_of(top_), detail::shape_of(bottom_)};
  }

  // The one phase of an exchange: fields band (0), top (1), bottom (2). A message toward the
  // low neighbour has tag 0, toward the high one tag 1.
  static detail::Phase row_phase(const std::vector<detail::FieldShape>& shapes,
                                 const std::vector<detail::FieldType<Exec>>& types, int low, int high, int k, int dim,
                                 std::string& error) {
    const auto d = static_cast<std::size_t>(dim);
    auto walk = [&](int field, std::int64_t begin, std::int64_t count) {
      const auto& s = shapes[static_cast<std::size_t>(field)];
      detail::Block b{detail::Extents(s.extents.size(), 0), s.extents};
      b.lo[d] = begin;
      b.extent[d] = count;
      return detail::make_walk(s.strides, s.order, b);
    };
    auto message = [&](int peer, int tag, int field, std::int64_t begin) {
      detail::Message m;
      m.peer = peer;
      m.tag = tag;
      detail::Segment seg;
      seg.field = field;
      seg.walk = walk(field, begin, k);
      seg.bytes = static_cast<std::size_t>(seg.walk.count) * types[0].elem_size;
      m.bytes = seg.bytes;
      m.segments.push_back(seg);
      if (m.bytes > static_cast<std::size_t>(INT_MAX) && error.empty()) {
        error = "khalo::HaloRows: " + std::to_string(m.bytes) + " bytes of rows exceed MPI's int count";
      }
      return m;
    };
    const std::int64_t rows = shapes[0].extents[d];
    detail::Phase ph;
    if (low != MPI_PROC_NULL) {
      ph.sends.push_back(message(low, 0, 0, 0));
      ph.recvs.push_back(message(low, 1, 1, 0));
    }
    if (high != MPI_PROC_NULL) {
      ph.sends.push_back(message(high, 1, 0, rows - k));
      ph.recvs.push_back(message(high, 0, 2, 0));
    }
    return ph;
  }

  int k_;
  int dim_;
  buffer_type top_;
  buffer_type bottom_;
  std::shared_ptr<Engine> engine_;
};

}  // namespace khalo
