#include <khalo/detail/mpi_error.hpp>

#include <stdexcept>
#include <string>

namespace khalo::detail {

void throw_mpi_error(int code, const char* call, const char* file, int line) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(code, text, &len) != MPI_SUCCESS) {
    len = 0;
  }
  throw std::runtime_error("khalo: MPI call failed: " + std::string(call) + " -> " +
                           std::string(text, static_cast<std::size_t>(len)) + " (" + file + ":" + std::to_string(line) +
                           ")");
}

}  // namespace khalo::detail
