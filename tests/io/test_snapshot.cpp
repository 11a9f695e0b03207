// Snapshots: written on P ranks in one layout, read on Q ranks in another,
// bit for bit; the contract's attributes; and every kind of bad input ends
// every rank with the same io::Error, never a crash or a damaged file.
#include <khalo/decomposition.hpp>
#include <khalo/io/snapshot.hpp>
#include <temp_dir.hpp>
#include <test_views.hpp>

#include "snapshot_checks.hpp"

#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

namespace {

namespace fs = std::filesystem;
using khalo::io::SnapshotReader;
using khalo::io::SnapshotWriter;
using khalo::test::Index;
using khalo::test::ptr_t;
using khalo::test::world_rank;
using khalo::test::world_size;

using TempDir = khalo::test::SharedTempDir;

// A communicator of the first n ranks (MPI_COMM_NULL elsewhere).
MPI_Comm first_ranks(int n) {
  MPI_Comm c = MPI_COMM_NULL;
  MPI_Comm_split(MPI_COMM_WORLD, world_rank() < n ? 0 : MPI_UNDEFINED, world_rank(), &c);
  return c;
}

template <class P>
class SnapshotLayouts : public ::testing::Test {};
TYPED_TEST_SUITE(SnapshotLayouts, khalo::test::LayoutsAndTypes, khalo::test::ParamNames);

// Writer: this layout, P ranks; reader: channels-last or contiguous, Q ranks.
TYPED_TEST(SnapshotLayouts, RoundTripOnAnyRankCounts) {
  using Case = typename TypeParam::layout_case;
  using T = typename TypeParam::value_type;
  TempDir dir;
  const Index global{1, 3, 2, 7, 5};
  for (int p = 1; p <= world_size(); ++p) {
    const std::string path = dir.file("p" + std::to_string(p) + ".h5");
    if (MPI_Comm c = first_ranks(p); c != MPI_COMM_NULL) {
      const auto dec = khalo::row_decomposition(c, global);
      auto band = Case::template make<ptr_t<T, 5>>("band", dec.local_extents());
      const auto first = dec.owned(3).begin;
      khalo::test::fill(band, [&](Index i) {
        i[3] += first;
        return khalo::test::value_at(i);
      });
      SnapshotWriter w(c, path);
      w.write("/data", dec, band, 42);
      w.write("/layers/second", dec, band);
      w.commit();
      MPI_Comm_free(&c);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    for (int q = 1; q <= world_size(); ++q) {
      MPI_Comm c = first_ranks(q);
      if (c == MPI_COMM_NULL) continue;
      const auto dec = khalo::row_decomposition(c, global);
      auto into = khalo::allocate<ptr_t<T, 5>>(
          "into", dec.local_extents(), q % 2 ? khalo::MemoryFormat::channels_last_3d : khalo::MemoryFormat::contiguous);
      SnapshotReader r(c, path);
      EXPECT_EQ(r.datasets(), (std::vector<std::string>{"/data", "/layers/second"}));
      const auto info = r.info("/data");
      EXPECT_EQ(info.shape, global);
      EXPECT_EQ(info.dtype, khalo::io::dtype_of<T>());
      EXPECT_EQ(info.ranks, p);
      EXPECT_EQ(info.step, std::optional<std::int64_t>(42));
      EXPECT_FALSE(r.info("/layers/second").step.has_value());
      r.read("/data", dec, into);
      const auto first = dec.owned(3).begin;
      std::vector<T> want;
      khalo::test::for_each_index(dec.local_extents(), [&](Index i) {
        i[3] += first;
        want.push_back(static_cast<T>(khalo::test::value_at(i)));
      });
      EXPECT_EQ(khalo::test::to_logical(into), want) << "written on " << p << ", read on " << q;
      MPI_Comm_free(&c);
    }
  }
}

// A block larger than SnapshotWriter::piece_bytes goes to the file in several pieces (ranks may have
// different numbers of them), from a View in another memory format (write() converts piece by piece) and
// from one already in C order (write_raw() writes piece by piece); the file must hold the same values in
// the same places.
TEST(Snapshot, LargeBlocksGoInPiecesBitForBit) {
  TempDir dir;
  const Index global{1, 64, 4, 3 * world_size() + 131, 160};  // 2.7M+ floats per rank at 2 ranks, > 8 MiB
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, global);
  const auto first = dec.owned(3).begin;
  std::vector<float> want;
  khalo::test::for_each_index(dec.local_extents(), [&](Index i) {
    i[3] += first;
    want.push_back(static_cast<float>(khalo::test::value_at(i)));
  });
  for (const auto format : {khalo::MemoryFormat::channels_last_3d, khalo::MemoryFormat::contiguous}) {
    const std::string path = dir.file("large-" + to_string(format) + ".h5");
    auto band = khalo::allocate<float*****>("band", dec.local_extents(), format);
    khalo::test::fill(band, [&](Index i) {
      i[3] += first;
      return khalo::test::value_at(i);
    });
    {
      SnapshotWriter w(MPI_COMM_WORLD, path);
      w.write("/data", dec, band);
      w.commit();
    }
    auto into = khalo::allocate<float*****>("into", dec.local_extents(), khalo::MemoryFormat::contiguous);
    SnapshotReader r(MPI_COMM_WORLD, path);
    r.read("/data", dec, into);
    EXPECT_EQ(khalo::test::to_logical(into), want) << to_string(format);
  }
}

// The pieces a block is written in: together they are the block, each element once, in file order; a
// piece is at most the target, except one cache line of the View's fastest dimension (with everything
// inside it), at most 4 x the target; that dimension is cut in whole lines only; and a piece whose cuts
// are all one index at a time but the last is one contiguous stretch in C order (one run in the file).
void check_plan(const std::vector<std::int64_t>& ext, std::int64_t target, std::size_t line_dim, std::int64_t line) {
  SCOPED_TRACE(::testing::PrintToString(ext) + " target " + std::to_string(target) + " line_dim " +
               std::to_string(line_dim) + " line " + std::to_string(line));
  const auto strides = khalo::io::detail::c_order_strides(ext);
  const auto plan = khalo::io::detail::plan_pieces(ext, strides, target, line_dim, line);
  bool contiguous = true, line_cut = false;
  for (std::size_t k = 0; k < plan.cuts.size(); ++k) {
    contiguous = contiguous && (k + 1 == plan.cuts.size() || plan.cuts[k].run == 1);
    if (plan.cuts[k].dim == line_dim && line > 1) {
      line_cut = true;
      EXPECT_TRUE(plan.cuts[k].run % line == 0 || plan.cuts[k].run == ext[line_dim]) << "run " << plan.cuts[k].run;
    }
  }
  std::vector<int> seen(static_cast<std::size_t>(khalo::detail::element_count(ext)), 0);
  std::int64_t largest = 0, previous = -1;
  for (std::int64_t i = 0; i < plan.count; ++i) {
    const auto piece = plan.piece(i);
    std::int64_t begin = 0, end = 0, n = 1;
    for (std::size_t d = 0; d < ext.size(); ++d) {
      ASSERT_GE(piece.offset[d], 0);
      ASSERT_GE(piece.count[d], 1);
      ASSERT_LE(piece.offset[d] + piece.count[d], ext[d]);
      begin += piece.offset[d] * strides[d];
      end += (piece.offset[d] + piece.count[d] - 1) * strides[d];
      n *= piece.count[d];
    }
    EXPECT_GT(begin, previous) << "piece " << i << " is out of file order";
    previous = begin;
    if (contiguous) EXPECT_EQ(end + 1 - begin, n) << "piece " << i << " is not contiguous in C order";
    khalo::test::for_each_index(piece.count, [&](Index j) {
      std::int64_t at = 0;
      for (std::size_t d = 0; d < ext.size(); ++d) at += (piece.offset[d] + j[d]) * strides[d];
      ++seen[static_cast<std::size_t>(at)];
    });
    largest = std::max(largest, n);
  }
  EXPECT_EQ(std::count(seen.begin(), seen.end(), 1), static_cast<std::ptrdiff_t>(seen.size()))
      << "the pieces are not the block, each element once";
  EXPECT_EQ(largest, plan.max_elements);
  EXPECT_LE(plan.max_elements, line_cut ? std::max(4 * target, line) : target);
}

TEST(Snapshot, PiecesAreContiguousInTheFile) {
  // bench_io's block on one rank, channels last: 16 channels of 1 MiB each, 16 pieces of 16 MiB, each one
  // contiguous run in the file.
  const std::vector<std::int64_t> bench{1, 256, 4, 256, 256};
  const auto plan = khalo::io::detail::plan_pieces(bench, khalo::io::detail::c_order_strides(bench), 2 << 20, 1, 16);
  EXPECT_EQ(plan.count, 16);
  ASSERT_EQ(plan.cuts.size(), 1u);
  EXPECT_EQ(plan.cuts[0].dim, 1u);
  EXPECT_EQ(plan.cuts[0].run, 16);
  EXPECT_EQ(plan.max_elements, 4 << 20);
  // The same, scaled down 64 x, element by element; and from a contiguous View (fastest along W).
  check_plan({1, 256, 4, 32, 32}, 32768, 1, 16);
  check_plan({1, 256, 4, 32, 32}, 32768, 4, 16);
  // Channels so large that 16 of them are more than 4 x the target: 16 channels, cut inside.
  check_plan({1, 32, 4, 64, 64}, 2048, 1, 16);
  std::mt19937 rng(7);
  for (int k = 0; k < 300; ++k) {
    std::vector<std::int64_t> ext(5);
    for (auto& e : ext) e = 1 + static_cast<std::int64_t>(rng() % 12);
    const auto target = 1 + static_cast<std::int64_t>(rng() % 3000);
    check_plan(ext, target, static_cast<std::size_t>(rng() % 5), 1 + static_cast<std::int64_t>(rng() % 16));
  }
}

TEST(Snapshot, MemoryFormatAttributeIsTheWriters) {
  TempDir dir;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 4, 2, 2 * world_size(), 3});
  auto cl = khalo::allocate<float*****>("cl", dec.local_extents(), khalo::MemoryFormat::channels_last_3d);
  SnapshotWriter w(MPI_COMM_WORLD, dir.file("f.h5"));
  w.write("data", dec, cl);
  w.commit();
  SnapshotReader r(MPI_COMM_WORLD, dir.file("f.h5"));
  EXPECT_EQ(r.info("data").memory_format, "channels_last_3d");
}

