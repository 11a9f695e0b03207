#pragma once
/// \file
/// A block (box) of a strided array walked in memory order, and the kernels
/// that copy it to and from a flat buffer. One generic mechanism serves every
/// rank and layout: the block's dimensions are put in the array's stride order
/// and merged where they are adjacent in memory, so a kernel walks the fewest
/// dimensions and reads or writes memory sequentially.

#include <khalo/detail/strides.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

namespace khalo::detail {

/// A block [lo, lo+extent) of an array; host-side description.
struct Block {
  Extents lo;
  Extents extent;
  std::int64_t count() const { return element_count(extent); }
};

/// Device-copyable walk over a block in memory order. Its fastest (merged)
/// dimension is a run: kernels decode the position of a run once and copy its
/// elements with a plain loop, since a per-element index decode (64-bit
/// division per dimension) made the copies ~30x slower than memcpy.
struct BlockWalk {
  int ndims = 0;
  Kokkos::Array<std::int64_t, 8> extent{};  // slowest first, merged dims
  Kokkos::Array<std::int64_t, 8> stride{};
  std::int64_t base = 0;   // offset of the block's first element
  std::int64_t count = 0;  // elements in the block

  KOKKOS_INLINE_FUNCTION std::int64_t run_length() const { return ndims > 0 ? extent[ndims - 1] : 1; }
  KOKKOS_INLINE_FUNCTION std::int64_t run_stride() const { return ndims > 0 ? stride[ndims - 1] : 1; }
  /// Offset (in elements, from the array's data pointer) of the first element of the r-th run.
  KOKKOS_INLINE_FUNCTION std::int64_t run_offset(std::int64_t r) const {
    std::int64_t off = base;
    for (int k = ndims - 2; k > 0; --k) {
      off += (r % extent[k]) * stride[k];
      r /= extent[k];
    }
    return ndims > 1 ? off + r * stride[0] : off;
  }
  /// Elements from the first to the last one the walk visits, both included (0 when empty).
  std::int64_t span() const {
    if (count == 0) return 0;
    std::int64_t s = 1;
    for (int k = 0; k < ndims; ++k) s += (extent[k] - 1) * stride[k];
    return s;
  }
  /// True when the block is one gap-free range of memory.
  bool contiguous() const { return count == 0 || (ndims <= 1 && (ndims == 0 || stride[0] == 1)); }
};

/// Builds the walk over \p block of an array with \p strides stored in \p order.
/// With \p merge false, every dimension of extent > 1 is kept, so two walks
/// over blocks of the same extents (and order) visit elements in step.
inline BlockWalk make_walk(const Extents& strides, const std::vector<int>& order, const Block& block,
                           bool merge = true) {
  BlockWalk w;
  w.count = block.count();
  for (std::size_t d = 0; d < strides.size(); ++d) w.base += block.lo[d] * strides[d];
  if (w.count == 0) return w;
  // Fastest first, skipping unit extents, merging a dim into the faster one it encloses exactly.
  std::vector<std::int64_t> ext;
  std::vector<std::int64_t> str;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    const auto d = static_cast<std::size_t>(*it);
    if (block.extent[d] == 1) continue;
    if (merge && !ext.empty() && str.back() * ext.back() == strides[d]) {
      ext.back() *= block.extent[d];
    } else {
      ext.push_back(block.extent[d]);
      str.push_back(strides[d]);
    }
  }
  if (ext.empty()) {  // a single element
    ext.push_back(1);
    str.push_back(1);
  }
  w.ndims = static_cast<int>(ext.size());
  for (int k = 0; k < w.ndims; ++k) {  // back to slowest first
    w.extent[k] = ext[ext.size() - 1 - static_cast<std::size_t>(k)];
    w.stride[k] = str[str.size() - 1 - static_cast<std::size_t>(k)];
  }
  return w;
}

/// How the elements of a walk are spread over work items.
enum class PieceSchedule {
  /// The default for the execution space and the walk, as below.
  automatic,
  /// One work item per run, or per piece of a long run (host: each item copies a
  /// contiguous range with a plain loop).
  runs,
  /// One team per piece of a run: the run's position is decoded once per team and
  /// the team's threads take neighbouring elements, so a warp's accesses coalesce
  /// (device spaces, runs of kMinTeamRun elements or more).
  team,
  /// One element per work item, each decoding its run's position (device spaces,
  /// runs too short to give a team work).
  elements,
};

/// Runs shorter than this go element-wise on a device: a team would idle.
inline constexpr std::int64_t kMinTeamRun = 32;
/// Elements one team copies on a device, and one host work item at most (so that
/// one long run still spreads over threads).
inline constexpr std::int64_t kDevicePiece = 2048;
inline constexpr std::int64_t kHostPiece = 16384;

