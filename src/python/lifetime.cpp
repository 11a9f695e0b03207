#include "lifetime.hpp"

#include <Kokkos_Core.hpp>

#include <stdexcept>
#include <string>

namespace khalo::python {

KokkosState& kokkos_state() {
  static KokkosState state;
  return state;
}

void finalize_module() noexcept {
  auto& s = kokkos_state();
  if (s.finalized) return;
  s.finalized = true;
  // Releasing a handle completes its exchange, whose engine it shares with its Halo, so the order does
  // not matter. Released objects stay in the set until Python destroys them.
  for (Resource* r : s.live) r->release();
  if (s.owned && Kokkos::is_initialized()) Kokkos::finalize();
}

void require_alive(const char* what) {
  if (kokkos_state().finalized) {
    throw std::runtime_error(std::string("khalo.") + what +
                             ": khalo was finalized (interpreter exit or khalo.finalize())");
  }
}

}  // namespace khalo::python