// Rank 0 writes a file the way h5py would: no khalo attributes, float64, nested.
TEST(Snapshot, ReadsFilesKhaloDidNotWrite) {
  TempDir dir;
  const std::string path = dir.file("foreign.h5");
  if (world_rank() == 0) {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    hid_t g = H5Gcreate2(f, "group", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t dims[2] = {4, 3};
    hid_t s = H5Screate_simple(2, dims, nullptr);
    hid_t d = H5Dcreate2(g, "x", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    double v[12];
    for (int i = 0; i < 12; ++i) v[i] = i * 0.25;
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Dclose(d);
    H5Sclose(s);
    H5Gclose(g);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  SnapshotReader r(MPI_COMM_WORLD, path);
  EXPECT_EQ(r.datasets(), std::vector<std::string>{"/group/x"});
  const auto info = r.info("/group/x");
  EXPECT_EQ(info.memory_format, "");
  EXPECT_EQ(info.ranks, 0);
  const auto dec = khalo::Decomposition(khalo::ProcessGrid::balanced(MPI_COMM_WORLD, 1), {4, 3}, {0});
  auto v = khalo::test::LeftCase::make<double**>("v", dec.local_extents());
  r.read("/group/x", dec, v);
  std::vector<double> want;
  for (auto i = dec.owned(0).begin; i < dec.owned(0).end; ++i)
    for (int j = 0; j < 3; ++j) want.push_back((i * 3 + j) * 0.25);
  EXPECT_EQ(khalo::test::to_logical(v), want);
}

// ------------------------------------------------------------ bad input

using khalo::test::error_of;
using khalo::test::read_sample_value;
using khalo::test::write_sample;

TEST(SnapshotErrors, MissingFileNotHdf5AndTruncated) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("nope.h5")); }), "no such file");
  if (world_rank() == 0) std::ofstream(dir.file("text.h5")) << "hello, I am not HDF5\n";
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_CONTAINS(error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("text.h5")); }), "not an HDF5 file");
  write_sample(dir.file("t.h5"), 1.0f);
  if (world_rank() == 0) fs::resize_file(dir.file("t.h5"), fs::file_size(dir.file("t.h5")) / 2);
  MPI_Barrier(MPI_COMM_WORLD);
  const std::string e = error_of([&] { read_sample_value(dir.file("t.h5")); });
  EXPECT_CONTAINS(e, "khalo::io::SnapshotReader");
}