template <class Exec>
PieceSchedule resolve(PieceSchedule schedule, const BlockWalk& w) {
  if (schedule != PieceSchedule::automatic) return schedule;
  constexpr bool host = Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible;
  if (host) return PieceSchedule::runs;
  return w.run_length() >= kMinTeamRun ? PieceSchedule::team : PieceSchedule::elements;
}

// The kernels here are named functors, not KOKKOS_LAMBDAs. nvcc wraps a __host__ __device__
// lambda in a type whose copy goes through a function pointer private to the translation unit
// that made the lambda; a template that several translation units instantiate is kept once by
// the linker, and that copy may then call another unit's pointer, still null. On CUDA this was a
// SIGSEGV at address 0 in the decoder's first halo fill (a known nvcc defect; functors avoid it).
// Rule: a kernel in a header template that more than one translation unit instantiates is a
// functor. perf/cuda_lambda_check.py (run by perf/cuda_resources.sh) finds the lambdas that break it.

/// One work item per run, or per piece of a long run (PieceSchedule::runs).
template <class Body>
struct RunPieces {
  BlockWalk w, second;
  Body body;
  std::int64_t run, piece, per_run;
  bool one_walk;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const std::int64_t r = i / per_run;
    const std::int64_t j = (i - r * per_run) * piece;
    const std::int64_t a = w.run_offset(r);
    body(r, a, one_walk ? a : second.run_offset(r), j, run - j < piece ? run - j : piece);
  }
};

/// One team per piece of a run (PieceSchedule::team).
template <class Body, class Member>
struct TeamPieces {
  BlockWalk w, second;
  Body body;
  std::int64_t run, piece, per_run;
  bool one_walk;
  KOKKOS_INLINE_FUNCTION void operator()(const Member& team) const {
    const std::int64_t i = team.league_rank();
    const std::int64_t r = i / per_run;
    const std::int64_t j = (i - r * per_run) * piece;
    const std::int64_t n = run - j < piece ? run - j : piece;
    // One thread decodes the run's position; the team shares it.
    std::int64_t a = 0;
    std::int64_t b = 0;
    Kokkos::single(
        Kokkos::PerTeam(team), [&](std::int64_t& v) { v = w.run_offset(r); }, a);
    if (one_walk) {
      b = a;
    } else {
      Kokkos::single(
          Kokkos::PerTeam(team), [&](std::int64_t& v) { v = second.run_offset(r); }, b);
    }
    Kokkos::parallel_for(Kokkos::TeamThreadRange(team, n), [&](const std::int64_t k) { body(r, a, b, j + k, 1); });
  }
};

/// One element per work item (PieceSchedule::elements).
template <class Body>
struct ElementPieces {
  BlockWalk w, second;
  Body body;
  std::int64_t run;
  bool one_walk;
  KOKKOS_INLINE_FUNCTION void operator()(const std::int64_t i) const {
    const std::int64_t r = i / run;
    const std::int64_t a = w.run_offset(r);
    body(r, a, one_walk ? a : second.run_offset(r), i - r * run, 1);
  }
};

/// Calls body(r, a, b, j, n) (a functor, see above) for the pieces of \p w: n elements of run r
/// from its j-th on, where a = w.run_offset(r) and b = second.run_offset(r) (\p second walks
/// another block visited in step with \p w, or is \p w itself). Every element is
/// visited once; the schedule only decides which work item does it.
template <class Exec, class Body>
void for_each_piece(const char* label, const Exec& exec, const BlockWalk& w, const BlockWalk& second,
                    PieceSchedule schedule, const Body& body) {
  if (w.count == 0) return;
  const std::int64_t run = w.run_length();
  const std::int64_t runs = w.count / run;
  const bool one_walk = &second == &w;  // then b = a, decoded once
  switch (resolve<Exec>(schedule, w)) {
    case PieceSchedule::automatic:
    case PieceSchedule::runs: {
      const std::int64_t piece = run < kHostPiece ? run : kHostPiece;
      const std::int64_t per_run = (run + piece - 1) / piece;
      Kokkos::parallel_for(label, Kokkos::RangePolicy<Exec>(exec, 0, runs * per_run),
                           RunPieces<Body>{w, second, body, run, piece, per_run, one_walk});
      break;
    }
    case PieceSchedule::team: {
      using Policy = Kokkos::TeamPolicy<Exec>;
      const std::int64_t piece = run < kDevicePiece ? run : kDevicePiece;
      const std::int64_t per_run = (run + piece - 1) / piece;
      Kokkos::parallel_for(
          label, Policy(exec, runs * per_run, Kokkos::AUTO),
          TeamPieces<Body, typename Policy::member_type>{w, second, body, run, piece, per_run, one_walk});
      break;
    }
    case PieceSchedule::elements:
      Kokkos::parallel_for(label, Kokkos::RangePolicy<Exec>(exec, 0, w.count),
                           ElementPieces<Body>{w, second, body, run, one_walk});
      break;
  }
}

