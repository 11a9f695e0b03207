#pragma once
/// \file
/// The handshake of a new plan: neighbours agree which messages go in place. Not public.

#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/mpi_error.hpp>

#include <mpi.h>

#include <cstdint>
#include <vector>

namespace khalo::detail {

/// Collective with the neighbours: which side of each message goes to MPI in place. Each side
/// sends the peer the runs it would use. A side of one run keeps it: the message is then one
/// MPI message whatever the other side does, and a packed peer writes or reads the elements in
/// the same order (every rank stores a field in the same stride order: validate()). A side of
/// several runs keeps them only where the peer cuts the message into the same runs, since each
/// run travels as a message of its own (strides may differ, e.g. padded Views); else it falls
/// back to its datatype or packs (transport.hpp). A direct message (direct_read.hpp, agreed
/// before) keeps its runs whatever the peer's: one read copies between any two cuts.
inline void agree_in_place(MPI_Comm comm, std::vector<Phase>& phases) {
  constexpr int kBaseTag = 4096;  // above the exchange's tags (2 per split dimension)
  auto signature = [](const Message& m) {
    std::vector<std::int64_t> sig{static_cast<std::int64_t>(m.runs.size())};
    for (const auto& r : m.runs) sig.push_back(r.bytes);
    return sig;
  };
  struct Side {
    Message* m;
    int send_tag;  // my signature goes out with this tag,
    int recv_tag;  // the peer's comes back with this one
    std::vector<std::int64_t> mine;
  };
  std::vector<Side> sides;
  for (auto& ph : phases) {
    for (auto& m : ph.sends) sides.push_back({&m, kBaseTag + 2 * m.tag, kBaseTag + 2 * m.tag + 1, signature(m)});
    for (auto& m : ph.recvs) sides.push_back({&m, kBaseTag + 2 * m.tag + 1, kBaseTag + 2 * m.tag, signature(m)});
  }
  std::vector<MPI_Request> requests(sides.size());
  for (std::size_t i = 0; i < sides.size(); ++i) {
    KHALO_MPI_CHECK(MPI_Isend(sides[i].mine.data(), static_cast<int>(sides[i].mine.size()), MPI_INT64_T,
                              sides[i].m->peer, sides[i].send_tag, comm, &requests[i]));
  }
  for (auto& side : sides) {
    MPI_Status status;
    KHALO_MPI_CHECK(MPI_Probe(side.m->peer, side.recv_tag, comm, &status));
    int count = 0;
    KHALO_MPI_CHECK(MPI_Get_count(&status, MPI_INT64_T, &count));
    std::vector<std::int64_t> theirs(static_cast<std::size_t>(count));
    KHALO_MPI_CHECK(MPI_Recv(theirs.data(), count, MPI_INT64_T, side.m->peer, side.recv_tag, comm, MPI_STATUS_IGNORE));
    if (side.m->runs.size() > 1 && theirs != side.mine && !side.m->direct) side.m->runs.clear();
  }
  if (!requests.empty()) {
    KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }
}

}  // namespace khalo::detail