TEST(SnapshotErrors, WrongDatasetShapeAndType) {
  TempDir dir;
  write_sample(dir.file("s.h5"), 2.0f);
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size(), 3});
  auto v = khalo::allocate<float*****>("v", dec.local_extents(), khalo::MemoryFormat::contiguous);
  auto d = khalo::allocate<double*****>("d", dec.local_extents(), khalo::MemoryFormat::contiguous);
  SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5"));
  EXPECT_CONTAINS(error_of([&] { r.read("/missing", dec, v); }), "dataset '/missing': no such dataset");
  EXPECT_CONTAINS(error_of([&] { r.read("/data", dec, d); }), "holds float32 values, expected float64");
  const auto other = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size() + 1, 3});
  auto w = khalo::allocate<float*****>("w", other.local_extents(), khalo::MemoryFormat::contiguous);
  EXPECT_CONTAINS(error_of([&] { r.read("/data", other, w); }), "has shape");
  // A block that is not the rank's owned one, on one rank only: all ranks fail alike.
  if (world_rank() == 0) {
    auto wrong = khalo::allocate<float*****>("x", {1, 2, 2, 5, 3}, khalo::MemoryFormat::contiguous);
    EXPECT_CONTAINS(error_of([&] { r.read("/data", dec, wrong); }), "other extents");
  } else {
    EXPECT_CONTAINS(error_of([&] { r.read("/data", dec, v); }), "other extents");
  }
}

