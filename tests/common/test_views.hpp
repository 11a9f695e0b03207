#pragma once
// Test helpers: one test body per layout (typed tests), Views filled from a
// function of the global index, and rank-generic host-side access.

#include <global_values.hpp>
#include <khalo/layout.hpp>

#include <gtest/gtest.h>
#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace khalo::test {

template <class View>
std::int64_t offset_of(const View& v, const Index& i) {
  std::int64_t o = 0;
  for (std::size_t d = 0; d < i.size(); ++d) o += i[d] * static_cast<std::int64_t>(v.stride(d));
  return o;
}

/// Why a test skips its zero-copy counters: the halo stages its messages through host buffers
/// (device memory, and MPI not GPU-aware), so every face is packed and no transport sends from
/// the View itself. The ghosts are still checked before the skip.
inline constexpr const char* kStagedSkip =
    "staged through host buffers (device memory, MPI not GPU-aware): every face is packed";

/// The memory under \p v, its whole span (padding included), copied to the host: element k is
/// v.data()[k]. Kokkos refuses deep_copy of a non-contiguous View between memory spaces (a
/// padded View in device memory); the span of any View is one contiguous range.
template <class View>
std::vector<typename View::non_const_value_type> span_to_host(const View& v) {
  using T = typename View::non_const_value_type;
  std::vector<T> h(v.span());
  Kokkos::View<T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged> dst(h.data(), h.size());
  Kokkos::deep_copy(dst,
                    Kokkos::View<const T*, typename View::memory_space, Kokkos::MemoryUnmanaged>(v.data(), h.size()));
  return h;
}

/// Writes \p h, a span from span_to_host, back under \p v.
template <class View>
void span_from_host(const View& v, const std::vector<typename View::non_const_value_type>& h) {
  using T = typename View::non_const_value_type;
  Kokkos::View<T*, typename View::memory_space, Kokkos::MemoryUnmanaged> dst(v.data(), h.size());
  Kokkos::deep_copy(dst, Kokkos::View<const T*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(h.data(), h.size()));
}

/// Host copy of a View's values in logical C order.
template <class View>
std::vector<typename View::non_const_value_type> to_logical(const View& v) {
  const auto h = span_to_host(v);
  std::vector<typename View::non_const_value_type> out;
  for_each_index(detail::extents_of(v), [&](const Index& i) { out.push_back(h[offset_of(v, i)]); });
  return out;
}

/// Sets every element of \p v to f(index).
template <class View, class F>
void fill(const View& v, F f) {
  auto h = span_to_host(v);
  for_each_index(detail::extents_of(v),
                 [&](const Index& i) { h[offset_of(v, i)] = static_cast<typename View::non_const_value_type>(f(i)); });
  span_from_host(v, h);
}

template <class Layout>
Layout layout_of(const Index& extents) {
  Layout l;
  for (std::size_t d = 0; d < extents.size(); ++d) l.dimension[d] = static_cast<std::size_t>(extents[d]);
  return l;
}

/// The layouts every layout-generic test runs over.
struct RightCase {
  template <class DataType>
  using view = Kokkos::View<DataType, Kokkos::LayoutRight>;
  static constexpr const char* name = "LayoutRight";
  template <class DataType>
  static view<DataType> make(const std::string& label, const Index& extents) {
    return view<DataType>(Kokkos::view_alloc(label), layout_of<Kokkos::LayoutRight>(extents));
  }
};

struct LeftCase {
  template <class DataType>
  using view = Kokkos::View<DataType, Kokkos::LayoutLeft>;
  static constexpr const char* name = "LayoutLeft";
  template <class DataType>
  static view<DataType> make(const std::string& label, const Index& extents) {
    return view<DataType>(Kokkos::view_alloc(label), layout_of<Kokkos::LayoutLeft>(extents));
  }
};

/// Channels last: N, spatial dims, then C (dimension 1) fastest.
struct ChannelsLastCase {
  template <class DataType>
  using view = Kokkos::View<DataType, Kokkos::LayoutStride>;
  static constexpr const char* name = "ChannelsLast";
  static StrideOrder order(int rank) {
    if (rank < 3) return format_order(MemoryFormat::contiguous, rank);
    StrideOrder o{0};
    for (int d = 2; d < rank; ++d) o.push_back(d);
    o.push_back(1);
    return o;
  }
  template <class DataType>
  static view<DataType> make(const std::string& label, const Index& extents) {
    return allocate<DataType, Kokkos::DefaultExecutionSpace::memory_space>(label, extents,
                                                                           order(static_cast<int>(extents.size())));
  }
};

