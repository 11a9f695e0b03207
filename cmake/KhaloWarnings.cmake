# Warning and sanitizer flags are PRIVATE to khalo's own targets: they never
# reach a project that links khalo::khalo.
function(khalo_target_warnings target)
  target_compile_options(${target} PRIVATE
    $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -pedantic>
    $<$<AND:$<COMPILE_LANGUAGE:CXX>,$<BOOL:${KHALO_WERROR}>>:-Werror>)
  if(KHALO_ENABLE_SANITIZERS)
    target_compile_options(${target} PRIVATE -fsanitize=address,undefined -fno-omit-frame-pointer
                                             -fno-sanitize-recover=undefined)
    target_link_options(${target} PRIVATE -fsanitize=address,undefined)
  endif()
endfunction()
