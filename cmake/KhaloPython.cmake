# What the Python module (src/python, docs/python.md) needs: Python 3 with its development files,
# pybind11 and mpi4py's C API header. KHALO_ENABLE_PYTHON defaults to ON when all three are found.

# Debian's python3 (where python3-pybind11, python3-mpi4py and python3-numpy live), not whichever
# python3 comes first in PATH (a pyenv shim, say), unless the caller chose one.
if(NOT DEFINED Python3_EXECUTABLE AND EXISTS /usr/bin/python3)
  set(Python3_EXECUTABLE /usr/bin/python3 CACHE FILEPATH "The Python 3 that the Python module is built for")
endif()
find_package(Python3 COMPONENTS Interpreter Development.Module QUIET)
set(_khalo_python_found OFF)
if(Python3_FOUND)
  # pybind11 installed for that Python (python3-pybind11), else anywhere CMake looks (pybind11-dev).
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import pybind11; print(pybind11.get_cmake_dir())"
                  OUTPUT_VARIABLE _khalo_pybind11_dir OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  find_package(pybind11 CONFIG QUIET HINTS ${_khalo_pybind11_dir})
  execute_process(COMMAND ${Python3_EXECUTABLE} -c "import mpi4py; print(mpi4py.get_include())"
                  OUTPUT_VARIABLE KHALO_MPI4PY_INCLUDE_DIR OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(pybind11_FOUND AND KHALO_MPI4PY_INCLUDE_DIR)
    set(_khalo_python_found ON)
  endif()
endif()
# A static Kokkos goes into the module (a shared object) only as position-independent code, which a
# default static build is not: the module's link failed with a relocation error (R_X86_64_TPOFF32).
# Try once per build directory; Debian's Kokkos is shared and skips the check.
set(_khalo_kokkos_not_pic OFF)
if(_khalo_python_found AND TARGET Kokkos::kokkoscore)
  get_target_property(_khalo_kokkos_type Kokkos::kokkoscore TYPE)
  if(_khalo_kokkos_type STREQUAL "STATIC_LIBRARY")
    if(NOT DEFINED KHALO_KOKKOS_LINKS_SHARED)
      message(STATUS "khalo: checking that the static Kokkos links into a shared object")
      try_compile(_khalo_links_shared ${PROJECT_BINARY_DIR}/kokkos_pic_check
                  ${CMAKE_CURRENT_LIST_DIR}/kokkos_pic_check kokkos_pic_check
                  CMAKE_FLAGS -DKokkos_DIR=${Kokkos_DIR} -DCMAKE_CXX_COMPILER=${CMAKE_CXX_COMPILER}
                  OUTPUT_VARIABLE _khalo_pic_log)
      if(NOT _khalo_links_shared)
        file(WRITE ${PROJECT_BINARY_DIR}/kokkos_pic_check.log "${_khalo_pic_log}")
      endif()
      set(KHALO_KOKKOS_LINKS_SHARED ${_khalo_links_shared} CACHE INTERNAL
          "The static Kokkos links into a shared object (checked once per build directory)")
    endif()
    if(NOT KHALO_KOKKOS_LINKS_SHARED)
      set(_khalo_kokkos_not_pic ON)
      set(_khalo_python_found OFF)
      message(STATUS "khalo: Python module off: the static Kokkos at ${Kokkos_DIR} cannot go into a shared object "
                     "(rebuild Kokkos with -DCMAKE_POSITION_INDEPENDENT_CODE=ON or -DBUILD_SHARED_LIBS=ON; the "
                     "check's output is in ${PROJECT_BINARY_DIR}/kokkos_pic_check.log)")
    endif()
  endif()
endif()
# Not under the sanitizers: an ASan-instrumented extension cannot load into an uninstrumented python3.
if(KHALO_ENABLE_SANITIZERS)
  set(_khalo_python_found OFF)
endif()
option(KHALO_ENABLE_PYTHON "Build the Python module khalo (needs Python 3 development files, pybind11, mpi4py)"
       ${_khalo_python_found})

if(KHALO_ENABLE_PYTHON)
  if(KHALO_ENABLE_SANITIZERS)
    message(FATAL_ERROR "KHALO_ENABLE_PYTHON=ON cannot be combined with KHALO_ENABLE_SANITIZERS=ON: an "
                        "ASan-instrumented extension does not load into an uninstrumented python3.")
  endif()
  if(_khalo_kokkos_not_pic)
    message(FATAL_ERROR "KHALO_ENABLE_PYTHON=ON, but the static Kokkos at ${Kokkos_DIR} is not position-independent "
                        "code and cannot go into the module; rebuild Kokkos with -DCMAKE_POSITION_INDEPENDENT_CODE=ON "
                        "(or -DBUILD_SHARED_LIBS=ON), or configure with -DKHALO_ENABLE_PYTHON=OFF.")
  endif()
  if(NOT pybind11_FOUND OR NOT KHALO_MPI4PY_INCLUDE_DIR)
    message(FATAL_ERROR
      "KHALO_ENABLE_PYTHON=ON needs Python 3 with its development files (${Python3_EXECUTABLE}), pybind11 and "
      "mpi4py; found Python3: ${Python3_FOUND}, pybind11: ${pybind11_FOUND}, mpi4py include: "
      "'${KHALO_MPI4PY_INCLUDE_DIR}'. On Debian install python3-dev python3-pybind11 python3-mpi4py, or "
      "configure with -DKHALO_ENABLE_PYTHON=OFF.")
  endif()
  # Debian's layout (lib/python3/dist-packages) where the interpreter uses it, else lib/python3.X/site-packages.
  if(Python3_SITEARCH MATCHES "dist-packages")
    set(_khalo_python_dir lib/python3/dist-packages)
  else()
    set(_khalo_python_dir lib/python${Python3_VERSION_MAJOR}.${Python3_VERSION_MINOR}/site-packages)
  endif()
  set(KHALO_PYTHON_INSTALL_DIR ${_khalo_python_dir} CACHE STRING
      "Where the Python module is installed, relative to the install prefix")
  message(STATUS "khalo: Python module for ${Python3_EXECUTABLE} ${Python3_VERSION}, pybind11 ${pybind11_VERSION}, "
                 "mpi4py ${KHALO_MPI4PY_INCLUDE_DIR}; installed into <prefix>/${KHALO_PYTHON_INSTALL_DIR}")
endif()
