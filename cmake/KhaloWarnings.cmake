# Warning and sanitizer flags are PRIVATE to khalo's own targets: they never
# reach a project that links khalo::khalo.
# The convolutions need the machine's vector width (AVX2-only code reached half
# the speed on the development machine); an empty value builds portable code.
if(Kokkos_ENABLE_CUDA OR Kokkos_DEVICES MATCHES "CUDA")
  set(_khalo_default_arch "")
else()
  # GCC 12 prefers 256-bit vectors even where 512-bit ones exist; the conv tile is sized for 512.
  set(_khalo_default_arch "-march=native -mprefer-vector-width=512")
endif()
set(KHALO_ARCH_FLAGS "${_khalo_default_arch}" CACHE STRING "Architecture flags for khalo's own targets (empty: portable)")

function(khalo_target_warnings target)
  if(KHALO_ARCH_FLAGS)
    separate_arguments(_arch UNIX_COMMAND "${KHALO_ARCH_FLAGS}")
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CXX>:${_arch}>)
  endif()
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -pedantic>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${KHALO_WERROR}>>:-Werror>)
  if(KHALO_ENABLE_SANITIZERS)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
