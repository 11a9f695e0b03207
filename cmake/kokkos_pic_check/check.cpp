// A shared object that uses Kokkos (cmake/kokkos_pic_check/CMakeLists.txt).
#include <Kokkos_Core.hpp>

int kokkos_pic_check() { return Kokkos::is_initialized() ? 1 : 0; }
