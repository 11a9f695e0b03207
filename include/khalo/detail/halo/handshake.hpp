#pragma once
/// \file
/// The handshakes of a new plan: neighbours agree which messages go in place, and the one
/// round of offers and answers that the node-local transports (node_shared.hpp,
/// direct_read.hpp) agree with. Not public.

#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/mpi_error.hpp>

#include <mpi.h>

#include <cstddef>
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

/// The messages of \p phases whose peer \p on_node marks (per rank): what a handshake between the
/// ranks of one node goes over, sends and receives apart, in the phases' order.
struct NodeMessages {
  std::vector<Message*> sends;
  std::vector<Message*> recvs;
};
inline NodeMessages messages_on_node(std::vector<Phase>& phases, const std::vector<bool>& on_node) {
  auto local = [&](const Message& m) { return on_node[static_cast<std::size_t>(m.peer)]; };
  NodeMessages n;
  for (auto& ph : phases) {
    for (auto& m : ph.sends) {
      if (local(m)) n.sends.push_back(&m);
    }
    for (auto& m : ph.recvs) {
      if (local(m)) n.recvs.push_back(&m);
    }
  }
  return n;
}

/// Collective with the neighbours on this node (\p on_node): one round of offers and answers
/// over every message between two ranks of the node. The sender of each message offers
/// \p offer_of(m), int64s with tag `tag_base + 2 m.tag`; the receiver takes it in
/// \p accept(m, offer) and answers whether it accepted (`tag_base + 2 m.tag + 1`). Then
/// \p agreed(m, yes) runs for every such send and receive, with the same yes on both sides.
template <class OfferOf, class Accept, class Agreed>
void offer_on_node(MPI_Comm comm, int tag_base, std::vector<Phase>& phases, const std::vector<bool>& on_node,
                   const OfferOf& offer_of, const Accept& accept, const Agreed& agreed) {
  auto [sends, recvs] = messages_on_node(phases, on_node);
  std::vector<std::vector<std::int64_t>> offers(sends.size());
  std::vector<MPI_Request> requests;
  requests.reserve(sends.size() + recvs.size());
  for (std::size_t i = 0; i < sends.size(); ++i) {
    const Message& m = *sends[i];
    offers[i] = offer_of(m);
    requests.emplace_back();
    KHALO_MPI_CHECK(MPI_Isend(offers[i].data(), static_cast<int>(offers[i].size()), MPI_INT64_T, m.peer,
                              tag_base + 2 * m.tag, comm, &requests.back()));
  }
  std::vector<std::int64_t> answers(recvs.size(), 0);
  for (std::size_t i = 0; i < recvs.size(); ++i) {
    Message& m = *recvs[i];
    const int tag = tag_base + 2 * m.tag;
    MPI_Status status;
    KHALO_MPI_CHECK(MPI_Probe(m.peer, tag, comm, &status));
    int count = 0;
    KHALO_MPI_CHECK(MPI_Get_count(&status, MPI_INT64_T, &count));
    std::vector<std::int64_t> offer(static_cast<std::size_t>(count));
    KHALO_MPI_CHECK(MPI_Recv(offer.data(), count, MPI_INT64_T, m.peer, tag, comm, MPI_STATUS_IGNORE));
    answers[i] = accept(m, offer) ? 1 : 0;
    requests.emplace_back();
    KHALO_MPI_CHECK(MPI_Isend(&answers[i], 1, MPI_INT64_T, m.peer, tag + 1, comm, &requests.back()));
  }
  for (Message* m : sends) {
    std::int64_t answer = 0;
    KHALO_MPI_CHECK(MPI_Recv(&answer, 1, MPI_INT64_T, m->peer, tag_base + 2 * m->tag + 1, comm, MPI_STATUS_IGNORE));
    agreed(*m, answer == 1);
  }
  for (std::size_t i = 0; i < recvs.size(); ++i) agreed(*recvs[i], answers[i] == 1);
  if (!requests.empty()) {
    KHALO_MPI_CHECK(MPI_Waitall(static_cast<int>(requests.size()), requests.data(), MPI_STATUSES_IGNORE));
  }
}

}  // namespace khalo::detail
