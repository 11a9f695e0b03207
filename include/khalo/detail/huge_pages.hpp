#pragma once
/// \file
/// Transparent huge pages for large host allocations.

#include <cstddef>
#include <cstdint>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace khalo::detail {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

/// Asks Linux to back the 2 MiB-aligned part of [p, p + bytes) with huge pages, for
/// allocations of at least two huge pages (below that, at most one would be covered); it
/// only takes effect on pages not yet touched. Why: a convolution over a contiguous (NCDHW)
/// tensor steps a whole plane per input channel, so one output tile touches hundreds of
/// 4 KiB pages, and in a virtual machine each TLB miss walks two page tables (C = 384,
/// 64x64: 13% of the kernel's time). Advice only: where THP is off, nothing changes.
inline void advise_huge_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  if (bytes < 2 * kHugePageBytes) return;
  const std::uintptr_t first = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t begin = (first + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  const std::uintptr_t end = (first + bytes) / kHugePageBytes * kHugePageBytes;
  if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#else
  (void)p;
  (void)bytes;
#endif
}

}  // namespace khalo::detail
