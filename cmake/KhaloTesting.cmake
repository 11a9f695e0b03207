# MPI tests: one ctest per rank count, named <name>_np<N>, labelled mpi;np<N>,
# with PROCESSORS and a TIMEOUT so that a hang fails instead of blocking CI.

set(KHALO_MPIEXEC_FLAGS "" CACHE STRING "Extra flags for the MPI launcher in tests")
set(KHALO_TEST_THREADS 2 CACHE STRING "OpenMP threads per rank in tests (OpenMP backends)")
# OpenMPI refuses more ranks than cores without --oversubscribe, and refuses
# to start as root (CI, containers) unless the environment allows it.
execute_process(COMMAND ${MPIEXEC_EXECUTABLE} --version OUTPUT_VARIABLE _khalo_mpiexec_version ERROR_QUIET)
set(KHALO_LAUNCHER_FLAGS "")
if(_khalo_mpiexec_version MATCHES "Open MPI|OpenRTE")
  set(KHALO_LAUNCHER_FLAGS --oversubscribe)
endif()
set(KHALO_TEST_ENV
    "OMPI_ALLOW_RUN_AS_ROOT=1;OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1;OMP_NUM_THREADS=${KHALO_TEST_THREADS};OMP_PROC_BIND=false;OMP_WAIT_POLICY=passive")

# khalo_add_mpi_test(<name> RANKS n... [TIMEOUT s] [LABELS l...] COMMAND <target> [args...])
function(khalo_add_mpi_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "RANKS;LABELS;COMMAND" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  list(POP_FRONT ARG_COMMAND _target)
  foreach(n IN LISTS ARG_RANKS)
    add_test(NAME ${name}_np${n}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${n} ${KHALO_LAUNCHER_FLAGS} ${KHALO_MPIEXEC_FLAGS}
              ${MPIEXEC_PREFLAGS} $<TARGET_FILE:${_target}> ${MPIEXEC_POSTFLAGS} ${ARG_COMMAND})
    set_tests_properties(${name}_np${n} PROPERTIES
      PROCESSORS ${n} TIMEOUT ${ARG_TIMEOUT} LABELS "mpi;np${n};${ARG_LABELS}" ENVIRONMENT "${KHALO_TEST_ENV}")
  endforeach()
endfunction()
