#pragma once
/// \file
/// How khalo tells an error that every rank saw from one that a rank met alone.

#include <exception>

namespace khalo {

/// Base of every exception that all ranks of a communicator throw together,
/// with the same message: disagreement between ranks, bad input every rank can
/// see, a band thinner than the halo. Catching one leaves no rank waiting, so
/// a program may report it and go on (or end with an exit code). Any other
/// exception may be local to one rank: see Runtime and FailurePolicy.
class CollectiveError {
 public:
  virtual ~CollectiveError() = default;

 protected:
  CollectiveError() = default;                                   ///< Only as a base.
  CollectiveError(const CollectiveError&) = default;             ///< Copied with the exception.
  CollectiveError& operator=(const CollectiveError&) = default;  ///< Assigned with the exception.
};

/// True when \p e was thrown by every rank together (it derives from CollectiveError).
inline bool is_collective(const std::exception& e) noexcept {
  return dynamic_cast<const CollectiveError*>(&e) != nullptr;
}

namespace detail {

/// \p Exception, marked as thrown on every rank together.
template <class Exception>
class Collective final : public Exception, public CollectiveError {
 public:
  using Exception::Exception;
};

}  // namespace detail
}  // namespace khalo
