#pragma once
/// \file
/// Cartesian process grid and the balanced split of a global array over it.

#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/detail/strides.hpp>

#include <mpi.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo {

/// The two sides of a dimension.
enum class Side : int { low = 0, high = 1 };

/// A half-open range [begin, end) of global indices.
struct Range {
  std::int64_t begin = 0;  ///< the first index in the range
  std::int64_t end = 0;    ///< one past the last index in the range
  /// The number of indices, end - begin.
  std::int64_t size() const noexcept { return end - begin; }
  friend bool operator==(const Range& a, const Range& b) noexcept { return a.begin == b.begin && a.end == b.end; }
};

/// Part \p index of \p n items split into \p parts: the first `n % parts`
/// parts get one more item; parts may be empty when n < parts.
inline Range balanced_split(std::int64_t n, int parts, int index) {
  if (n < 0 || parts < 1 || index < 0 || index >= parts) {
    throw std::invalid_argument("khalo::balanced_split: need n >= 0 and 0 <= index < parts (n=" + std::to_string(n) +
                                ", parts=" + std::to_string(parts) + ", index=" + std::to_string(index) + ")");
  }
  const std::int64_t base = n / parts;
  const std::int64_t extra = n % parts;
  const std::int64_t begin = index * base + std::min<std::int64_t>(index, extra);
  return {begin, begin + base + (index < extra ? 1 : 0)};
}

/// A Cartesian grid of MPI ranks. Copies share one communicator, which the
/// grid owns (created with MPI_Cart_create, freed with the last copy).
class ProcessGrid {
 public:
  /// Builds a grid over \p comm. `dims[i] == 0` lets MPI_Dims_create choose that
  /// dimension; \p periodic (default: none) wraps a dimension around.
  /// Collective; throws std::invalid_argument on every rank when the dims
  /// cannot hold the communicator's ranks or the ranks disagree.
  ProcessGrid(MPI_Comm comm, std::vector<int> dims, std::vector<bool> periodic = {}) {
    const std::string where = "khalo::ProcessGrid: ";
    int size = 0;
    KHALO_MPI_CHECK(MPI_Comm_size(comm, &size));
    if (periodic.empty()) periodic.assign(dims.size(), false);
    std::string error;
    if (dims.empty() || dims.size() > 8) {
      error = where + "the grid needs 1..8 dimensions, got " + std::to_string(dims.size());
    } else if (periodic.size() != dims.size()) {
      error = where + std::to_string(periodic.size()) + " periodicity flags for " + std::to_string(dims.size()) +
              " dimensions";
    } else {
      int fixed = 1;
      for (int d : dims) {
        if (d < 0) error = where + "negative grid dimension " + std::to_string(d);
        if (d > 0) fixed *= d;
      }
      const bool all_fixed = std::all_of(dims.begin(), dims.end(), [](int d) { return d > 0; });
      if (error.empty() && (all_fixed ? fixed != size : size % fixed != 0)) {
        error = where + "a grid of " + shape_text(dims) + " does not fit the communicator's " + std::to_string(size) +
                " ranks";
      }
    }
    std::vector<std::int64_t> signature(dims.begin(), dims.end());
    signature.insert(signature.begin(), static_cast<std::int64_t>(dims.size()));
    for (bool p : periodic) signature.push_back(p ? 1 : 0);
    const std::string disagree = detail::disagreement(comm, signature, {"the number of grid dimensions"});
    detail::throw_if_any(comm, disagree.empty() ? error : where + disagree);

    KHALO_MPI_CHECK(MPI_Dims_create(size, static_cast<int>(dims.size()), dims.data()));
    std::vector<int> wrap(periodic.begin(), periodic.end());
    MPI_Comm cart = MPI_COMM_NULL;
    // reorder = 0: rank numbers stay those of the caller's communicator.
    KHALO_MPI_CHECK(MPI_Cart_create(comm, static_cast<int>(dims.size()), dims.data(), wrap.data(), 0, &cart));
    comm_ = std::make_shared<detail::Comm>(cart);
    dims_ = std::move(dims);
    periodic_ = std::move(periodic);
    rank_ = comm_->rank();
    coords_.assign(dims_.size(), 0);
    KHALO_MPI_CHECK(MPI_Cart_coords(comm_->get(), rank_, static_cast<int>(dims_.size()), coords_.data()));
  }

