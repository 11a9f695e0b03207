# Debian's libtrilinos-kokkos-dev (Kokkos 3.4) exports Kokkos::kokkos with the
# include directory <prefix>/include computed from a path one level too deep
# (/usr/lib/include), while its headers live in /usr/include/trilinos. Repair
# the imported target in our own configure step only when a listed directory
# does not exist; a correct Kokkos (any 4.x install) is left untouched.
function(khalo_fix_kokkos_target)
  if(NOT TARGET Kokkos::kokkos)
    return()
  endif()
  get_target_property(_aliased Kokkos::kokkos ALIASED_TARGET)
  if(_aliased)
    return()
  endif()
  get_target_property(_dirs Kokkos::kokkos INTERFACE_INCLUDE_DIRECTORIES)
  if(NOT _dirs)
    return()
  endif()
  set(_fixed "")
  set(_broken FALSE)
  foreach(_d IN LISTS _dirs)
    if(_d MATCHES "^\\$<" OR EXISTS "${_d}")
      list(APPEND _fixed "${_d}")
    else()
      set(_broken TRUE)
    endif()
  endforeach()
  if(NOT _broken)
    return()
  endif()
  find_path(KHALO_KOKKOS_INCLUDE_DIR Kokkos_Core.hpp
    HINTS ${Kokkos_INCLUDE_DIRS}
    PATHS /usr/include/trilinos /usr/local/include/trilinos
    DOC "Directory holding Kokkos_Core.hpp (repairs Debian's Kokkos::kokkos target)")
  if(NOT KHALO_KOKKOS_INCLUDE_DIR)
    message(FATAL_ERROR "Kokkos::kokkos lists include directories that do not exist (${_dirs}) "
                        "and Kokkos_Core.hpp was not found; set KHALO_KOKKOS_INCLUDE_DIR.")
  endif()
  list(APPEND _fixed "${KHALO_KOKKOS_INCLUDE_DIR}")
  set_target_properties(Kokkos::kokkos PROPERTIES INTERFACE_INCLUDE_DIRECTORIES "${_fixed}")
  message(STATUS "khalo: repaired Kokkos::kokkos include directory -> ${KHALO_KOKKOS_INCLUDE_DIR}")
endfunction()
