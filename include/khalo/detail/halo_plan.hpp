#pragma once
/// \file
/// The plan behind khalo::Halo for one set of field shapes: the phases (halo_phases.hpp) and the
/// send and receive buffers that persist across exchanges. The rooms: fields (halo_fields.hpp),
/// messages and fills (halo_messages.hpp), boundary policies (boundary.hpp), phase geometry
/// (halo_phases.hpp), validation (halo_validate.hpp), the in-place handshake
/// (halo_handshake.hpp), and the MPI engine that runs a plan (halo_engine.hpp). Not public.

#include <khalo/detail/halo_fields.hpp>
#include <khalo/detail/halo_handshake.hpp>
#include <khalo/detail/halo_messages.hpp>
#include <khalo/detail/halo_phases.hpp>
#include <khalo/detail/halo_validate.hpp>

#include <Kokkos_Core.hpp>

#include <vector>

namespace khalo::detail {

template <class MemSpace>
struct Buffers {
  using Device = Kokkos::View<unsigned char*, MemSpace>;
  using Host = typename Device::HostMirror;
  Device send;
  Device recv;
  Host send_host;  // staging when MPI may not touch MemSpace
  Host recv_host;
};

/// A plan for one set of field shapes: built collectively, then reused.
template <class MemSpace>
struct ShapePlan {
  std::vector<Phase> phases;
  Buffers<MemSpace> buffers;
  std::vector<std::vector<void*>> zeroed;  // with HaloSpec::zero_fill_once: the Views whose open sides are zeroed
};

}  // namespace khalo::detail
