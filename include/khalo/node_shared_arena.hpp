#pragma once
/// \file
/// khalo::NodeSharedArena: host memory for fields that the other ranks of this node may read
/// directly. A Halo exchange between two ranks of one node then needs one copy per face: the
/// receiver copies the sender's owned layers straight out of the sender's View into its own
/// ghost layers (docs/halo.md §7, "Node-shared fields"). Fields allocated anywhere else keep
/// the two copies of a pack and an unpack.

#include <khalo/detail/shared_fields.hpp>
#include <khalo/layout.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo {

/// One block of node-shared host memory (an anonymous memfd, Linux) that hands out dense Views.
///
/// Contract:
/// - The Views it hands out do not own their memory: they stay valid while the arena lives,
///   and must not be used after it is destroyed (nor while an exchange of them is in flight).
/// - Neighbours that read its Views map its memory; each one unmaps it once 8 of its exchanges
///   have not read it (or when its Halo goes), so a destroyed arena's memory is freed then.
/// - Memory is handed out in order and never reused; each View starts on a 64-byte boundary
///   and is zeroed (the segment is fresh memory).
/// - Host memory (Kokkos::HostSpace) only. Other processes of this node can read it where the
///   kernel lets them open /proc/PID/fd of this process (the same user and PID namespace);
///   where it does not, Halo finds that out when it plans and packs as before.
/// - Not movable: the halo engine finds Views by the arena's address range.
class NodeSharedArena {
 public:
  /// Reserves \p bytes of node-shared memory now; throws std::runtime_error where the node
  /// cannot give it (no memfd, or no room: reserved up front, so it fails here, never later).
  explicit NodeSharedArena(std::size_t bytes) {
    std::string why;
    segment_ = detail::OwnedSharedFields::create(bytes, why);
    if (segment_ == nullptr) {
      throw std::runtime_error("khalo::NodeSharedArena: could not reserve " + std::to_string(bytes) +
                               " B of node-shared memory: " + why);
    }
    detail::SharedFieldRegistry::instance().add(*segment_);
  }
  ~NodeSharedArena() { detail::SharedFieldRegistry::instance().remove(*segment_); }
  NodeSharedArena(const NodeSharedArena&) = delete;
  NodeSharedArena& operator=(const NodeSharedArena&) = delete;
  NodeSharedArena(NodeSharedArena&&) = delete;
  NodeSharedArena& operator=(NodeSharedArena&&) = delete;

  /// A dense View of \p DataType (e.g. `float*****`) with \p extents stored in \p order
  /// (slowest first), like khalo::allocate; throws std::length_error when the arena has no
  /// room left for it, std::invalid_argument for extents or an order that do not fit the rank.
  template <class DataType>
  Kokkos::View<DataType, Kokkos::LayoutStride, Kokkos::HostSpace> view(const std::vector<std::int64_t>& extents,
                                                                       const StrideOrder& order) {
    using V = Kokkos::View<DataType, Kokkos::LayoutStride, Kokkos::HostSpace>;
    using T = typename V::value_type;
    if (extents.size() != static_cast<std::size_t>(V::rank)) {
      throw std::invalid_argument("khalo::NodeSharedArena::view: " + std::to_string(extents.size()) +
                                  " extents for a rank-" + std::to_string(static_cast<int>(V::rank)) + " View");
    }
    const std::size_t bytes = dense_bytes(extents, sizeof(T));  // refuses a count that wraps, first
    const Kokkos::LayoutStride layout = dense_layout(extents, order);
    return V(reinterpret_cast<T*>(allocate(bytes)), layout);
  }

  /// The same in a named rank-4 or rank-5 memory format.
  template <class DataType>
  Kokkos::View<DataType, Kokkos::LayoutStride, Kokkos::HostSpace> view(const std::vector<std::int64_t>& extents,
                                                                       MemoryFormat format) {
    return view<DataType>(extents, format_order(format, static_cast<int>(extents.size())));
  }

  /// \p bytes of the arena's memory, zeroed and on a 64-byte boundary, for callers that lay out
  /// their own arrays over it (the Python module); throws std::length_error when no room is left.
  unsigned char* allocate(std::size_t bytes) {
    const std::size_t at = (used_ + 63) / 64 * 64;
    if (at > capacity() || bytes > capacity() - at) {
      throw std::length_error("khalo::NodeSharedArena: " + std::to_string(bytes) + " B asked, " +
                              std::to_string(at > capacity() ? 0 : capacity() - at) + " B left of " +
                              std::to_string(capacity()));
    }
    used_ = at + bytes;
    return segment_->data() + at;
  }

  /// Bytes of a dense array of \p extents with elements of \p item bytes; std::length_error where
  /// that count does not fit in std::size_t (it would wrap to a small request), and
  /// std::invalid_argument for a negative extent.
  static std::size_t dense_bytes(const std::vector<std::int64_t>& extents, std::size_t item) {
    std::size_t bytes = item;
    for (std::size_t d = 0; d < extents.size(); ++d) {
      if (extents[d] < 0) {
        throw std::invalid_argument("khalo::NodeSharedArena: negative extent in dimension " + std::to_string(d));
      }
      if (__builtin_mul_overflow(bytes, static_cast<std::size_t>(extents[d]), &bytes)) {
        throw std::length_error("khalo::NodeSharedArena: the array is larger than any arena");
      }
    }
    return bytes;
  }

  /// Bytes the arena can hand out in all.
  std::size_t capacity() const noexcept { return segment_->data_bytes(); }
  /// Bytes handed out so far, alignment included.
  std::size_t used() const noexcept { return used_; }

 private:
  std::unique_ptr<detail::OwnedSharedFields> segment_;
  std::size_t used_ = 0;
};

}  // namespace khalo
