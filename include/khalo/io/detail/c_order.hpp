#pragma once
/// \file
/// Snapshot data in logical C order on the host (docs/snapshots.md): staging buffers, the tiled
/// strided copy, and the pieces a rank's block goes to the file in. Not public; used by
/// khalo/io/snapshot.hpp.

#include <khalo/io/dataset.hpp>
#include <khalo/layout.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace khalo::io {

namespace detail {

/// Advises the kernel to back the whole 2 MiB pages inside [\p p, \p p + \p bytes) with huge pages
/// (madvise(MADV_HUGEPAGE), where transparent huge pages are "madvise" only): first touching a large
/// buffer 4 KiB page by page costs more than the copy into it. Best effort. In src/io/snapshot_writer.cpp.
void advise_huge_pages(void* p, std::size_t bytes) noexcept;

/// An uninitialised host buffer of \p T for staging snapshot I/O, labelled `khalo::io::c_order` (Kokkos
/// Tools see it, and tests/fault fails it by that label), advised to use huge pages.
template <class T>
class Staging {
 public:
  Staging() = default;
  /// Allocates \p n elements, uninitialised.
  explicit Staging(std::size_t n) : view_(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing), n) {
    advise_huge_pages(view_.data(), n * sizeof(T));
  }
  /// The elements (nullptr when none).
  T* data() const noexcept { return view_.data(); }

 private:
  Kokkos::View<T*, Kokkos::HostSpace> view_;
};

/// Values in logical C order on the host: \p data points either into the caller's View or into \p staging.
template <class T>
struct HostCOrder {
  Staging<T> staging;       ///< the copy, when one was needed
  const T* data = nullptr;  ///< the values
};

/// The element strides of a dense array of extents \p e in C order.
inline std::vector<std::int64_t> c_order_strides(const std::vector<std::int64_t>& e) {
  std::vector<std::int64_t> s(e.size(), 1);
  for (std::size_t d = e.size(); d-- > 1;) s[d - 1] = s[d] * e[d];
  return s;
}

/// True when strides \p s lay out extents \p e densely in C order (dimensions of extent 1 aside).
inline bool is_c_order(const std::vector<std::int64_t>& e, const std::vector<std::int64_t>& s) {
  const auto c = c_order_strides(e);
  for (std::size_t d = 0; d < e.size(); ++d) {
    if (e[d] > 1 && s[d] != c[d]) return false;
  }
  return true;
}

/// Copies the array of extents \p ext from \p src (element strides \p ss) to \p dst (strides \p ds) on
/// the host, in parallel over the host execution space. When the two sides are fastest along different
/// dimensions the copy goes tile by tile (a transpose), so that both are read and written in runs of
/// whole cache lines.
template <class T>
void copy_strided(const T* src, const std::vector<std::int64_t>& ss, T* dst, const std::vector<std::int64_t>& ds,
                  const std::vector<std::int64_t>& ext) {
  const std::size_t rank = ext.size();
  for (const auto e : ext) {
    if (e == 0) return;
  }
  if (rank == 0) {
    *dst = *src;
    return;
  }
  // a: the dimension along which dst is fastest; b: the one along which src is.
  auto fastest = [&](const std::vector<std::int64_t>& st) {
    std::size_t best = rank - 1;
    for (std::size_t d = 0; d < rank; ++d) {
      if (ext[d] > 1 && (ext[best] == 1 || st[d] < st[best])) best = d;
    }
    return best;
  };
  const std::size_t a = fastest(ds), b = fastest(ss);
  const bool same = a == b;
  constexpr std::int64_t tile = 128 / static_cast<std::int64_t>(sizeof(T));  // two cache lines
  const std::int64_t ea = ext[a], eb = same ? 1 : ext[b];
  const std::int64_t btiles = (eb + tile - 1) / tile;
  std::vector<std::int64_t> outer_ext, outer_ss, outer_ds;  // every other dimension, slowest first
  for (std::size_t d = 0; d < rank; ++d) {
    if (d == a || d == b) continue;
    outer_ext.push_back(ext[d]);
    outer_ss.push_back(ss[d]);
    outer_ds.push_back(ds[d]);
  }
  std::int64_t outer = 1;
  for (const auto e : outer_ext) outer *= e;
  const std::int64_t sa = ss[a], da = ds[a], sb = ss[b], db = ds[b];
  Kokkos::parallel_for("khalo::io::copy_strided",
                       Kokkos::RangePolicy<Kokkos::DefaultHostExecutionSpace>(0, outer * btiles),
                       [=](const std::int64_t item) {
                         std::int64_t rest = item / btiles, so = 0, dof = 0;
                         for (std::size_t d = outer_ext.size(); d-- > 0;) {
                           const std::int64_t i = rest % outer_ext[d];
                           rest /= outer_ext[d];
                           so += i * outer_ss[d];
                           dof += i * outer_ds[d];
                         }
                         if (same) {
                           const T* s = src + so;
                           T* t = dst + dof;
                           if (sa == 1 && da == 1) {
                             std::memcpy(t, s, static_cast<std::size_t>(ea) * sizeof(T));
                           } else {
                             for (std::int64_t j = 0; j < ea; ++j) t[j * da] = s[j * sa];
                           }
                           return;
                         }
                         const std::int64_t b0 = item % btiles * tile, b1 = std::min(eb, b0 + tile);
                         for (std::int64_t a0 = 0; a0 < ea; a0 += tile) {
                           const std::int64_t a1 = std::min(ea, a0 + tile);
                           for (std::int64_t i = b0; i < b1; ++i) {
                             const T* s = src + so + i * sb;
                             T* t = dst + dof + i * db;
                             for (std::int64_t j = a0; j < a1; ++j) t[j * da] = s[j * sa];
                           }
                         }
                       });
  Kokkos::DefaultHostExecutionSpace().fence();
}

