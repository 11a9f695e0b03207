#include <khalo/decomposition.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/detail/strides.hpp>
#include <khalo/io/compare.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace khalo::io {

namespace {

template <class Int, class Float>
Int ordered(Float x) {
  Int i = 0;
  std::memcpy(&i, &x, sizeof(x));
  // Map the sign-magnitude bits onto a monotonic integer line; -0 and +0 meet at 0.
  return i < 0 ? std::numeric_limits<Int>::min() - i : i;
}

template <class Int, class Float>
std::uint64_t ulp(Float a, Float b) {
  const auto ia = static_cast<long double>(ordered<Int>(a));
  const auto ib = static_cast<long double>(ordered<Int>(b));
  return static_cast<std::uint64_t>(ia > ib ? ia - ib : ib - ia);
}

// Running results of one rank's slab.
struct Partial {
  std::int64_t mismatches = 0;
  double max_abs = 0.0;
  double max_rel = 0.0;
  std::uint64_t max_ulp = 0;
  int nan_seen = 0;
  std::int64_t first = std::numeric_limits<std::int64_t>::max();  // flat C-order index
};

template <class T, class Int>
void compare_block(const std::vector<T>& a, const std::vector<T>& b, const std::vector<std::int64_t>& shape,
                   const Hyperslab& slab, const CompareOptions& o, Partial& p) {
  std::vector<std::int64_t> idx(slab.count.size(), 0);
  for (std::size_t i = 0; i < a.size(); ++i) {
    const T x = a[i];
    const T y = b[i];
    bool same = false;
    if (o.bitwise) {
      same = std::memcmp(&x, &y, sizeof(T)) == 0;
    } else if (std::isnan(x) || std::isnan(y)) {
      same = o.nan_equal && std::isnan(x) && std::isnan(y);
    } else {
      same = x == y;
    }
    if (std::isnan(x) || std::isnan(y)) {
      p.nan_seen = 1;
    } else {
      const double diff = std::fabs(static_cast<double>(x) - static_cast<double>(y));
      const double rel =
          diff == 0.0 ? 0.0
                      : (y == 0 ? std::numeric_limits<double>::infinity() : diff / std::fabs(static_cast<double>(y)));
      const std::uint64_t u = ulp<Int>(x, y);
      p.max_abs = std::max(p.max_abs, std::isnan(diff) ? 0.0 : diff);
      p.max_rel = std::max(p.max_rel, std::isnan(rel) ? 0.0 : rel);
      p.max_ulp = std::max(p.max_ulp, u);
      if (!same && !o.bitwise) {
        const bool tolerated =
            (o.rtol > 0 || o.atol > 0) && diff <= o.atol + o.rtol * std::fabs(static_cast<double>(y));
        same = tolerated || (o.max_ulp && u <= *o.max_ulp);
      }
    }
    if (!same) {
      ++p.mismatches;
      std::int64_t flat = 0;
      for (std::size_t d = 0; d < shape.size(); ++d) flat = flat * shape[d] + slab.offset[d] + idx[d];
      p.first = std::min(p.first, flat);
    }
    for (int d = static_cast<int>(idx.size()) - 1; d >= 0; --d) {  // next index in the slab, C order
      if (++idx[static_cast<std::size_t>(d)] < slab.count[static_cast<std::size_t>(d)]) break;
      idx[static_cast<std::size_t>(d)] = 0;
    }
  }
}

using khalo::detail::shape_text;

// The slabs this rank compares: a band of one dimension, read a piece at a time.
template <class T, class Int>
Partial compare_dataset(MPI_Comm comm, const SnapshotReader& ra, const SnapshotReader& rb, const DatasetInfo& info,
                        const CompareOptions& o) {
  int rank = 0, size = 1;
  KHALO_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  KHALO_MPI_CHECK(MPI_Comm_size(comm, &size));
  const auto& shape = info.shape;
  Partial p;
  if (shape.empty()) return p;
  std::size_t split = 0;  // the first dimension long enough to give every rank some, else the longest
  for (std::size_t d = 0; d < shape.size(); ++d) {
    if (shape[d] >= size) {
      split = d;
      break;
    }
    if (shape[d] > shape[split]) split = d;
  }
  const Range mine = balanced_split(shape[split], size, rank);
  std::int64_t per_layer = 1;
  for (std::size_t d = 0; d < shape.size(); ++d) per_layer *= d == split ? 1 : shape[d];
  const std::int64_t layers_per_read =
      std::max<std::int64_t>(1, (std::int64_t{1} << 24) / std::max<std::int64_t>(per_layer, 1));
  // Every rank makes the same number of (collective) reads, some of them empty.
  std::int64_t most = 0;
  const std::int64_t own = mine.size();
  KHALO_MPI_CHECK(MPI_Allreduce(&own, &most, 1, MPI_INT64_T, MPI_MAX, comm));
  for (std::int64_t done = 0; done < most; done += layers_per_read) {
    Hyperslab slab{std::vector<std::int64_t>(shape.size(), 0), shape};
    const std::int64_t begin = std::min(mine.begin + done, mine.end);
    slab.offset[split] = begin;
    slab.count[split] = std::min(mine.end, begin + layers_per_read) - begin;
    const auto n = static_cast<std::size_t>(khalo::detail::element_count(slab.count));
    std::vector<T> a(n), b(n);
    ra.read_raw(info.name, shape, slab, a.data(), info.dtype);
    rb.read_raw(info.name, shape, slab, b.data(), info.dtype);
    compare_block<T, Int>(a, b, shape, slab, o, p);
  }
  return p;
}

}  // namespace

