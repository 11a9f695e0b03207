// The PMPI interposition behind mpi_timer.hpp: each call goes to the library's
// PMPI_ entry point, timed only while mpi_timer::on is set.
#include "mpi_timer.hpp"

#include <mpi.h>

namespace mpi_timer {
bool on = false;
double wait_s = 0, post_s = 0;
}  // namespace mpi_timer

namespace {

// call(), its seconds added to `sum` while the timer is on.
template <class Call>
int timed(double& sum, const Call& call) {
  if (!mpi_timer::on) return call();
  const double t0 = PMPI_Wtime();
  const int rc = call();
  sum += PMPI_Wtime() - t0;
  return rc;
}

}  // namespace

extern "C" int MPI_Waitall(int count, MPI_Request requests[], MPI_Status statuses[]) {
  return timed(mpi_timer::wait_s, [&] { return PMPI_Waitall(count, requests, statuses); });
}

extern "C" int MPI_Isend(const void* buf, int count, MPI_Datatype type, int dest, int tag, MPI_Comm comm,
                         MPI_Request* request) {
  return timed(mpi_timer::post_s, [&] { return PMPI_Isend(buf, count, type, dest, tag, comm, request); });
}

extern "C" int MPI_Irecv(void* buf, int count, MPI_Datatype type, int source, int tag, MPI_Comm comm,
                         MPI_Request* request) {
  return timed(mpi_timer::post_s, [&] { return PMPI_Irecv(buf, count, type, source, tag, comm, request); });
}
