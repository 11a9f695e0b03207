#pragma once
/// \file
/// Process-level set-up: MPI then Kokkos, the node-local rank, GPU-aware MPI.

#include <mpi.h>

#include <string>

namespace khalo {

/// Initialises MPI, then Kokkos, and finalizes them in reverse order on
/// destruction. Either one already initialised by the caller is left alone
/// (and not finalized here). Make exactly one, first thing in main().
///
/// On a GPU backend each rank takes GPU `local_rank() % visible GPUs`, unless
/// the user chose one (`--kokkos-device-id`, `KOKKOS_DEVICE_ID`, or
/// `--kokkos-map-device-id-by`). With KHALO_VERBOSE=1 every rank says on
/// stderr which node-local rank and GPU it has.
class Runtime {
 public:
  Runtime(int& argc, char**& argv);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  int world_rank() const noexcept { return world_rank_; }
  int world_size() const noexcept { return world_size_; }
  /// Rank among the processes on this node (see node_local_rank()).
  int local_rank() const noexcept { return local_rank_; }
  /// The GPU this rank selected, or -1 (host backend, or chosen by the user or the caller).
  int device_id() const noexcept { return device_id_; }

 private:
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