std::uint64_t ulp_distance(float a, float b) { return ulp<std::int32_t>(a, b); }
std::uint64_t ulp_distance(double a, double b) { return ulp<std::int64_t>(a, b); }

Comparison compare_files(MPI_Comm comm, const std::string& a, const std::string& b, const CompareOptions& o) {
  SnapshotReader ra(comm, a);
  SnapshotReader rb(comm, b);
  const auto names_a = ra.datasets();
  const auto names_b = rb.datasets();
  Comparison result;
  std::vector<std::string> common;
  for (const auto& n : names_a) {
    (std::find(names_b.begin(), names_b.end(), n) != names_b.end() ? common : result.only_in_a).push_back(n);
  }
  for (const auto& n : names_b) {
    if (std::find(names_a.begin(), names_a.end(), n) == names_a.end()) result.only_in_b.push_back(n);
  }
  if (!o.dataset.empty()) {
    const std::string want = o.dataset.front() == '/' ? o.dataset : "/" + o.dataset;
    (void)ra.info(want);  // throws, naming file and dataset, when missing
    (void)rb.info(want);
    common = {want};
  }
  if (common.empty()) throw Error("khalo-compare: '" + a + "' and '" + b + "' have no dataset in common");
  for (const auto& name : common) {
    const DatasetInfo ia = ra.info(name);
    const DatasetInfo ib = rb.info(name);
    if (ia.shape != ib.shape) {
      throw Error("khalo-compare: dataset '" + name + "' has shape " + shape_text(ia.shape) + " in '" + a + "' but " +
                  shape_text(ib.shape) + " in '" + b + "'");
    }
    if (ia.dtype != ib.dtype) {
      throw Error("khalo-compare: dataset '" + name + "' is " + to_string(ia.dtype) + " in '" + a + "' but " +
                  to_string(ib.dtype) + " in '" + b + "'");
    }
    const Partial p = ia.dtype == DType::float32 ? compare_dataset<float, std::int32_t>(comm, ra, rb, ia, o)
                                                 : compare_dataset<double, std::int64_t>(comm, ra, rb, ia, o);
    DatasetComparison c;
    c.name = name;
    c.shape = ia.shape;
    c.dtype = ia.dtype;
    c.elements = khalo::detail::element_count(ia.shape);
    KHALO_MPI_CHECK(MPI_Allreduce(&p.mismatches, &c.mismatches, 1, MPI_INT64_T, MPI_SUM, comm));
    KHALO_MPI_CHECK(MPI_Allreduce(&p.max_abs, &c.max_abs, 1, MPI_DOUBLE, MPI_MAX, comm));
    KHALO_MPI_CHECK(MPI_Allreduce(&p.max_rel, &c.max_rel, 1, MPI_DOUBLE, MPI_MAX, comm));
    KHALO_MPI_CHECK(MPI_Allreduce(&p.max_ulp, &c.max_ulp, 1, MPI_UINT64_T, MPI_MAX, comm));
    int nan_seen = 0;
    KHALO_MPI_CHECK(MPI_Allreduce(&p.nan_seen, &nan_seen, 1, MPI_INT, MPI_MAX, comm));
    c.nan_seen = nan_seen != 0;
    std::int64_t first = 0;
    KHALO_MPI_CHECK(MPI_Allreduce(&p.first, &first, 1, MPI_INT64_T, MPI_MIN, comm));
    if (c.mismatches > 0) {
      std::vector<std::int64_t> idx(c.shape.size());
      for (int d = static_cast<int>(idx.size()) - 1; d >= 0; --d) {
        idx[static_cast<std::size_t>(d)] = first % c.shape[static_cast<std::size_t>(d)];
        first /= c.shape[static_cast<std::size_t>(d)];
      }
      c.first_mismatch = idx;
      if (!result.first_divergent) result.first_divergent = name;
    }
    result.datasets.push_back(std::move(c));
  }
  return result;
}

}  // namespace khalo::io