  /// A grid of \p ndims dimensions whose sizes MPI_Dims_create chooses.
  /// (A factory, not a constructor: `ProcessGrid(comm, {4})` must mean a 1-D grid of 4.)
  static ProcessGrid balanced(MPI_Comm comm, int ndims, bool periodic = false) {
    const auto n = static_cast<std::size_t>(std::max(ndims, 0));
    return ProcessGrid(comm, std::vector<int>(n, 0), std::vector<bool>(n, periodic));
  }

  /// The number of grid dimensions.
  int ndims() const noexcept { return static_cast<int>(dims_.size()); }
  /// The number of ranks along each grid dimension.
  const std::vector<int>& dims() const noexcept { return dims_; }
  /// This rank's coordinates in the grid.
  const std::vector<int>& coords() const noexcept { return coords_; }
  /// True when grid dimension \p grid_dim wraps around.
  bool periodic(int grid_dim) const { return periodic_.at(static_cast<std::size_t>(grid_dim)); }
  /// This rank's rank in comm() (the same as in the communicator the grid was built over).
  int rank() const noexcept { return rank_; }
  /// The number of ranks in the grid.
  int size() const noexcept { return std::accumulate(dims_.begin(), dims_.end(), 1, std::multiplies<>()); }
  /// The grid's Cartesian communicator (owned by the grid).
  MPI_Comm comm() const noexcept { return comm_->get(); }

  /// The rank at \p coords; coordinates outside the grid wrap when \p wrap is
  /// true and give MPI_PROC_NULL otherwise.
  int rank_at(std::vector<int> coords, bool wrap = false) const {
    for (std::size_t d = 0; d < dims_.size(); ++d) {
      const int n = dims_[d];
      if (coords[d] < 0 || coords[d] >= n) {
        if (!(wrap || periodic_[d])) return MPI_PROC_NULL;
        coords[d] = ((coords[d] % n) + n) % n;
      }
    }
    int r = MPI_PROC_NULL;
    KHALO_MPI_CHECK(MPI_Cart_rank(comm_->get(), coords.data(), &r));
    return r;
  }

  /// The neighbour across \p side of grid dimension \p grid_dim, or MPI_PROC_NULL
  /// at the edge of a non-periodic dimension (or when \p wrap forces periodicity).
  int neighbor(int grid_dim, Side side, bool wrap = false) const {
    std::vector<int> c = coords_;
    c.at(static_cast<std::size_t>(grid_dim)) += side == Side::low ? -1 : 1;
    return rank_at(c, wrap);
  }

  /// \p dims as text, e.g. "2x3", for messages.
  static std::string shape_text(const std::vector<int>& dims) {
    std::string s;
    for (std::size_t i = 0; i < dims.size(); ++i) s += (i ? "x" : "") + std::to_string(dims[i]);
    return s;
  }

 private:
  std::shared_ptr<detail::Comm> comm_;
  std::vector<int> dims_;
  std::vector<bool> periodic_;
  std::vector<int> coords_;
  int rank_ = 0;
};

/// How a global array of some rank is split over a process grid: grid
/// dimension g splits array dimension `split_dims()[g]` into balanced parts;
/// all other array dimensions are whole on every rank.
class Decomposition {
 public:
  /// Collective; throws std::invalid_argument on every rank for a split
  /// dimension that is out of range, repeated, or has a zero global extent,
  /// and when ranks disagree on the global extents.
  Decomposition(ProcessGrid grid, std::vector<std::int64_t> global_extents, std::vector<int> split_dims)
      : Decomposition(std::move(grid), std::move(global_extents), std::move(split_dims), {}) {}

