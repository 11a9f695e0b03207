#pragma once
// Strided host arrays and the copies the schemes make between them: a box of one
// array into a box of another (memcpy per contiguous run, tiles of a transpose
// where the formats differ) and a box filled with one value, as a tensor library's
// copy and fill kernels do.

#include <khalo/layout.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace halo_bench {

using Exec = Kokkos::DefaultHostExecutionSpace;
using Mem = Kokkos::HostSpace;
using Ext = std::vector<std::int64_t>;
using khalo::StrideOrder;

inline std::int64_t product(const Ext& e) {
  std::int64_t n = 1;
  for (auto x : e) n *= x;
  return n;
}

inline std::string shape_text(const Ext& e) {
  std::string s = "(";
  for (std::size_t i = 0; i < e.size(); ++i) s += (i ? "," : "") + std::to_string(e[i]);
  return s + ")";
}

inline Ext dense_strides(const Ext& e, const StrideOrder& order) {
  Ext s(e.size(), 0);
  std::int64_t step = 1;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    s[static_cast<std::size_t>(*it)] = step;
    step *= e[static_cast<std::size_t>(*it)];
  }
  return s;
}

inline StrideOrder identity_order(std::size_t rank) {
  StrideOrder o(rank);
  for (std::size_t d = 0; d < rank; ++d) o[d] = static_cast<int>(d);
  return o;
}

// A strided host array: data pointer, logical extents and strides, memory order.
template <class T>
struct Arr {
  T* data = nullptr;
  Ext ext, str;
  StrideOrder order;
};

template <class T>
Arr<T> dense_at(T* data, const Ext& ext, const StrideOrder& order) {
  return {data, ext, dense_strides(ext, order), order};
}

template <class View>
Arr<typename View::value_type> arr_of(const View& v) {
  Arr<typename View::value_type> a;
  a.data = v.data();
  for (std::size_t d = 0; d < static_cast<std::size_t>(View::rank); ++d) {
    a.ext.push_back(static_cast<std::int64_t>(v.extent(d)));
    a.str.push_back(static_cast<std::int64_t>(v.stride(d)));
  }
  a.order = khalo::stride_order(v);
  return a;
}

template <class T>
T& at(const Arr<T>& a, const Ext& i) {
  std::int64_t o = 0;
  for (std::size_t d = 0; d < i.size(); ++d) o += i[d] * a.str[d];
  return a.data[o];
}

// Uninitialised storage, like torch.empty: pages are touched by whoever writes first.
template <class T>
struct Storage {
  std::unique_ptr<T[]> mem;
  std::int64_t size = 0;
  explicit Storage(std::int64_t n = 0) : mem(n > 0 ? new T[static_cast<std::size_t>(n)] : nullptr), size(n) {}
  T* get() const { return mem.get(); }
};

// A box of two arrays walked in the destination's memory order; dimensions are
// merged where both arrays store them one inside the other, so the innermost
// run is as long as it can be (a memcpy when both are unit-stride).
struct Walk2 {
  std::vector<std::int64_t> n, ss, ds;  // fastest first
  std::int64_t s0 = 0, d0 = 0, rows = 1, count = 0;
};

template <class T>
Walk2 walk2(const Arr<T>& src, const Ext& slo, const Arr<T>& dst, const Ext& dlo, const Ext& n) {
  Walk2 w;
  w.count = product(n);
  for (std::size_t d = 0; d < n.size(); ++d) {
    w.s0 += slo[d] * src.str[d];
    w.d0 += dlo[d] * dst.str[d];
  }
  for (auto it = dst.order.rbegin(); it != dst.order.rend(); ++it) {
    const auto d = static_cast<std::size_t>(*it);
    if (n[d] == 1) continue;
    if (!w.n.empty() && w.ss.back() * w.n.back() == src.str[d] && w.ds.back() * w.n.back() == dst.str[d]) {
      w.n.back() *= n[d];
    } else {
      w.n.push_back(n[d]);
      w.ss.push_back(src.str[d]);
      w.ds.push_back(dst.str[d]);
    }
  }
  if (w.n.empty()) {
    w.n = {1};
    w.ss = {1};
    w.ds = {1};
  }
  for (std::size_t k = 1; k < w.n.size(); ++k) w.rows *= w.n[k];
  return w;
}

