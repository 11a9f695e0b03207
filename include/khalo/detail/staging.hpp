#pragma once
/// \file
/// Where staged data lives: host memory that MPI reads and writes in place of device memory it
/// cannot touch (no GPU-aware MPI). Not public.

#include <Kokkos_Core.hpp>

namespace khalo::detail {

/// Page-locked host memory where the backend has it (CUDA, HIP, SYCL): copies between it and the
/// device are DMA transfers at the link's speed and may run on a stream, where pageable memory
/// goes through the driver's bounce buffer, one chunk at a time. Plain host memory on host
/// backends, and with a Kokkos older than 3.7 (no SharedHostPinnedSpace).
#if defined(KOKKOS_HAS_SHARED_HOST_PINNED_SPACE)
using StagingSpace = Kokkos::SharedHostPinnedSpace;
#else
using StagingSpace = Kokkos::HostSpace;
#endif

}  // namespace khalo::detail
