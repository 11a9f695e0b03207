#pragma once
// Shared by the snapshot tests: the message every rank got, and a small sample file.
#include <khalo/decomposition.hpp>
#include <khalo/io/snapshot.hpp>
#include <test_views.hpp>

#include <gtest/gtest.h>
#include <mpi.h>

#include <string>

namespace khalo::test {

/// The io::Error message \p f throws ("" when none); expects every rank to get one of the same length.
template <class F>
std::string error_of(F f) {
  std::string message;
  try {
    f();
  } catch (const khalo::io::Error& e) {
    message = e.what();
  }
  int len = static_cast<int>(message.size()), lo = 0, hi = 0;
  MPI_Allreduce(&len, &lo, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  MPI_Allreduce(&len, &hi, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  EXPECT_EQ(lo, hi) << "ranks got different messages; mine: " << message;
  return message;
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

/// A snapshot whose /data (1, 2, 2, H, 3) holds \p value everywhere (H = 2 x ranks unless given).
inline void write_sample(const std::string& path, float value, std::int64_t h = 0) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, h > 0 ? h : 2 * world_size(), 3});
  auto v = khalo::allocate<float*****>("v", dec.local_extents(), khalo::MemoryFormat::contiguous);
  Kokkos::deep_copy(v, value);
  khalo::io::SnapshotWriter w(MPI_COMM_WORLD, path);
  w.write("/data", dec, v);
  w.commit();
}

/// The first value of the sample's /data.
inline float read_sample_value(const std::string& path) {
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size(), 3});
  auto v = khalo::allocate<float*****>("v", dec.local_extents(), khalo::MemoryFormat::contiguous);
  khalo::io::SnapshotReader r(MPI_COMM_WORLD, path);
  r.read("/data", dec, v);
  return khalo::test::to_logical(v).front();
}

}  // namespace khalo::test