  /// A split with given part boundaries: `offsets[g]` holds the `parts + 1` boundaries of
  /// split dimension `split_dims[g]` (0 first, its global extent last, non-decreasing), or is
  /// empty for the balanced split. This is how a tensor upsampled on every rank keeps its
  /// rows where they were computed (see refined()). Collective; throws as above, and for
  /// boundaries that do not fit.
  Decomposition(ProcessGrid grid, std::vector<std::int64_t> global_extents, std::vector<int> split_dims,
                std::vector<std::vector<std::int64_t>> offsets)
      : grid_(std::move(grid)),
        global_(std::move(global_extents)),
        split_(std::move(split_dims)),
        offsets_(std::move(offsets)) {
    const std::string where = "khalo::Decomposition: ";
    std::string error;
    if (!offsets_.empty() && offsets_.size() != split_.size()) {
      error = where + std::to_string(offsets_.size()) + " lists of part boundaries for " +
              std::to_string(split_.size()) + " split dimensions";
    }
    offsets_.resize(split_.size());
    const int rank = static_cast<int>(global_.size());
    if (rank < 1 || rank > 8) error = where + "arrays of rank 1..8 only, got rank " + std::to_string(rank);
    if (error.empty() && static_cast<int>(split_.size()) != grid_.ndims()) {
      error = where + std::to_string(split_.size()) + " split dimensions for a " + std::to_string(grid_.ndims()) +
              "-D process grid";
    }
    grid_dim_of_.assign(global_.size(), -1);
    for (std::size_t g = 0; error.empty() && g < split_.size(); ++g) {
      const int d = split_[g];
      if (d < 0 || d >= rank) {
        error = where + "split dimension " + std::to_string(d) + " is outside 0.." + std::to_string(rank - 1);
      } else if (grid_dim_of_[static_cast<std::size_t>(d)] >= 0) {
        error = where + "dimension " + std::to_string(d) + " is split twice";
      } else if (global_[static_cast<std::size_t>(d)] <= 0) {
        error = where + "split dimension " + std::to_string(d) + " has extent " +
                std::to_string(global_[static_cast<std::size_t>(d)]) + "; a split needs at least one layer";
      } else {
        grid_dim_of_[static_cast<std::size_t>(d)] = static_cast<int>(g);
      }
    }
    for (std::size_t d = 0; error.empty() && d < global_.size(); ++d) {
      if (global_[d] < 0) error = where + "negative extent in dimension " + std::to_string(d);
    }
    for (std::size_t g = 0; error.empty() && g < split_.size(); ++g) {
      const auto& b = offsets_[g];
      if (b.empty()) continue;
      const std::size_t parts = static_cast<std::size_t>(grid_.dims()[g]);
      bool ok = b.size() == parts + 1 && b.front() == 0 && b.back() == global_[static_cast<std::size_t>(split_[g])];
      for (std::size_t i = 1; ok && i < b.size(); ++i) ok = b[i - 1] <= b[i];
      if (!ok) {
        error = where + "the part boundaries " + detail::shape_text(b) + " of dimension " + std::to_string(split_[g]) +
                " do not split its extent " + std::to_string(global_[static_cast<std::size_t>(split_[g])]) + " into " +
                std::to_string(parts) + " ordered parts";
      }
    }
    std::vector<std::int64_t> signature = global_;
    signature.insert(signature.end(), split_.begin(), split_.end());
    for (const auto& b : offsets_) {
      signature.push_back(static_cast<std::int64_t>(b.size()));
      signature.insert(signature.end(), b.begin(), b.end());
    }
    const std::string disagree = detail::disagreement(grid_.comm(), signature, {});
    detail::throw_if_any(grid_.comm(), disagree.empty() ? error : where + disagree);
  }

  /// The process grid the array is split over.
  const ProcessGrid& grid() const noexcept { return grid_; }
  /// The array's rank (number of dimensions).
  int rank() const noexcept { return static_cast<int>(global_.size()); }
  /// The global array's extents.
  const std::vector<std::int64_t>& global_extents() const noexcept { return global_; }
  /// The array dimension that each grid dimension splits, in grid-dimension order.
  const std::vector<int>& split_dims() const noexcept { return split_; }
  /// The grid dimension that splits array dimension \p dim, or -1 when it is whole.
  int grid_dim_of(int dim) const { return grid_dim_of_.at(static_cast<std::size_t>(dim)); }
  /// True when array dimension \p dim is split over the grid.
  bool is_split(int dim) const { return grid_dim_of(dim) >= 0; }

