#pragma once
/// \file
/// The fields of a halo plan: per element type, the pack, unpack, zero and copy kernels behind
/// one virtual interface (so one message may carry fields of several types); per field, its
/// shape. Not public.

#include <khalo/detail/block.hpp>
#include <khalo/detail/stream_pack.hpp>
#include <khalo/layout.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <typeinfo>
#include <vector>

namespace khalo::detail {

/// Kernels for one element type, behind a virtual interface so that one plan
/// can carry fields of different types in the same message.
template <class Exec>
struct FieldKernels {
  virtual ~FieldKernels() = default;
  /// \p stream: another process reads buf next (a node-shared buffer; host only): stream_pack.hpp.
  virtual void pack(const Exec& exec, const void* data, const BlockWalk& w, void* buf, bool stream) const = 0;
  virtual void unpack(const Exec& exec, void* data, const BlockWalk& w, const void* buf) const = 0;
  virtual void zero(const Exec& exec, void* data, const BlockWalk& w) const = 0;
  virtual void shift_copy(const Exec& exec, void* data, const ShiftCopies& c) const = 0;
  /// Copies the block \p ws of \p src onto the block \p wd of \p dst (walks of the same extents).
  virtual void copy(const Exec& exec, const void* src, const BlockWalk& ws, void* dst, const BlockWalk& wd) const = 0;
};

template <class Exec, class T>
struct TypedKernels final : FieldKernels<Exec> {
  void pack(const Exec& exec, const void* data, const BlockWalk& w, void* buf, bool stream) const override {
    if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible) {
      if (stream) return stream_pack_block(exec, static_cast<const T*>(data), w, static_cast<T*>(buf));
    }
    pack_block(exec, static_cast<const T*>(data), w, static_cast<T*>(buf));
  }
  void unpack(const Exec& exec, void* data, const BlockWalk& w, const void* buf) const override {
    unpack_block(exec, static_cast<T*>(data), w, static_cast<const T*>(buf));
  }
  void zero(const Exec& exec, void* data, const BlockWalk& w) const override {
    zero_block(exec, static_cast<T*>(data), w);
  }
  void shift_copy(const Exec& exec, void* data, const ShiftCopies& c) const override {
    shift_copy_blocks(exec, static_cast<T*>(data), c);
  }
  void copy(const Exec& exec, const void* src, const BlockWalk& ws, void* dst, const BlockWalk& wd) const override {
    copy_block(exec, static_cast<const T*>(src), ws, static_cast<T*>(dst), wd);
  }
};

/// What the plan knows of one field: its type and, per shape, its geometry.
template <class Exec>
struct FieldType {
  std::shared_ptr<const FieldKernels<Exec>> kernels;
  std::size_t elem_size = 0;
  std::size_t align = 0;
  std::int64_t type_code = 0;
  std::string type_name;
};

/// The FieldType of element type \p T.
template <class Exec, class T>
FieldType<Exec> field_type() {
  FieldType<Exec> t;
  t.kernels = std::make_shared<TypedKernels<Exec, T>>();
  t.elem_size = sizeof(T);
  t.align = alignof(T);
  t.type_name = typeid(T).name();
  t.type_code = static_cast<std::int64_t>(std::hash<std::string>{}(t.type_name) & 0x7fffffffffffffffULL);
  return t;
}

struct FieldShape {
  Extents extents;
  Extents strides;
  std::vector<int> order;
};

template <class View>
FieldShape shape_of(const View& v) {
  return {extents_of(v), strides_of(v), stride_order(v)};
}

}  // namespace khalo::detail