/// How write() cuts a rank's block into pieces that go to the file one after another through one staging
/// buffer: dimensions are cut slowest first in a given order (the file's: C order), each into ranges of
/// its \p run (1: one index at a time), until a piece is small enough (see plan_pieces).
struct PiecePlan {
  /// A dimension cut into ranges of \p run.
  struct Cut {
    std::size_t dim = 0;   ///< the dimension
    std::int64_t run = 1;  ///< the length of its ranges (the last one may be shorter)
  };
  std::vector<std::int64_t> ext;  ///< the block's extents
  std::vector<Cut> cuts;          ///< the dimensions cut, slowest first
  std::int64_t count = 1;         ///< the number of pieces
  std::int64_t max_elements = 0;  ///< the largest piece's element count

  /// The \p i-th piece, in the block's own coordinates.
  Hyperslab piece(std::int64_t i) const {
    Hyperslab h{std::vector<std::int64_t>(ext.size(), 0), ext};
    for (std::size_t k = cuts.size(); k-- > 0;) {
      const auto [d, run] = cuts[k];
      const std::int64_t ranges = (ext[d] + run - 1) / run, j = i % ranges;
      i /= ranges;
      h.offset[d] = j * run;
      h.count[d] = std::min(run, ext[d] - j * run);
    }
    return h;
  }
};

/// Cuts a block of extents \p ext into pieces of at most \p target elements where possible, slowest
/// dimensions first in the order of \p strides; a piece is then one contiguous stretch in that order. One
/// exception, for a copy from memory whose fastest dimension is \p line_dim: that dimension is cut only
/// into whole multiples of \p line elements (a cache line), so that the copy reads each cache line whole
/// and once. Where even one line of it, with everything inside, is more than the target, the piece is that
/// line when it is at most 4 x the target (still contiguous), else the dimensions inside it are cut too
/// (the piece is then \p line runs, one per index of \p line_dim).
inline PiecePlan plan_pieces(const std::vector<std::int64_t>& ext, const std::vector<std::int64_t>& strides,
                             std::int64_t target, std::size_t line_dim = static_cast<std::size_t>(-1),
                             std::int64_t line = 1) {
  PiecePlan p;
  p.ext = ext;
  target = std::max<std::int64_t>(1, target);
  std::vector<std::size_t> order;
  for (std::size_t d = 0; d < ext.size(); ++d) {
    if (ext[d] > 1) order.push_back(d);
  }
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return strides[a] > strides[b]; });
  std::int64_t rest = khalo::detail::element_count(ext);
  for (std::size_t k = 0; k < order.size() && rest > target; ++k) {
    const std::size_t d = order[k];
    const std::int64_t inner = rest / ext[d];
    std::int64_t run = 0;
    bool done = true;
    if (d == line_dim && line > 1) {
      if (target / inner >= line) {
        run = target / inner / line * line;
      } else {
        run = line;
        done = inner * std::min(line, ext[d]) <= 4 * target;
      }
    } else if (inner >= target) {
      run = 1;
      done = false;
    } else {
      run = target / inner;
    }
    run = std::min(run, ext[d]);
    p.cuts.push_back({d, run});
    p.count *= (ext[d] + run - 1) / run;
    rest = inner * run;
    if (done) break;
  }
  p.max_elements = rest;
  return p;
}

/// The dimension along which strides \p s of extents \p e move fastest (extents of 1 aside), or the last.
inline std::size_t fastest_dimension(const std::vector<std::int64_t>& e, const std::vector<std::int64_t>& s) {
  std::size_t best = e.empty() ? 0 : e.size() - 1;
  for (std::size_t d = 0; d < e.size(); ++d) {
    if (e[d] > 1 && (e[best] <= 1 || s[d] < s[best])) best = d;
  }
  return best;
}

/// The values of \p v in logical C order on the host: \p v's own memory when it is that already
/// (host-accessible, dense, C order), else one copy into a staging buffer.
template <class View>
HostCOrder<typename View::non_const_value_type> host_c_order(const View& v) {
  using T = typename View::non_const_value_type;
  const auto ext = khalo::detail::extents_of(v);
  const auto n = static_cast<std::size_t>(khalo::detail::element_count(ext));
  HostCOrder<T> out;
  if constexpr (Kokkos::SpaceAccessibility<Kokkos::HostSpace, typename View::memory_space>::accessible) {
    const auto strides = khalo::detail::strides_of(v);
    if (is_c_order(ext, strides)) {
      out.data = v.data();
      return out;
    }
    out.staging = Staging<T>(n);
    copy_strided<T>(v.data(), strides, out.staging.data(), c_order_strides(ext), ext);
  } else {
    // On the device first (its own transpose), then one copy to the host.
    using Right = Kokkos::View<typename View::non_const_data_type, Kokkos::LayoutRight, typename View::memory_space>;
    Kokkos::LayoutRight l;
    for (std::size_t d = 0; d < ext.size(); ++d) l.dimension[d] = static_cast<std::size_t>(ext[d]);
    Right dense(Kokkos::view_alloc("khalo::io::c_order", Kokkos::WithoutInitializing), l);
    Kokkos::deep_copy(dense, v);
    out.staging = Staging<T>(n);
    Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> host(out.staging.data(), n);
    Kokkos::View<T*, typename View::memory_space, Kokkos::MemoryUnmanaged> flat(dense.data(), n);
    Kokkos::deep_copy(host, flat);
  }
  out.data = out.staging.data();
  return out;
}

}  // namespace detail

}  // namespace khalo::io
