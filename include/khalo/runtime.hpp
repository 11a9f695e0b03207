#pragma once
/// \file
/// Process-level set-up: MPI then Kokkos, the node-local rank, GPU-aware MPI.

#include <mpi.h>

#include <functional>
#include <string>

namespace khalo {

/// What happens when a rank meets an error that the other ranks may not see
/// (docs/failure-policy.md §2).
enum class FailurePolicy {
  /// The whole job ends: one line `khalo: rank R: <what>` on stderr, then
  /// MPI_Abort(MPI_COMM_WORLD, 2). Applies to exceptions that escape main or
  /// Runtime::guard and to fatal signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL,
  /// SIGABRT, e.g. from Kokkos::abort) where no other handler is installed.
  abort_job,
  /// khalo installs no handler: exceptions reach the caller, who must then end
  /// the job itself (the other ranks may be waiting for this one).
  throw_only,
};

/// Initialises MPI, then Kokkos, and finalizes them in reverse order on
/// destruction. Either one already initialised by the caller is left alone
/// (and not finalized here). Make exactly one, first thing in main().
///
/// MPI must provide at least MPI_THREAD_FUNNELED; a library that offers less
/// is an error. On a GPU backend each rank takes GPU `local_rank() % visible
/// GPUs`, unless the user chose one (`--kokkos-device-id`, `KOKKOS_DEVICE_ID`,
/// or `--kokkos-map-device-id-by`). With KHALO_VERBOSE=1 every rank says on
/// stderr which node-local rank and GPU it has.
class Runtime {
 public:
  /// Initialises MPI (unless initialised) and Kokkos (unless initialised; \p argc and \p argv
  /// carry Kokkos' options), and applies \p policy. Collective over MPI_COMM_WORLD.
  explicit Runtime(int& argc, char**& argv, FailurePolicy policy = FailurePolicy::abort_job);
  /// Finalizes Kokkos, then MPI, where this object initialised them.
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Runs \p body (a main) and returns its exit code, applying the failure
  /// policy to what it throws:
  /// - a CollectiveError (every rank threw it together): rank 0 prints
  ///   `<program>: error: <what>` and every rank returns 2;
  /// - any other exception: if every rank fails within a few seconds
  ///   (KHALO_FAIL_AGREE_SECONDS, default 3), rank 0 prints the lowest failing
  ///   rank's message once and every rank returns 2; otherwise this rank prints
  ///   `khalo: rank R: <what>` and aborts the job (abort_job), or rethrows
  ///   (throw_only).
  int guard(const char* program, const std::function<int()>& body) const;

  /// Ends the job because of an error this rank met: `khalo: rank R: <what>`
  /// on stderr, then MPI_Abort(MPI_COMM_WORLD, 2). Usable with either policy.
  [[noreturn]] static void abort_job(const std::string& what) noexcept;

  /// The policy chosen at construction.
  FailurePolicy policy() const noexcept { return policy_; }

  /// This process's rank in MPI_COMM_WORLD.
  int world_rank() const noexcept { return world_rank_; }
  /// The number of ranks in MPI_COMM_WORLD.
  int world_size() const noexcept { return world_size_; }
  /// Rank among the processes on this node (see node_local_rank()).
  int local_rank() const noexcept { return local_rank_; }
  /// The GPU this rank selected, or -1 (host backend, or chosen by the user or the caller).
  int device_id() const noexcept { return device_id_; }

 private:
  FailurePolicy policy_ = FailurePolicy::abort_job;
  MPI_Comm fail_comm_ = MPI_COMM_NULL;  // where failing ranks look for each other
  bool owns_mpi_ = false;
  bool owns_kokkos_ = false;
  int world_rank_ = 0;
  int world_size_ = 1;
  int local_rank_ = 0;
  int device_id_ = -1;
};

/// Rank of this process among those sharing its node, from
/// MPI_Comm_split_type(MPI_COMM_TYPE_SHARED): right under mpirun and srun alike.
int node_local_rank(MPI_Comm comm);

/// Whether device pointers may be handed to MPI: the environment variable
/// KHALO_GPU_AWARE_MPI=0|1 decides when set, else the MPI library is asked
/// (OpenMPI's MPIX_Query_cuda_support, MPICH's MPIX_GPU_query_support).
bool gpu_aware_mpi();

/// One line naming the Kokkos version and backends, the MPI library and HDF5.
std::string build_info();

}  // namespace khalo
