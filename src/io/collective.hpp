#pragma once
// Private to src/io: running a step that may fail on some ranks only, so that
// every rank ends it alike.

#include <khalo/detail/comm.hpp>
#include <khalo/io/snapshot.hpp>

#include <exception>
#include <string>

namespace khalo::io::detail {

/// Collective: runs \p f on this rank; whatever any rank throws, every rank
/// throws the lowest failing rank's message, prefixed by \p where, as io::Error.
template <class F>
void collectively(MPI_Comm comm, const std::string& where, F&& f) {
  std::string error;
  try {
    f();
  } catch (const std::exception& e) {
    error = where + e.what();
  }
  khalo::detail::throw_if_any<Error>(comm, error);
}

}  // namespace khalo::io::detail
