#pragma once
/// \file
/// Direct reads: a face that goes in place on both sides between two ranks of one node is
/// copied by the receiver straight out of the sender's View into its own, with one Linux
/// cross-memory-attach call (process_vm_readv) over all the face's runs. In place through MPI,
/// each run is a message of its own and pays a rendezvous; a direct read pays one, like a
/// contiguous face (perf/RESULTS.md, "Direct reads"). MPI carries two small messages per face:
/// the sender's "ready", which holds its fields' data pointers for this exchange, and the
/// receiver's empty "read" (node_shared.hpp's kReadTag), before which the sender leaves its
/// View alone, as it would while MPI read it.
///
/// The plan's handshake tries a read first: the sender offers the address of a random token of
/// its process, the receiver reads it and compares. Where that fails (ranks in separate PID
/// namespaces, a kernel without cross-memory attach, ptrace restricted by Yama or seccomp), the
/// face goes in place through MPI as before, and both sides know it. Host memory only (not
/// CUDA's managed memory), and only where node-shared buffers are allowed
/// (HaloSpec::set_shared_memory, KHALO_SHARED_MEMORY); KHALO_DIRECT_READS=0 turns direct reads
/// off alone (to compare, or where reading a neighbour's memory is not wanted). Not public.

#include <khalo/detail/env_switch.hpp>
#include <khalo/detail/halo/handshake.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/mpi_error.hpp>

#include <mpi.h>

#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <exception>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo::detail {

/// Tag of the plan's direct-read handshake (two per message), above agree_in_place's.
inline constexpr int kDirectTag = 8192;

/// The most runs a side of a direct read may have: process_vm_readv takes at most IOV_MAX
/// (1024 on Linux) pieces per side.
inline constexpr std::size_t kDirectMaxRuns = 1024;

/// Runs shorter than this make a face of several runs go another way (the node-shared buffer).
/// The kernel pins the pages of every run, about 0.2 us per run apart from the bytes: for a face
/// of 256 KiB, a read of runs of 512 B took 8-9x one of runs of 64 KiB, of 2 KiB 2.2-2.5x, of
/// 4 KiB 1.3-1.4x, of 16 KiB 1.1-1.2x (perf/direct_read_sweep; perf/RESULTS.md, "Direct reads").
inline constexpr std::int64_t kDirectMinRunBytes = 4096;

/// Whether one side of a face may be read directly in \p runs: at most kDirectMaxRuns of them,
/// and one run or runs of at least kDirectMinRunBytes each.
inline bool direct_runs_fit(const std::vector<Run>& runs) {
  if (runs.empty() || runs.size() > kDirectMaxRuns) return false;
  if (runs.size() == 1) return true;
  for (const auto& r : runs) {
    if (r.bytes < kDirectMinRunBytes) return false;
  }
  return true;
}

/// False when the environment turns direct reads off: KHALO_DIRECT_READS=0. A rank where it is
/// off still takes part in the handshake; it offers no runs and accepts none.
inline bool direct_reads_allowed() { return env_switch("KHALO_DIRECT_READS") != EnvSwitch::off; }

/// A random value of this process, at an address the neighbours read in the handshake: a
/// process that is not the one announced (another PID namespace) cannot hold it.
inline const std::uint64_t& direct_read_token() {
  static const std::uint64_t token = [] {
    try {
      std::random_device rd;
      return (static_cast<std::uint64_t>(rd()) << 32) ^ rd() ^ 0x6b68616c6fULL;
    } catch (const std::exception&) {
      return static_cast<std::uint64_t>(std::chrono::steady_clock::now().time_since_epoch().count()) ^ 0x6b68616c6fULL;
    }
  }();
  return token;
}

/// Copies \p bytes in total from \p remote (in process \p pid) into \p local; false, with errno
/// set, when the kernel refused or copied less.
inline bool read_process(std::int64_t pid, std::vector<iovec>& local, std::vector<iovec>& remote, std::size_t bytes) {
  const ssize_t n =
      process_vm_readv(static_cast<pid_t>(pid), local.data(), local.size(), remote.data(), remote.size(), 0);
  if (n < 0) return false;
  if (static_cast<std::size_t>(n) != bytes) {
    errno = EFAULT;
    return false;
  }
  return true;
}

