#pragma once
// The halo-exchange schemes bench_halo times, khalo beside those it replaces:
//   khalo         Halo::exchange (blocking)
//   khalo_split   Halo::start then HaloExchange::wait, nothing in between
//   naive         what the seed did: both boundary rows copied into contiguous (NCDHW)
//                 buffers on every rank, boundary ranks too; receive buffers in that
//                 default layout whatever the tensor's (zeroed on an open side every
//                 time); then a concatenation [low, band, high] into another tensor,
//                 which takes the default layout when the formats differ (PyTorch's cat)
//   seed_fixed    the fixed seed: buffers in the tensor's own layout, no copy toward a
//                 side without a neighbour, still a concatenation into another tensor
//   mpi_datatype  MPI_Type_create_subarray straight from and into the View, no pack
//   raw_mpi       pre-packed contiguous buffers holding exactly the halo's bytes, all
//                 messages in flight at once (MPI_Irecv/MPI_Isend/MPI_Waitall; two
//                 MPI_Sendrecv with --raw-sendrecv): the limit (no pack, no unpack, no
//                 boundary fill)
// Each family has its header; every scheme exchanges the same faces (geometry.hpp).

#include "concat.hpp"        // naive, seed_fixed
#include "datatypes.hpp"     // mpi_datatype
#include "khalo_scheme.hpp"  // khalo, khalo_split
#include "raw_mpi.hpp"       // raw_mpi

#include <string>
#include <vector>

namespace halo_bench {

// The schemes in the order of the table and the JSON records.
inline const std::vector<std::string> kSchemes = {"khalo",      "khalo_split",  "naive",
                                                  "seed_fixed", "mpi_datatype", "raw_mpi"};

}  // namespace halo_bench
