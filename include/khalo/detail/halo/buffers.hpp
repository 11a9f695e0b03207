#pragma once
/// \file
/// The send and receive buffers of a plan, which persist across exchanges: where each packed
/// message sits in them, and their allocation (node-shared memory where a neighbour on this
/// node reads the faces, host staging where MPI may not touch the memory space). Not public.

#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/halo/node_shared.hpp>
#include <khalo/detail/halo/phases.hpp>
#include <khalo/detail/staging.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace khalo::detail {

template <class MemSpace>
struct Buffers {
  using Device = Kokkos::View<unsigned char*, MemSpace>;
  using Host = Kokkos::View<unsigned char*, StagingSpace>;
  Device send;
  Device recv;
  Host send_host;  // staging when MPI may not touch MemSpace
  Host recv_host;
  std::shared_ptr<SharedSegment> send_segment;         // behind `send` when it is node-shared
  std::vector<std::shared_ptr<SharedSegment>> mapped;  // node neighbours' send buffers
};

/// Lays out a phase's packed messages (those \p skip does not exclude) in one buffer, each at
/// a 64-byte boundary; returns its size. Phases share the buffer: a phase ends only when its
/// buffers are free.
template <class Skip>
std::size_t lay_out(std::vector<Message>& messages, const Skip& skip) {
  std::size_t n = 0;
  for (auto& m : messages) {
    if (m.packed() && !skip(m)) m.buffer_offset = std::exchange(n, align_up(n + m.bytes, 64));
  }
  return n;
}

/// Allocates \p bytes (nothing when 0) as \p device, and as \p host too when \p stage; returns
/// the number of allocations (HaloStats::allocations).
template <class MemSpace>
int allocate_buffer(std::size_t bytes, const char* label, bool stage, typename Buffers<MemSpace>::Device& device,
                    typename Buffers<MemSpace>::Host& host) {
  using B = Buffers<MemSpace>;
  if (bytes == 0) return 0;
  device = typename B::Device(Kokkos::view_alloc(std::string(label), Kokkos::WithoutInitializing), bytes);
  if (!stage) return 1;
  host = typename B::Host(Kokkos::view_alloc(std::string(label) + "_host", Kokkos::WithoutInitializing), bytes);
  return 2;
}

/// The send buffer, big enough for the largest phase's packed messages: in node-shared memory
/// when one of them may go to a rank that \p shares marks (else, or when the node cannot give
/// it, an ordinary buffer). A rank whose messages all go in place, by datatype or by direct
/// read (or that has no neighbour) allocates nothing. Returns the number of allocations.
template <class MemSpace>
int allocate_send_buffer(std::vector<Phase>& phases, Buffers<MemSpace>& b, bool stage,
                         const std::vector<bool>& shares) {
  std::size_t send = 0;
  bool to_node = false;
  for (auto& ph : phases) {
    send = std::max(send, lay_out(ph.sends, [](const Message&) { return false; }));
    for (const auto& m : ph.sends) {
      to_node = to_node || (m.packed() && !shares.empty() && shares[static_cast<std::size_t>(m.peer)]);
    }
  }
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, MemSpace>::accessible) {
    if (to_node && send > 0) b.send_segment = SharedSegment::create(send);
    if (b.send_segment != nullptr) {
      b.send = typename Buffers<MemSpace>::Device(b.send_segment->data(), send);
      return 1;
    }
  }
  return allocate_buffer<MemSpace>(send, "khalo::send", stage, b.send, b.send_host);
}

/// The receive buffer, for the packed messages that do not come from a neighbour's node-shared
/// buffer. Returns the number of allocations.
template <class MemSpace>
int allocate_recv_buffer(std::vector<Phase>& phases, Buffers<MemSpace>& b, bool stage) {
  std::size_t recv = 0;
  for (auto& ph : phases) recv = std::max(recv, lay_out(ph.recvs, [](const Message& m) { return m.shared; }));
  return allocate_buffer<MemSpace>(recv, "khalo::recv", stage, b.recv, b.recv_host);
}

}  // namespace khalo::detail
