#pragma once
/// \file
/// The pack of a face that another process reads next (a node-shared send buffer, or a send
/// buffer that MPI's on-node single copy reads: halo/single_copy.hpp), written with
/// non-temporal stores on x86-64 hosts. Not public.
///
/// Why: the neighbour's read leaves the buffer's lines in its core's cache, so an ordinary
/// store of the next pack must first fetch each line back and invalidate the neighbour's copy.
/// Between cores of different core complexes or sockets that costs a fabric round trip per line;
/// a non-temporal store writes whole lines without fetching them. Where the two cores share a
/// cache the ordinary store is faster: halo/store_choice.hpp measures which. Other hosts and
/// strided runs use ordinary stores.

#include <khalo/detail/block.hpp>

#include <Kokkos_Core.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace khalo::detail {

/// Copies \p bytes from \p src to \p dst, the 16-byte-aligned part of dst with non-temporal
/// stores. Those are weakly ordered: call stream_fence() before another thread or process may
/// read dst.
inline void stream_copy(void* dst, const void* src, std::size_t bytes) {
#if defined(__SSE2__)
  auto* d = static_cast<unsigned char*>(dst);
  const auto* s = static_cast<const unsigned char*>(src);
  std::size_t head = (16 - (reinterpret_cast<std::uintptr_t>(d) & 15)) & 15;
  if (head > bytes) head = bytes;
  std::memcpy(d, s, head);
  d += head;
  s += head;
  bytes -= head;
  for (; bytes >= 16; bytes -= 16, d += 16, s += 16) {
    _mm_stream_si128(reinterpret_cast<__m128i*>(d), _mm_loadu_si128(reinterpret_cast<const __m128i*>(s)));
  }
  std::memcpy(d, s, bytes);
#else
  std::memcpy(dst, src, bytes);
#endif
}

/// Orders the calling thread's earlier non-temporal stores before its later stores.
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

/// Buffer bytes one work item of a streaming pack writes at least: its runs are consecutive in
/// the buffer, and it fences once at its end.
inline constexpr std::int64_t kStreamItemBytes = 64 * 1024;

/// Asks for the cache lines of [p, p + bytes) to be loaded, without waiting for them.
inline void prefetch_lines(const void* p, std::size_t bytes) {
  const auto* c = static_cast<const unsigned char*>(p);
  for (std::size_t b = 0; b < bytes; b += 64) __builtin_prefetch(c + b);
  if (bytes > 0) __builtin_prefetch(c + bytes - 1);
}

/// A host work item of stream_pack_block: runs [i * per_item, (i + 1) * per_item) of the walk.
/// Unit-stride runs are first prefetched, the whole item, then streamed out: a non-temporal
/// store and a load that misses take the same miss buffers of the core, so a copy that
/// interleaves them keeps few loads in flight. From a field out of cache (as after a
/// convolution) the face is then read by loads alone, which keep many in flight, and the
/// stores that follow find it in cache (perf/RESULTS.md, "A pack from a field out of cache").
/// An item's 64 KiB stay in a core's L2; longer runs, one per item, stream as they are.
template <class T>
struct StreamPackRuns {
  const T* data;
  T* buf;
  BlockWalk w;
  std::int64_t run, s, runs, per_item;
  void operator()(const std::int64_t i) const {
    const std::int64_t end = (i + 1) * per_item < runs ? (i + 1) * per_item : runs;
    if (s == 1 && run * static_cast<std::int64_t>(sizeof(T)) <= kStreamItemBytes) {
      for (std::int64_t r = i * per_item; r < end; ++r) {
        prefetch_lines(data + w.run_offset(r), static_cast<std::size_t>(run) * sizeof(T));
      }
    }
    for (std::int64_t r = i * per_item; r < end; ++r) {
      const T* from = data + w.run_offset(r);
      if (s == 1) {
        stream_copy(buf + r * run, from, static_cast<std::size_t>(run) * sizeof(T));
      } else {
        copy_run(buf + r * run, 1, from, s, run);
      }
    }
    stream_fence();
  }
};

/// pack_block for a buffer another process reads next (same kernel name, "khalo::pack"); host
/// execution spaces only. On return (after exec.fence() where exec is asynchronous) the buffer
/// is ordered before the caller's later stores, as pack_block's is.
template <class Exec, class T>
void stream_pack_block(const Exec& exec, const T* data, const BlockWalk& w, T* buf) {
  static_assert(Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename Exec::memory_space>::accessible,
                "a streaming pack runs on the host");
  if (w.count == 0) return;
  const std::int64_t run = w.run_length();
  const std::int64_t runs = w.count / run;
  const std::int64_t run_bytes = run * static_cast<std::int64_t>(sizeof(T));
  const std::int64_t per_item = run_bytes >= kStreamItemBytes ? 1 : kStreamItemBytes / run_bytes;
  Kokkos::parallel_for("khalo::pack", Kokkos::RangePolicy<Exec>(exec, 0, (runs + per_item - 1) / per_item),
                       StreamPackRuns<T>{data, buf, w, run, w.run_stride(), runs, per_item});
}

}  // namespace khalo::detail