/// dst[k * ds] = src[k * ss] for k < n; the unit-stride case is a separate loop so that it vectorizes.
template <class T>
KOKKOS_INLINE_FUNCTION void copy_run(T* dst, std::int64_t ds, const T* src, std::int64_t ss, std::int64_t n) {
  if (ds == 1 && ss == 1) {
    for (std::int64_t k = 0; k < n; ++k) dst[k] = src[k];
  } else {
    for (std::int64_t k = 0; k < n; ++k) dst[k * ds] = src[k * ss];
  }
}

/// dst[k] = src[k] for k < n, between two places of one array. Contract: they do not overlap.
/// A memcpy on the host (in a device kernel, a plain loop): on runs of a cold array the C
/// library's copy keeps more cache misses in flight than the compiled loop. Packs and unpacks
/// keep copy_run's loop: their other side is a buffer that another process wrote or reads, and
/// there memcpy was the slower (perf/RESULTS.md, "Copies in memory").
template <class T>
KOKKOS_INLINE_FUNCTION void copy_within(T* dst, const T* src, std::int64_t n) {
#if defined(__CUDA_ARCH__) || defined(__HIP_DEVICE_COMPILE__) || defined(__SYCL_DEVICE_ONLY__)
  for (std::int64_t k = 0; k < n; ++k) dst[k] = src[k];
#else
  if constexpr (std::is_trivially_copyable_v<T>) {
    std::memcpy(static_cast<void*>(dst), static_cast<const void*>(src), static_cast<std::size_t>(n) * sizeof(T));
  } else {
    for (std::int64_t k = 0; k < n; ++k) dst[k] = src[k];
  }
#endif
}

/// buf[r * run + j ...] = data[a + j * s ...]: one piece of a pack.
template <class T>
struct PackPiece {
  const T* data;
  T* buf;
  std::int64_t run, s;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t r, std::int64_t a, std::int64_t, std::int64_t j,
                                         std::int64_t n) const {
    copy_run(buf + r * run + j, 1, data + a + j * s, s, n);
  }
};

/// data[a + j * s ...] = buf[r * run + j ...]: one piece of an unpack.
template <class T>
struct UnpackPiece {
  T* data;
  const T* buf;
  std::int64_t run, s;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t r, std::int64_t a, std::int64_t, std::int64_t j,
                                         std::int64_t n) const {
    copy_run(data + a + j * s, s, buf + r * run + j, 1, n);
  }
};

/// dst[b + j * ds ...] = src[a + j * ss ...]: one piece of a copy between two blocks.
template <class T>
struct CopyPiece {
  const T* src;
  T* dst;
  std::int64_t ss, ds;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t, std::int64_t a, std::int64_t b, std::int64_t j,
                                         std::int64_t n) const {
    copy_run(dst + b + j * ds, ds, src + a + j * ss, ss, n);
  }
};

/// data[a + j * s ...] = T{}: one piece of a zero fill.
template <class T>
struct ZeroPiece {
  T* data;
  std::int64_t s;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t, std::int64_t a, std::int64_t, std::int64_t j,
                                         std::int64_t n) const {
    T* d = data + a + j * s;
    if (s == 1) {
      for (std::int64_t k = 0; k < n; ++k) d[k] = T{};
    } else {
      for (std::int64_t k = 0; k < n; ++k) d[k * s] = T{};
    }
  }
};

/// Copies inside one array whose source blocks share one walk's shape (extents and strides):
/// copy c moves the block at `walk.base + from[c]` onto the block `shift[c]` elements further
/// on. One kernel does them all, each element's copies together: the periodic wrap of a
/// dimension whose runs are 1 element long (a LayoutRight grid's fastest dimension) reads and
/// writes both ends of every line, and together they touch each cache line once, not twice.
/// Contract: no copy's destination overlaps any copy's source.
inline constexpr int kMaxShifts = 4;
struct ShiftCopies {
  BlockWalk walk;
  Kokkos::Array<std::int64_t, kMaxShifts> from{};
  Kokkos::Array<std::int64_t, kMaxShifts> shift{};
  int count = 0;
};