/// A fixed scrambled permutation per rank (no named format).
struct PermutedCase {
  template <class DataType>
  using view = Kokkos::View<DataType, Kokkos::LayoutStride>;
  static constexpr const char* name = "Permuted";
  static StrideOrder order(int rank) {
    switch (rank) {
      case 1: return {0};
      case 2: return {1, 0};
      case 3: return {1, 2, 0};
      case 4: return {2, 0, 3, 1};
      case 5: return {3, 0, 4, 1, 2};
      case 6: return {4, 1, 5, 0, 3, 2};
      case 7: return {6, 2, 0, 5, 1, 4, 3};
      default: return {7, 3, 1, 6, 0, 5, 2, 4};
    }
  }
  template <class DataType>
  static view<DataType> make(const std::string& label, const Index& extents) {
    return allocate<DataType, Kokkos::DefaultExecutionSpace::memory_space>(label, extents,
                                                                           order(static_cast<int>(extents.size())));
  }
};

/// A permuted order with one element of padding after every extent, as a
/// View cut out of a larger array has: strides that no dense array has.
struct PaddedCase {
  template <class DataType>
  using view = Kokkos::View<DataType, Kokkos::LayoutStride>;
  static constexpr const char* name = "Padded";
  template <class DataType>
  static view<DataType> make(const std::string& label, const Index& extents) {
    using T = typename view<DataType>::non_const_value_type;
    using Memory = Kokkos::DefaultExecutionSpace::memory_space;
    const StrideOrder order = PermutedCase::order(static_cast<int>(extents.size()));
    Index padded = extents;
    for (auto& e : padded) e += 1;
    const detail::Extents strides = detail::dense_strides(padded, order);
    Kokkos::LayoutStride layout;
    for (std::size_t d = 0; d < extents.size(); ++d) {
      layout.dimension[d] = static_cast<std::size_t>(extents[d]);
      layout.stride[d] = static_cast<std::size_t>(strides[d]);
    }
    std::int64_t span = 1;
    for (auto e : padded) span *= e;
    Kokkos::View<T*, Memory> owner(label, static_cast<std::size_t>(span));
    keep_alive(owner);
    return view<DataType>(owner.data(), layout);
  }

 private:
  // The Views handed out do not own their memory: these do, until Kokkos finalizes.
  template <class Owner>
  static void keep_alive(const Owner& owner) {
    static std::vector<std::function<void()>>* owners = nullptr;
    if (owners == nullptr) {
      owners = new std::vector<std::function<void()>>();
      Kokkos::push_finalize_hook([] {
        delete owners;
        owners = nullptr;
      });
    }
    owners->push_back([owner] { (void)owner; });
  }
};

template <class Case, class T>
struct Param {
  using layout_case = Case;
  using value_type = T;
};

using LayoutsAndTypes =
    ::testing::Types<Param<RightCase, float>, Param<LeftCase, float>, Param<ChannelsLastCase, float>,
                     Param<PermutedCase, float>, Param<RightCase, double>, Param<LeftCase, double>,
                     Param<ChannelsLastCase, double>, Param<PermutedCase, double>>;

class ParamNames {
 public:
  template <class P>
  static std::string GetName(int) {
    return std::string(P::layout_case::name) + "_" + (sizeof(typename P::value_type) == 4 ? "float" : "double");
  }
};

inline int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
inline int world_size() {
  int s = 0;
  MPI_Comm_size(MPI_COMM_WORLD, &s);
  return s;
}

/// Rows [first, first + rows) of \p all, a whole (N, C, T, H, W) tensor in C order of \p shape:
/// the band a rank holds of a result that one rank computed whole.
template <class T>
std::vector<T> rows_of(const std::vector<T>& all, const std::vector<std::int64_t>& shape, std::int64_t first,
                       std::int64_t rows) {
  std::vector<T> out;
  const std::int64_t plane = shape[4];
  for (std::int64_t n = 0; n < shape[0]; ++n)
    for (std::int64_t c = 0; c < shape[1]; ++c)
      for (std::int64_t t = 0; t < shape[2]; ++t)
        for (std::int64_t h = first; h < first + rows; ++h) {
          const auto at = static_cast<std::ptrdiff_t>((((n * shape[1] + c) * shape[2] + t) * shape[3] + h) * plane);
          out.insert(out.end(), all.begin() + at, all.begin() + at + plane);
        }
  return out;
}

/// The data type of a rank-R View of T (T*, T**, ...).
template <class T, int R>
struct ptr {
  using type = typename ptr<T, R - 1>::type*;
};
template <class T>
struct ptr<T, 0> {
  using type = T;
};
template <class T, int R>
using ptr_t = typename ptr<T, R>::type;

}  // namespace khalo::test
