#pragma once
/// \file
/// The seed-parity API: for a tensor band that has no ghost layers (the
/// usual PyTorch-style split of H across ranks), exchange k boundary rows
/// into persistent buffers in the tensor's own memory format. The first and
/// last rank hold zeros on their open side and copy nothing for it.

#include <khalo/detail/block.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <climits>
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
  HaloRows(MPI_Comm comm, const View& band, int k = 1, int dim = static_cast<int>(View::rank) - 2)
      : comm_(detail::Comm::duplicate(comm)), k_(k), dim_(dim) {
    const std::string where = "khalo::HaloRows: ";
    const int rank = static_cast<int>(View::rank);
    const int me = comm_.rank();
    const int size = comm_.size();
    low_ = me > 0 ? me - 1 : MPI_PROC_NULL;
    high_ = me + 1 < size ? me + 1 : MPI_PROC_NULL;
    std::string error;
    if (dim < 0 || dim >= rank) {
      error = where + "split dimension " + std::to_string(dim) + " is outside 0.." + std::to_string(rank - 1);
    } else if (k < 1) {
      error = where + "k must be at least 1, got " + std::to_string(k);
    } else if ((low_ != MPI_PROC_NULL || high_ != MPI_PROC_NULL) && static_cast<int>(band.extent(dim)) < k) {
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
    const std::string disagree = detail::disagreement(comm_.get(), sig, names);
    detail::throw_if_any(comm_.get(), disagree.empty() ? error : where + disagree);

    stage_ = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, memory_space>::accessible && !gpu_aware_mpi();
    auto row_extents = extents;
    row_extents[static_cast<std::size_t>(dim)] = k;
    top_ = allocate<typename View::non_const_data_type, memory_space>("khalo::HaloRows::top", row_extents, order);
    bottom_ = allocate<typename View::non_const_data_type, memory_space>("khalo::HaloRows::bottom", row_extents, order);
    stats_.allocations += 2;  // top and bottom are the result; they exist on every rank
    // Open sides hold zeros from now on; exchanges never touch them.
    Kokkos::deep_copy(top_, value_type{});
    Kokkos::deep_copy(bottom_, value_type{});
    if (stage_) {
      top_host_ = Kokkos::create_mirror_view(top_);
      bottom_host_ = Kokkos::create_mirror_view(bottom_);
      stats_.allocations += 2;
    }
  }

  /// Fills top() with the last k rows of the rank above and bottom() with the
  /// first k rows of the rank below. Blocks until done.
  void exchange(const Exec& exec, const View& band) {
    Kokkos::Profiling::pushRegion("khalo::HaloRows::exchange");
    check_band(band);
    const auto strides = detail::strides_of(band);
    const auto order = stride_order(band);
    const auto extents = detail::extents_of(band);
    const std::int64_t rows = extents[static_cast<std::size_t>(dim_)];
    std::vector<MPI_Request> req;
    const auto bytes = [&](const detail::BlockWalk& w) { return static_cast<int>(w.count * sizeof(value_type)); };
    auto rows_block = [&](std::int64_t begin) {
      detail::Block b{detail::Extents(extents.size(), 0), extents};
      b.lo[static_cast<std::size_t>(dim_)] = begin;
      b.extent[static_cast<std::size_t>(dim_)] = k_;
      return detail::make_walk(strides, order, b);
    };
    // Receives land in the row buffers themselves (dense, so contiguous).
    auto recv = [&](buffer_type& buf, typename buffer_type::HostMirror& host, int peer, int tag) {
      if (peer == MPI_PROC_NULL) return;
      void* ptr = stage_ ? static_cast<void*>(host.data()) : static_cast<void*>(buf.data());
      req.emplace_back();
      const int n = static_cast<int>(buf.span() * sizeof(value_type));
      KHALO_MPI_CHECK(MPI_Irecv(ptr, n, MPI_BYTE, peer, tag, comm_.get(), &req.back()));
      stats_.bytes_received += n;
    };
    recv(top_, top_host_, low_, 1);
    recv(bottom_, bottom_host_, high_, 0);
    // Sends: straight from the band where its rows are contiguous, else packed once.
    const detail::BlockWalk first = rows_block(0);
    const detail::BlockWalk last = rows_block(rows - k_);
    const bool direct = !stage_;
    const value_type* src[2] = {nullptr, nullptr};
    const int peers[2] = {low_, high_};
    const detail::BlockWalk* walks[2] = {&first, &last};
    for (int s = 0; s < 2; ++s) {
      if (peers[s] == MPI_PROC_NULL) continue;
      if (direct && walks[s]->contiguous()) {
        src[s] = band.data() + walks[s]->base;
        continue;
      }
      auto& buf = send_buffer(s, *walks[s]);
      detail::pack_block(exec, band.data(), *walks[s], buf.data());
      ++stats_.faces_packed;
      stats_.bytes_packed += bytes(*walks[s]);
      src[s] = buf.data();
    }
    exec.fence();  // MPI reads the band or the packed rows from here on
    for (int s = 0; s < 2; ++s) {
      if (peers[s] == MPI_PROC_NULL) continue;
      const void* ptr = src[s];
      if (stage_) {
        Kokkos::deep_copy(exec, send_host_[s], send_[s]);
        exec.fence();
        ptr = send_host_[s].data();
      }
      req.emplace_back();
      KHALO_MPI_CHECK(MPI_Isend(ptr, bytes(*walks[s]), MPI_BYTE, peers[s], s, comm_.get(), &req.back()));
      ++stats_.messages;
      stats_.bytes_sent += bytes(*walks[s]);
    }
    if (!req.empty()) {
      KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(req.size()), req.data(), MPI_STATUSES_IGNORE));
    }
    if (stage_) {
      if (low_ != MPI_PROC_NULL) Kokkos::deep_copy(exec, top_, top_host_);
      if (high_ != MPI_PROC_NULL) Kokkos::deep_copy(exec, bottom_, bottom_host_);
      exec.fence();
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

  /// The counters accumulated over this object's exchanges (docs/halo.md §5).
  const HaloStats& stats() const noexcept { return stats_; }

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

  buffer_type& send_buffer(int side, const detail::BlockWalk& w) {
    auto& buf = send_[side];
    if (buf.span() != static_cast<std::size_t>(w.count)) {
      buf = allocate<typename View::non_const_data_type, memory_space>("khalo::HaloRows::send",
                                                                       detail::extents_of(top_), stride_order(top_));
      ++stats_.allocations;
      if (stage_) {
        send_host_[side] = Kokkos::create_mirror_view(buf);
        ++stats_.allocations;
      }
    }
    return buf;
  }

  detail::Comm comm_;
  int k_;
  int dim_;
  int low_ = MPI_PROC_NULL;
  int high_ = MPI_PROC_NULL;
  bool stage_ = false;
  buffer_type top_;
  buffer_type bottom_;
  typename buffer_type::HostMirror top_host_;
  typename buffer_type::HostMirror bottom_host_;
  buffer_type send_[2];
  typename buffer_type::HostMirror send_host_[2];
  HaloStats stats_;
};

}  // namespace khalo