/// Adds the copy of block \p w onto the block \p shift elements further on to \p copies: to
/// the last entry when it has room and the same shape, else as a new entry.
inline void add_shift_copy(std::vector<ShiftCopies>& copies, const BlockWalk& w, std::int64_t shift) {
  auto same_shape = [&](const BlockWalk& v) {
    if (v.ndims != w.ndims || v.count != w.count) return false;
    for (int k = 0; k < w.ndims; ++k) {
      if (v.extent[k] != w.extent[k] || v.stride[k] != w.stride[k]) return false;
    }
    return true;
  };
  if (copies.empty() || copies.back().count == kMaxShifts || !same_shape(copies.back().walk)) {
    copies.emplace_back();
    copies.back().walk = w;
  }
  ShiftCopies& c = copies.back();
  c.from[c.count] = w.base - c.walk.base;
  c.shift[c.count] = shift;
  ++c.count;
}

/// One piece of a ShiftCopies: unit-stride runs copy after one another (whole cache lines,
/// copy_within); strided ones element by element, all copies of an element together. The number
/// of copies is a template argument there, so that each element's copies unroll: a loop over
/// a run-time count per element made the fill slower than a plain loop (perf/RESULTS.md,
/// "Copies in memory").
template <class T>
struct ShiftPiece {
  T* data;
  std::int64_t s;
  Kokkos::Array<std::int64_t, kMaxShifts> from, shift;
  int count;
  KOKKOS_INLINE_FUNCTION void operator()(std::int64_t, std::int64_t a, std::int64_t, std::int64_t j,
                                         std::int64_t n) const {
    T* d = data + a + j * s;
    if (s == 1) {
      for (int c = 0; c < count; ++c) copy_within(d + from[c] + shift[c], static_cast<const T*>(d + from[c]), n);
      return;
    }
    static_assert(kMaxShifts == 4, "one case per count below");
    switch (count) {
      case 1: return strided<1>(d, n);
      case 2: return strided<2>(d, n);
      case 3: return strided<3>(d, n);
      default: return strided<4>(d, n);
    }
  }
  template <int N>
  KOKKOS_INLINE_FUNCTION void strided(T* d, std::int64_t n) const {
    for (std::int64_t k = 0; k < n; ++k) {
      for (int c = 0; c < N; ++c) d[from[c] + k * s + shift[c]] = d[from[c] + k * s];
    }
  }
};

/// Copies a block of \p data into the flat buffer \p buf, in memory order.
template <class Exec, class T>
void pack_block(const Exec& exec, const T* data, const BlockWalk& w, T* buf,
                PieceSchedule schedule = PieceSchedule::automatic) {
  for_each_piece("khalo::pack", exec, w, w, schedule, PackPiece<T>{data, buf, w.run_length(), w.run_stride()});
}

/// Copies the flat buffer \p buf into a block of \p data, in memory order.
template <class Exec, class T>
void unpack_block(const Exec& exec, T* data, const BlockWalk& w, const T* buf,
                  PieceSchedule schedule = PieceSchedule::automatic) {
  for_each_piece("khalo::unpack", exec, w, w, schedule, UnpackPiece<T>{data, buf, w.run_length(), w.run_stride()});
}

/// Copies a block of \p src onto a block of \p dst of the same extents;
/// both walks are unmerged and in the same order, so their runs match.
template <class Exec, class T>
void copy_block(const Exec& exec, const T* src, const BlockWalk& ws, T* dst, const BlockWalk& wd,
                PieceSchedule schedule = PieceSchedule::automatic) {
  for_each_piece("khalo::copy_block", exec, ws, wd, schedule, CopyPiece<T>{src, dst, ws.run_stride(), wd.run_stride()});
}

/// Sets every element of a block to T{} (zero for arithmetic types).
template <class Exec, class T>
void zero_block(const Exec& exec, T* data, const BlockWalk& w, PieceSchedule schedule = PieceSchedule::automatic) {
  for_each_piece("khalo::zero", exec, w, w, schedule, ZeroPiece<T>{data, w.run_stride()});
}

/// Makes the copies of \p c (see ShiftCopies) in one kernel.
template <class Exec, class T>
void shift_copy_blocks(const Exec& exec, T* data, const ShiftCopies& c,
                       PieceSchedule schedule = PieceSchedule::automatic) {
  for_each_piece("khalo::copy", exec, c.walk, c.walk, schedule,
                 ShiftPiece<T>{data, c.walk.run_stride(), c.from, c.shift, c.count});
}

}  // namespace khalo::detail