TEST(SnapshotErrors, FailedWriteLeavesThePreviousFile) {
  TempDir dir;
  const std::string path = dir.file("keep.h5");
  write_sample(path, 3.0f);
  EXPECT_CONTAINS(error_of([&] {
                    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size(), 3});
                    auto v = khalo::allocate<float*****>("v", dec.local_extents(), khalo::MemoryFormat::contiguous);
                    SnapshotWriter w(MPI_COMM_WORLD, path);
                    w.write("/data", dec, v);
                    w.write("/data", dec, v);  // twice: an error before commit
                    w.commit();
                  }),
                  "already written");
  EXPECT_EQ(read_sample_value(path), 3.0f);
  // No temporary file is left behind either.
  MPI_Barrier(MPI_COMM_WORLD);
  int files = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(path).parent_path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 1);
  // An overwrite that completes replaces the contents.
  write_sample(path, 4.0f);
  EXPECT_EQ(read_sample_value(path), 4.0f);
}

TEST(SnapshotErrors, UnwritableTarget) {
  TempDir dir;
  EXPECT_CONTAINS(error_of([&] { SnapshotWriter w(MPI_COMM_WORLD, dir.file("no/such/dir/x.h5")); }), "does not exist");
  EXPECT_CONTAINS(error_of([&] { SnapshotWriter w(MPI_COMM_WORLD, dir.file("")); }), "khalo::io::SnapshotWriter");
}

// Random bytes flipped in a valid snapshot: an io::Error or (data-only damage)
// a successful read, never a crash. Run under the sanitizers in CI.
TEST(SnapshotErrors, RandomCorruptionNeverCrashes) {
  TempDir dir;
  const std::string good = dir.file("good.h5");
  write_sample(good, 5.0f);
  int errors = 0;
  const char* env = std::getenv("KHALO_CORRUPTION_SEEDS");  // more for a longer hunt
  const int seeds = env != nullptr ? std::atoi(env) : 40;
  for (int seed = 0; seed < seeds; ++seed) {
    const std::string bad = dir.file("bad.h5");
    if (world_rank() == 0) {
      fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
      std::fstream f(bad, std::ios::in | std::ios::out | std::ios::binary);
      const auto size = static_cast<std::size_t>(fs::file_size(bad));
      std::mt19937 rng(static_cast<unsigned>(seed));
      for (int k = 0; k < 1 + seed % 8; ++k) {
        // Mostly in the metadata at the front, where damage matters most.
        const std::size_t at = rng() % (seed % 2 ? size : std::min<std::size_t>(size, 2048));
        f.seekp(static_cast<std::streamoff>(at));
        const char byte = static_cast<char>(rng() & 0xff);
        f.write(&byte, 1);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    try {
      SnapshotReader r(MPI_COMM_WORLD, bad);
      for (const auto& name : r.datasets()) (void)r.info(name);
      (void)read_sample_value(bad);
    } catch (const khalo::io::Error&) {
      ++errors;
    }
  }
  if (world_rank() == 0)
    std::printf("corrupted files: %d of %d refused with io::Error, the rest read\n", errors, seeds);
  EXPECT_GT(errors, 0);
}

}  // namespace
