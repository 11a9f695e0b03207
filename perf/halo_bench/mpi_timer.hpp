#pragma once
// Seconds spent inside MPI's point-to-point calls while `on` is set. mpi_timer.cpp
// defines MPI_Waitall, MPI_Isend and MPI_Irecv with C linkage: as an object file of
// the executable they take the place of the MPI library's (the PMPI profiling
// interface), so khalo's own calls are timed without touching khalo. It must stay a
// source of the executable: in a static library the linker would leave it out.

namespace mpi_timer {

extern bool on;
extern double wait_s;  // in MPI_Waitall
extern double post_s;  // in MPI_Isend and MPI_Irecv

}  // namespace mpi_timer