  /// Global range of dimension \p dim owned by the rank at grid coordinate \p coord.
  Range owned_at(int dim, int coord) const {
    const int g = grid_dim_of(dim);
    const std::int64_t n = global_.at(static_cast<std::size_t>(dim));
    if (g < 0) return Range{0, n};
    const auto& b = offsets_[static_cast<std::size_t>(g)];
    if (b.empty()) return balanced_split(n, grid_.dims()[static_cast<std::size_t>(g)], coord);
    return Range{b.at(static_cast<std::size_t>(coord)), b.at(static_cast<std::size_t>(coord) + 1)};
  }
  /// The `parts + 1` boundaries of split dimension \p dim (0 first, its extent last).
  std::vector<std::int64_t> boundaries(int dim) const {
    const int g = grid_dim_of(dim);
    const int parts = g < 0 ? 1 : grid_.dims()[static_cast<std::size_t>(g)];
    std::vector<std::int64_t> b{0};
    for (int c = 0; c < parts; ++c) b.push_back(owned_at(dim, c).end);
    return b;
  }
  /// The same grid and split over a tensor of \p global_extents, where every split
  /// dimension d holds `factor[d]` times the layers of this one on each rank (1 where
  /// \p factor is shorter). An upsampler's output keeps its rows on the rank that
  /// computed them. Collective.
  Decomposition refined(std::vector<std::int64_t> global_extents, const std::vector<std::int64_t>& factor = {}) const {
    std::vector<std::vector<std::int64_t>> offsets;
    for (int d : split_) {
      const std::int64_t f = static_cast<std::size_t>(d) < factor.size() ? factor[static_cast<std::size_t>(d)] : 1;
      auto b = boundaries(d);
      for (auto& x : b) x *= f;
      offsets.push_back(std::move(b));
    }
    return Decomposition(grid_, std::move(global_extents), split_, std::move(offsets));
  }
  /// Global range of dimension \p dim owned by this rank.
  Range owned(int dim) const {
    const int g = grid_dim_of(dim);
    return owned_at(dim, g < 0 ? 0 : grid_.coords()[static_cast<std::size_t>(g)]);
  }
  /// Extents of this rank's owned block.
  std::vector<std::int64_t> local_extents() const {
    std::vector<std::int64_t> e(global_.size());
    for (int d = 0; d < rank(); ++d) e[static_cast<std::size_t>(d)] = owned(d).size();
    return e;
  }
  /// Neighbour across \p side of array dimension \p dim (MPI_PROC_NULL when none or not split).
  int neighbor(int dim, Side side, bool wrap = false) const {
    const int g = grid_dim_of(dim);
    return g < 0 ? MPI_PROC_NULL : grid_.neighbor(g, side, wrap);
  }
  /// The index in this rank's owned block (without ghost layers) of global index \p global_index of \p dim.
  std::int64_t to_local(int dim, std::int64_t global_index) const { return global_index - owned(dim).begin; }
  /// The global index of index \p local_index of this rank's owned block along \p dim.
  std::int64_t to_global(int dim, std::int64_t local_index) const { return local_index + owned(dim).begin; }

 private:
  ProcessGrid grid_;
  std::vector<std::int64_t> global_;
  std::vector<int> split_;
  std::vector<std::vector<std::int64_t>> offsets_;  // per split dimension: boundaries, or empty (balanced)
  std::vector<int> grid_dim_of_;
};

/// The split that ML tensors use: rows (H, the second-to-last dimension of an
/// (N, C, [D,] H, W) tensor) in bands over all ranks of \p comm.
inline Decomposition row_decomposition(MPI_Comm comm, std::vector<std::int64_t> global_extents, bool periodic = false) {
  const int rank = static_cast<int>(global_extents.size());
  if (rank < 2) {
    throw std::invalid_argument("khalo::row_decomposition: needs a tensor of rank >= 2, got rank " +
                                std::to_string(rank));
  }
  return Decomposition(ProcessGrid(comm, {0}, {periodic}), std::move(global_extents), {rank - 2});
}

}  // namespace khalo
