#pragma once
/// \file
/// Owning handle for an MPI communicator and collective agreement helpers.

#include <khalo/detail/mpi_error.hpp>
#include <khalo/error.hpp>

#include <mpi.h>

#include <climits>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace khalo::detail {

/// Move-only owner of a communicator that khalo created (MPI_Comm_dup, MPI_Cart_create);
/// frees it on destruction unless MPI is already finalized.
class Comm {
 public:
  Comm() = default;
  /// Takes ownership of \p comm and switches it to MPI_ERRORS_RETURN so that
  /// KHALO_MPI_CHECK sees failures.
  explicit Comm(MPI_Comm comm) : comm_(comm) {
    if (comm_ != MPI_COMM_NULL) {
      KHALO_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
    }
  }
  /// A duplicate of \p comm, owned: a new tag space that no other code shares.
  static Comm duplicate(MPI_Comm comm) {
    MPI_Comm dup = MPI_COMM_NULL;
    KHALO_MPI_CHECK(MPI_Comm_dup(comm, &dup));
    return Comm(dup);
  }
  Comm(const Comm&) = delete;
  Comm& operator=(const Comm&) = delete;
  Comm(Comm&& other) noexcept : comm_(std::exchange(other.comm_, MPI_COMM_NULL)) {}
  Comm& operator=(Comm&& other) noexcept {
    if (this != &other) {
      reset();
      comm_ = std::exchange(other.comm_, MPI_COMM_NULL);
    }
    return *this;
  }
  ~Comm() { reset(); }

  MPI_Comm get() const noexcept { return comm_; }
  int rank() const {
    int r = 0;
    KHALO_MPI_CHECK(MPI_Comm_rank(comm_, &r));
    return r;
  }
  int size() const {
    int s = 0;
    KHALO_MPI_CHECK(MPI_Comm_size(comm_, &s));
    return s;
  }

 private:
  void reset() noexcept {
    if (comm_ == MPI_COMM_NULL) {
      return;
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
      MPI_Comm_free(&comm_);
    }
    comm_ = MPI_COMM_NULL;
  }
  MPI_Comm comm_ = MPI_COMM_NULL;
};

/// Collective: if any rank passes a non-empty \p local_error, every rank throws
/// \p Exception (std::invalid_argument by default), marked as a CollectiveError,
/// with the message of the lowest such rank. This is how a plan-time error found
/// on one rank ends every rank alike instead of leaving the others waiting in a
/// later collective.
template <class Exception = std::invalid_argument>
void throw_if_any(MPI_Comm comm, const std::string& local_error) {
  int me = 0;
  KHALO_MPI_CHECK(MPI_Comm_rank(comm, &me));
  int size = 0;
  KHALO_MPI_CHECK(MPI_Comm_size(comm, &size));
  const int candidate = local_error.empty() ? size : me;
  int first = size;
  KHALO_MPI_CHECK(MPI_Allreduce(&candidate, &first, 1, MPI_INT, MPI_MIN, comm));
  if (first == size) {
    return;
  }
  int len = (me == first) ? static_cast<int>(local_error.size()) : 0;
  KHALO_MPI_CHECK(MPI_Bcast(&len, 1, MPI_INT, first, comm));
  std::string message(static_cast<std::size_t>(len), '\0');
  if (me == first) {
    message = local_error;
  }
  KHALO_MPI_CHECK(MPI_Bcast(message.data(), len, MPI_CHAR, first, comm));
  throw Collective<Exception>(message);
}

/// A value in disagreement()'s list that says nothing on this rank: it agrees with any other.
inline constexpr std::int64_t kAnyValue = INT64_MIN;

/// Collective: checks that every rank passed the same \p values, where an entry
/// that is kAnyValue on some ranks only has to agree among the others; if not,
/// returns (on every rank) a message naming the first entry that differs with
/// its smallest and largest value, else an empty string.
inline std::string disagreement(MPI_Comm comm, const std::vector<std::int64_t>& values,
                                const std::vector<std::string>& names) {
  std::int64_t n = static_cast<std::int64_t>(values.size());
  std::int64_t nmin = 0;
  std::int64_t nmax = 0;
  KHALO_MPI_CHECK(MPI_Allreduce(&n, &nmin, 1, MPI_INT64_T, MPI_MIN, comm));
  KHALO_MPI_CHECK(MPI_Allreduce(&n, &nmax, 1, MPI_INT64_T, MPI_MAX, comm));
  if (nmin != nmax) {
    return "ranks disagree on the number of checked properties (" + std::to_string(nmin) + " vs " +
           std::to_string(nmax) + ")";
  }
  // A wildcard is the largest value in the MIN reduction and the smallest in the MAX one, so
  // it never widens [lo, hi]; entries that are wildcards everywhere end with lo > hi.
  std::vector<std::int64_t> for_min(values);
  std::vector<std::int64_t> for_max(values);
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (values[i] == kAnyValue) for_min[i] = INT64_MAX;
  }
  std::vector<std::int64_t> lo(values.size());
  std::vector<std::int64_t> hi(values.size());
  const int count = static_cast<int>(values.size());
  KHALO_MPI_CHECK(MPI_Allreduce(for_min.data(), lo.data(), count, MPI_INT64_T, MPI_MIN, comm));
  KHALO_MPI_CHECK(MPI_Allreduce(for_max.data(), hi.data(), count, MPI_INT64_T, MPI_MAX, comm));
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (lo[i] < hi[i]) {
      const std::string what = i < names.size() ? names[i] : "value " + std::to_string(i);
      return "ranks disagree on " + what + " (" + std::to_string(lo[i]) + " on some ranks, " + std::to_string(hi[i]) +
             " on others)";
    }
  }
  return {};
}

}  // namespace khalo::detail
