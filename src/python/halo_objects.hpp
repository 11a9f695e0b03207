#pragma once
// khalo.Halo and khalo.Exchange: a plan over the caller's arrays in place, and its split-phase
// handle; both are Resources (lifetime.hpp).

#include "arrays.hpp"
#include "lifetime.hpp"

#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>
#include <khalo/halo_spec.hpp>

#include <pybind11/pybind11.h>
#include <Kokkos_Core.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace khalo::python {

namespace py = pybind11;

using Exec = Kokkos::DefaultHostExecutionSpace;
using HostHalo = khalo::Halo<Exec, Kokkos::HostSpace>;
using HostExchange = khalo::HaloExchange<Exec, Kokkos::HostSpace>;

class PyExchange final : public Resource {
 public:
  PyExchange(HostExchange handle, py::object array) : handle_(std::move(handle)), array_(std::move(array)) {
    kokkos_state().live.insert(this);
  }
  ~PyExchange() override {
    kokkos_state().live.erase(this);
    if (handle_) {
      py::gil_scoped_release unlocked;
      handle_.reset();  // completes the exchange quietly, as HaloExchange's destructor does
    }
  }
  PyExchange(const PyExchange&) = delete;
  PyExchange& operator=(const PyExchange&) = delete;

  void wait() {
    if (!handle_) throw std::logic_error("khalo.Exchange.wait: nothing in flight (already waited for)");
    {
      py::gil_scoped_release unlocked;
      std::optional<HostExchange> handle = std::move(handle_);
      handle_.reset();
      handle->wait();
    }
    array_ = py::none();
  }
  bool pending() const noexcept { return handle_.has_value(); }
  void release() noexcept override { handle_.reset(); }

 private:
  std::optional<HostExchange> handle_;
  py::object array_;  // keeps the caller's memory alive until wait()
};

class PyHalo final : public Resource {
 public:
  PyHalo(const khalo::Decomposition& dec, const khalo::HaloSpec& spec, const py::handle& obj) {
    require_alive("Halo");
    // The array is checked on every rank together: a bad array on one rank alone must not leave the
    // others waiting in the plan's collectives.
    ArrayRef ref;
    const std::string error = take_array(obj, ref);
    khalo::detail::throw_if_any(dec.grid().comm(), error.empty() ? error : "khalo.Halo: " + error);
    elem_ = ref.elem;
    halo_ = with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      return std::make_unique<HostHalo>(dec, spec, view);
    });
    kokkos_state().live.insert(this);
  }
  ~PyHalo() override { kokkos_state().live.erase(this); }
  PyHalo(const PyHalo&) = delete;
  PyHalo& operator=(const PyHalo&) = delete;

  void exchange(const py::handle& obj) {
    ArrayRef ref = take(obj, "Halo.exchange");
    with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      halo_->exchange(Exec(), view);
    });
  }

  std::unique_ptr<PyExchange> start(const py::handle& obj) {
    ArrayRef ref = take(obj, "Halo.start");
    auto handle = with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      return halo_->start(Exec(), view);
    });
    return std::make_unique<PyExchange>(std::move(handle), ref.owner);
  }

  py::dict stats() const {
    const khalo::HaloStats& s = halo("Halo.stats").stats();
    py::dict d;
    d["faces_packed"] = s.faces_packed;
    d["faces_streamed"] = s.faces_streamed;
    d["bytes_packed"] = s.bytes_packed;
    d["bytes_sent"] = s.bytes_sent;
    d["bytes_received"] = s.bytes_received;
    d["messages"] = s.messages;
    d["allocations"] = s.allocations;
    d["fills"] = s.fills;
    d["datatype_sends"] = s.datatype_sends;
    d["datatype_recvs"] = s.datatype_recvs;
    d["shared_sends"] = s.shared_sends;
    d["shared_recvs"] = s.shared_recvs;
    d["direct_sends"] = s.direct_sends;
    d["direct_recvs"] = s.direct_recvs;
    d["mapped_sends"] = s.mapped_sends;
    d["mapped_recvs"] = s.mapped_recvs;
    return d;
  }
  void reset_stats() { halo("Halo.reset_stats").reset_stats(); }

  // For perf/bench_python_halo.py: \p reps blocking exchanges timed in C++ exactly as the benchmark times
  // them from Python (barrier, MPI_Wtime around one exchange, the slowest rank's time), so that the
  // difference between the two is what the Python call costs.
  std::vector<double> time_exchanges(const py::handle& obj, int reps) {
    ArrayRef ref = take(obj, "Halo._time_exchanges");
    if (reps < 1) throw std::invalid_argument("khalo.Halo._time_exchanges: reps must be at least 1");
    const MPI_Comm comm = halo_->decomposition().grid().comm();
    std::vector<double> t(static_cast<std::size_t>(reps));
    with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      for (double& ti : t) {
        KHALO_MPI_CHECK(MPI_Barrier(comm));
        const double t0 = MPI_Wtime();
        halo_->exchange(Exec(), view);
        ti = MPI_Wtime() - t0;
      }
      KHALO_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data(), reps, MPI_DOUBLE, MPI_MAX, comm));
    });
    return t;
  }
  void release() noexcept override { halo_.reset(); }

 private:
  HostHalo& halo(const char* where) const {
    if (halo_ == nullptr) {
      throw std::runtime_error(std::string("khalo.") + where +
                               ": khalo was finalized (interpreter exit or khalo.finalize())");
    }
    return *halo_;
  }
  // \p where: "Halo.exchange" or "Halo.start", for messages.
  ArrayRef take(const py::handle& obj, const char* where) {
    halo(where);
    ArrayRef ref = take_array_or_throw(obj, where);
    if (ref.elem != elem_) {
      throw std::invalid_argument(std::string("khalo.") + where + ": the plan was made for " + elem_name(elem_) +
                                  ", got " + elem_name(ref.elem));
    }
    return ref;
  }

  Elem elem_ = Elem::float32;
  std::unique_ptr<HostHalo> halo_;
};

}  // namespace khalo::python
