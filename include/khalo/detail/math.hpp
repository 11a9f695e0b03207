#pragma once
/// \file
/// Math functions usable in kernels on every backend and Kokkos version
/// (Kokkos 3.4 has them in Kokkos::Experimental, 4.x in Kokkos).

#include <Kokkos_Core.hpp>

namespace khalo::detail {

#if KOKKOS_VERSION >= 40000
KOKKOS_INLINE_FUNCTION float sqrt(float x) { return Kokkos::sqrt(x); }
KOKKOS_INLINE_FUNCTION float exp(float x) { return Kokkos::exp(x); }
#else
KOKKOS_INLINE_FUNCTION float sqrt(float x) { return Kokkos::Experimental::sqrt(x); }
KOKKOS_INLINE_FUNCTION float exp(float x) { return Kokkos::Experimental::exp(x); }
#endif

}  // namespace khalo::detail