// dst[dlo + i] = src[slo + i] for every i in the box n: a memcpy per run where
// both arrays are unit-stride, tiles of a 2-D transpose where the formats differ
// (as a tensor library's copy kernel does), an element loop otherwise.
template <class T>
void copy_box(const Exec& exec, const Arr<T>& src, const Ext& slo, const Arr<T>& dst, const Ext& dlo, const Ext& n) {
  const Walk2 w = walk2(src, slo, dst, dlo, n);
  if (w.count == 0) return;
  const T* s = src.data + w.s0;
  T* d = dst.data + w.d0;
  std::size_t t = 0;  // the source's unit-stride dimension, when the destination's is another one
  for (std::size_t k = 1; k < w.n.size() && w.ss[0] != 1 && w.ds[0] == 1; ++k) {
    if (w.ss[k] == 1) t = k;
  }
  if (t > 0) {
    constexpr std::int64_t tile = 16;
    const std::int64_t n0 = w.n[0], nt = w.n[t];
    const std::int64_t outer = w.count / (n0 * nt), tiles0 = (n0 + tile - 1) / tile, tilest = (nt + tile - 1) / tile;
    Kokkos::parallel_for("bench::transpose", Kokkos::RangePolicy<Exec>(exec, 0, outer * tiles0 * tilest),
                         [&](std::int64_t r) {
                           const std::int64_t b0 = (r % tiles0) * tile, bt = ((r / tiles0) % tilest) * tile;
                           std::int64_t o = r / (tiles0 * tilest), so = 0, doff = 0;
                           for (std::size_t k = 1; k < w.n.size(); ++k) {
                             if (k == t) continue;
                             const std::int64_t i = o % w.n[k];
                             o /= w.n[k];
                             so += i * w.ss[k];
                             doff += i * w.ds[k];
                           }
                           const std::int64_t e0 = std::min(n0, b0 + tile), et = std::min(nt, bt + tile);
                           for (std::int64_t j = bt; j < et; ++j) {
                             for (std::int64_t i = b0; i < e0; ++i) d[doff + i + j * w.ds[t]] = s[so + i * w.ss[0] + j];
                           }
                         });
    return;
  }
  const bool run = w.ss[0] == 1 && w.ds[0] == 1;
  Kokkos::parallel_for("bench::copy", Kokkos::RangePolicy<Exec>(exec, 0, w.rows), [&](std::int64_t r) {
    std::int64_t so = 0, doff = 0;
    for (std::size_t k = 1; k < w.n.size(); ++k) {
      const std::int64_t i = r % w.n[k];
      r /= w.n[k];
      so += i * w.ss[k];
      doff += i * w.ds[k];
    }
    if (run) {
      std::memcpy(d + doff, s + so, static_cast<std::size_t>(w.n[0]) * sizeof(T));
    } else {
      for (std::int64_t i = 0; i < w.n[0]; ++i) d[doff + i * w.ds[0]] = s[so + i * w.ss[0]];
    }
  });
}

template <class T>
void fill_box(const Exec& exec, const Arr<T>& dst, const Ext& lo, const Ext& n, T value) {
  const Walk2 w = walk2(dst, lo, dst, lo, n);
  if (w.count == 0) return;
  T* d = dst.data + w.d0;
  Kokkos::parallel_for("bench::fill", Kokkos::RangePolicy<Exec>(exec, 0, w.rows), [&](std::int64_t r) {
    std::int64_t off = 0;
    for (std::size_t k = 1; k < w.n.size(); ++k) {
      off += (r % w.n[k]) * w.ds[k];
      r /= w.n[k];
    }
    for (std::int64_t i = 0; i < w.n[0]; ++i) d[off + i * w.ds[0]] = value;
  });
}

}  // namespace halo_bench
