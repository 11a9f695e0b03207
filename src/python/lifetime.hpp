#pragma once
// Kokkos's lifetime in the Python module (docs/python.md §6): what must be released before
// Kokkos::finalize, and the hook that does it.

#include <set>

namespace khalo::python {

// Kokkos: initialised at import unless someone else did it; finalised by an atexit hook that first
// releases every live Halo and exchange. Python runs atexit hooks before it clears module globals,
// so a Halo still referenced there would otherwise free its Kokkos buffers after Kokkos::finalize.

/// An object holding Kokkos memory: registered in kokkos_state().live while it exists.
class Resource {
 public:
  virtual ~Resource() = default;
  virtual void release() noexcept = 0;
};

struct KokkosState {
  bool owned = false;      // this module initialised Kokkos, so it finalises it
  bool finalized = false;  // the hook ran: no new Halo
  std::set<Resource*> live;
};

/// The module's one state.
KokkosState& kokkos_state();
/// Releases every live Resource, then finalizes Kokkos if the module initialised it. Idempotent.
void finalize_module() noexcept;
/// Throws RuntimeError (std::runtime_error) naming khalo.<what> once the module is finalized.
void require_alive(const char* what);

}  // namespace khalo::python
