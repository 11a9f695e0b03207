// Under srun: every rank's node-local rank from khalo (MPI_Comm_split_type, what picks a rank's GPU)
// must equal Slurm's own count, SLURM_LOCALID, and the MPI rank must equal SLURM_PROCID. srun sets
// none of OpenMPI's OMPI_COMM_WORLD_* variables, so this is the only local rank a program gets.
// Rank 0 prints one "local_rank: ..." line per rank; the exit status is 0 on every rank when all
// ranks agree, 1 otherwise.
#include <khalo/runtime.hpp>

#include <mpi.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

int env_int(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::atoi(v) : -1;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  const int local = khalo::node_local_rank(MPI_COMM_WORLD);
  // rank, node-local rank (twice: the function and what Runtime cached), SLURM_PROCID, SLURM_LOCALID
  const int mine[5] = {runtime.world_rank(), local, runtime.local_rank(), env_int("SLURM_PROCID"),
                       env_int("SLURM_LOCALID")};
  std::vector<int> all(5 * static_cast<std::size_t>(runtime.world_size()));
  MPI_Gather(mine, 5, MPI_INT, all.data(), 5, MPI_INT, 0, MPI_COMM_WORLD);
  int bad = 0;
  if (runtime.world_rank() == 0) {
    for (int r = 0; r < runtime.world_size(); ++r) {
      const int* v = &all[5 * static_cast<std::size_t>(r)];
      const bool ok = v[1] == v[2] && v[1] == v[4] && v[0] == v[3];
      bad += ok ? 0 : 1;
      std::printf(
          "local_rank: rank %d of %d: node_local_rank %d, Runtime::local_rank %d, SLURM_PROCID %d, "
          "SLURM_LOCALID %d%s\n",
          v[0], runtime.world_size(), v[1], v[2], v[3], v[4], ok ? "" : "  <-- MISMATCH");
    }
  }
  MPI_Bcast(&bad, 1, MPI_INT, 0, MPI_COMM_WORLD);
  return bad == 0 ? 0 : 1;
}
