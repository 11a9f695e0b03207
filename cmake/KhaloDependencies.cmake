# Finds what khalo links against. Also used, installed, by khaloConfig.cmake
# through the same fix-up module, so downstream projects see the same targets.
find_package(Kokkos REQUIRED)
include(${CMAKE_CURRENT_LIST_DIR}/KhaloKokkosFixup.cmake)
khalo_fix_kokkos_target()

find_package(MPI REQUIRED COMPONENTS C CXX)

# HDF5 must be parallel: snapshots are written collectively with MPI-IO.
if(NOT DEFINED HDF5_PREFER_PARALLEL)
  set(HDF5_PREFER_PARALLEL TRUE)
endif()
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(FATAL_ERROR
    "khalo needs a parallel (MPI) HDF5, but the HDF5 found (${HDF5_VERSION}, "
    "${HDF5_INCLUDE_DIRS}) is serial. On Debian install libhdf5-openmpi-dev, or "
    "point HDF5_ROOT at a parallel build.")
endif()
message(STATUS "khalo: Kokkos ${Kokkos_VERSION} (${Kokkos_DEVICES}), MPI ${MPI_CXX_VERSION}, parallel HDF5 ${HDF5_VERSION}")