/// Whether this process can read process \p pid's memory: \p address there holds \p token.
inline bool can_read_process(std::int64_t pid, std::int64_t address, std::uint64_t token) {
  std::uint64_t v = ~token;
  std::vector<iovec> local{{&v, sizeof v}};
  std::vector<iovec> remote{{reinterpret_cast<void*>(static_cast<std::uintptr_t>(address)), sizeof v}};
  return read_process(pid, local, remote, sizeof v) && v == token;
}

/// Collective with the neighbours on this node (\p on_node): which messages the receiver reads
/// directly (Message::direct). The sender of each message between two ranks of one node offers
/// its process, its token's address and value, and its runs (none when it does not go in place
/// or its runs do not fit: direct_runs_fit); the receiver accepts when both sides go in place
/// with the same bytes, in runs that fit, and its test read succeeds. Both then mark the message
/// direct, or neither.
inline void agree_direct_reads(MPI_Comm comm, const std::vector<bool>& on_node, std::vector<Phase>& phases) {
  const bool allowed = direct_reads_allowed();
  const std::uint64_t& token = direct_read_token();
  // An offer: pid, the token's address, its value, then (field, offset, bytes) per run.
  auto offer_of = [&](const Message& m) {
    std::vector<std::int64_t> o{static_cast<std::int64_t>(getpid()),
                                static_cast<std::int64_t>(reinterpret_cast<std::uintptr_t>(&token)),
                                static_cast<std::int64_t>(token)};
    if (allowed && direct_runs_fit(m.runs)) {
      for (const auto& r : m.runs) o.insert(o.end(), {r.field, r.offset, r.bytes});
    }
    return o;
  };
  auto accept = [&](Message& m, const std::vector<std::int64_t>& offer) {
    std::vector<Run> theirs;
    std::int64_t bytes = 0;
    for (std::size_t k = 3; k + 2 < offer.size(); k += 3) {
      theirs.push_back({static_cast<int>(offer[k]), offer[k + 1], static_cast<int>(offer[k + 2])});
      bytes += offer[k + 2];
    }
    const bool fits = allowed && offer.size() >= 3 && !theirs.empty() && m.in_place() && direct_runs_fit(m.runs) &&
                      bytes == static_cast<std::int64_t>(m.bytes);
    if (!fits || !can_read_process(offer[0], offer[1], static_cast<std::uint64_t>(offer[2]))) return false;
    m.direct_pid = offer[0];
    m.remote_runs = std::move(theirs);
    return true;
  };
  offer_on_node(comm, kDirectTag, phases, on_node, offer_of, accept, [](Message& m, bool yes) { m.direct = yes; });
}

/// Reads the direct message \p m: the sender's runs, at \p remote_bases (its fields' data
/// pointers in this exchange, from its "ready"), into this rank's runs at \p local_bases.
/// Throws when the kernel refuses (the sender's process is gone, or its View is not where it
/// said).
inline void read_direct(const Message& m, const std::vector<void*>& local_bases, const std::uint64_t* remote_bases,
                        const std::string& who) {
  std::vector<iovec> local;
  std::vector<iovec> remote;
  local.reserve(m.runs.size());
  remote.reserve(m.remote_runs.size());
  for (const auto& r : m.runs) {
    local.push_back({static_cast<unsigned char*>(local_bases[static_cast<std::size_t>(r.field)]) + r.offset,
                     static_cast<std::size_t>(r.bytes)});
  }
  for (const auto& r : m.remote_runs) {
    const std::uint64_t at = remote_bases[r.field] + static_cast<std::uint64_t>(r.offset);
    remote.push_back({reinterpret_cast<void*>(static_cast<std::uintptr_t>(at)), static_cast<std::size_t>(r.bytes)});
  }
  if (!read_process(m.direct_pid, local, remote, m.bytes)) {
    throw std::runtime_error(who + ": could not read a face of " + std::to_string(m.bytes) +
                             " B from the View of rank " + std::to_string(m.peer) + " (process " +
                             std::to_string(m.direct_pid) + ") on this node: " + std::strerror(errno));
  }
}

}  // namespace khalo::detail
