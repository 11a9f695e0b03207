#pragma once
/// \file
/// Comparing snapshots (docs/cli.md, khalo-compare): every dataset present
/// in both files, or one named, element by element: bitwise, ULP distance,
/// absolute and relative tolerances. Collective; each rank compares a slab.

#include <khalo/io/snapshot.hpp>

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace khalo::io {

/// What counts as equal, and which datasets to compare (the options of khalo-compare, docs/cli.md §2).
struct CompareOptions {
  double rtol = 0.0;                     ///< |a - b| <= atol + rtol * |b| passes
  double atol = 0.0;                     ///< the absolute part of that tolerance
  std::optional<std::uint64_t> max_ulp;  ///< a ULP distance up to this passes
  bool bitwise = false;                  ///< only identical bits pass (tells -0 from +0, NaN payloads)
  bool nan_equal = false;                ///< NaN equals NaN (never, unless asked)
  std::string dataset;                   ///< compare only this one ("" = all in both files)
};

/// The comparison of one dataset present in both files; the same on every rank.
struct DatasetComparison {
  std::string name;                                         ///< the dataset's path ("/data")
  std::vector<std::int64_t> shape;                          ///< its shape, the same in both files
  DType dtype = DType::float32;                             ///< its element type, the same in both files
  std::int64_t elements = 0;                                ///< the number of elements compared
  std::int64_t mismatches = 0;                              ///< how many of them fail the options' test
  double max_abs = 0.0;                                     ///< over pairs without NaN
  double max_rel = 0.0;                                     ///< |a - b| / |b|; infinite where b = 0 and a != 0
  std::uint64_t max_ulp = 0;                                ///< the largest ULP distance over pairs without NaN
  bool nan_seen = false;                                    ///< some pair held a NaN (its ULP distance is undefined)
  std::optional<std::vector<std::int64_t>> first_mismatch;  ///< logical index, C order
  /// True when no element mismatches.
  bool equal() const { return mismatches == 0; }
};

/// The result of compare_files(): every dataset in both files; the same on every rank.
struct Comparison {
  std::vector<DatasetComparison> datasets;  ///< in file A's order (creation order for khalo's files)
  std::vector<std::string> only_in_a;       ///< datasets of file A that file B lacks (not compared)
  std::vector<std::string> only_in_b;       ///< datasets of file B that file A lacks (not compared)
  /// The first dataset (in file A's order) that differs: for layer dumps, where a run diverged.
  std::optional<std::string> first_divergent;
  /// True when every dataset compared is equal.
  bool equal() const { return !first_divergent.has_value(); }
};

/// Compares \p a and \p b. Throws khalo::io::Error on every rank for a missing
/// file or dataset, a shape or type mismatch, or no dataset in common.
Comparison compare_files(MPI_Comm comm, const std::string& a, const std::string& b, const CompareOptions& options);

/// ULP distance between two finite or infinite values of the same type (0 for +0/-0).
std::uint64_t ulp_distance(float a, float b);
/// ULP distance between two finite or infinite doubles (0 for +0/-0).
std::uint64_t ulp_distance(double a, double b);

}  // namespace khalo::io
