#pragma once
/// \file
/// One checking macro for every MPI call, active in Release builds too.

#include <mpi.h>

namespace khalo::detail {

/// Throws std::runtime_error naming the failed call, MPI's own error text and where it happened.
[[noreturn]] void throw_mpi_error(int code, const char* call, const char* file, int line);

}  // namespace khalo::detail

/// Checks the return code of an MPI call and throws on failure. Communicators
/// that khalo owns use MPI_ERRORS_RETURN, so failures reach this check.
#define KHALO_MPI_CHECK(call)                                                     \
  do {                                                                            \
    const int khalo_mpi_rc_ = (call);                                             \
    if (khalo_mpi_rc_ != MPI_SUCCESS) {                                           \
      ::khalo::detail::throw_mpi_error(khalo_mpi_rc_, #call, __FILE__, __LINE__); \
    }                                                                             \
  } while (false)
