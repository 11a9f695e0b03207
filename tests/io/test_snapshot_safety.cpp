// Snapshot I/O under failure (issue 14): untrusted files are vetted by the
// khalo-h5probe helper, whose every bad outcome ends every rank alike; sizes a
// file claims are checked before anything is sized by them; HDF5's error
// printing belongs to the host application; a commit is durable on every rank
// before the rename; stale temporaries are cleaned up.
#include <khalo/decomposition.hpp>
#include <khalo/io/snapshot.hpp>
#include <temp_dir.hpp>
#include <test_views.hpp>

#include "snapshot_checks.hpp"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <hdf5.h>
#include <mpi.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <utime.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

// Every MPI_File_sync khalo makes passes here (the MPI profiling interface): the commit test counts them
// and records whether the target had already been replaced when they ran.
namespace {
int file_syncs = 0;
std::string sync_watch;  // a target that must not exist yet while its temporary is synced
bool target_seen_at_sync = false;
int writebacks = 0;                  // sync_file_range calls (the writer's early writeback, a mere hint)
int syncs_after_last_writeback = 0;  // MPI_File_sync calls since the last of them
}  // namespace
extern "C" int MPI_File_sync(MPI_File fh) {
  ++file_syncs;
  ++syncs_after_last_writeback;
  if (!sync_watch.empty() && std::filesystem::exists(sync_watch)) target_seen_at_sync = true;
  return PMPI_File_sync(fh);
}
// And every sync_file_range (glibc's, replaced in this program; the call itself goes on to the kernel).
extern "C" int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags) noexcept {
  ++writebacks;
  syncs_after_last_writeback = 0;
  return static_cast<int>(::syscall(SYS_sync_file_range, fd, offset, nbytes, flags));
}

namespace {

namespace fs = std::filesystem;
using khalo::io::SnapshotReader;
using khalo::io::SnapshotWriter;
using khalo::test::error_of;
using khalo::test::read_sample_value;
using khalo::test::world_rank;
using khalo::test::world_size;
using khalo::test::write_sample;
using TempDir = khalo::test::SharedTempDir;
using khalo::test::ScopedEnv;
using khalo::test::write_script;

// Rank 0 makes an HDF5 file with \p make(file id); every rank waits for it.
template <class F>
void make_file(const std::string& path, F make) {
  if (world_rank() == 0) {
    hid_t f = H5Fcreate(path.c_str(), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    make(f);
    H5Fclose(f);
  }
  MPI_Barrier(MPI_COMM_WORLD);
}

// ------------------------------------------------------------ the probe helper

// What khalo-h5probe says about a file is what the reader does; a stand-in helper plays each outcome.
TEST(SnapshotProbe, HelperCrashIsADamagedFileOnEveryRank) {
  TempDir dir;
  write_sample(dir.file("s.h5"), 1.0f);
  // The stand-in records how it was started: the file as its one argument, in a process of its own.
  const std::string crash = write_script(dir, "crash.sh", "echo \"$$ $#: $1\" > \"$0.args\"\nkill -SEGV $$");
  ScopedEnv env("KHALO_H5PROBE", crash);
  const std::string e = error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5")); });
  EXPECT_CONTAINS(e, "khalo::io::SnapshotReader: '" + dir.file("s.h5") + "': damaged file");
  EXPECT_CONTAINS(e, "crashed");
  if (world_rank() == 0) {
    std::string pid, rest;
    std::ifstream(crash + ".args") >> pid >> rest;
    EXPECT_NE(pid, std::to_string(::getpid())) << "the probe ran in the MPI process";
    EXPECT_EQ(rest, "1:");
  }
}

TEST(SnapshotProbe, HelperThatDoesNotEndIsADamagedFile) {
  TempDir dir;
  write_sample(dir.file("s.h5"), 1.0f);
  ScopedEnv env("KHALO_H5PROBE", write_script(dir, "hang.sh", "exec sleep 60"));
  ScopedEnv limit("KHALO_H5PROBE_TIMEOUT", "1");
  const auto start = std::chrono::steady_clock::now();
  const std::string e = error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5")); });
  EXPECT_CONTAINS(e, "damaged file (reading its metadata did not end within 1 s)");
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(20));
}

TEST(SnapshotProbe, MissingOrWrongHelperIsAClearError) {
  TempDir dir;
  write_sample(dir.file("s.h5"), 1.0f);
  {
    ScopedEnv env("KHALO_H5PROBE", dir.file("no-such-helper"));
    EXPECT_CONTAINS(error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5")); }),
                    "cannot check the file: KHALO_H5PROBE='" + dir.file("no-such-helper") + "'");
  }
  {
    ScopedEnv env("KHALO_H5PROBE", write_script(dir, "mute.sh", "exit 0"));
    EXPECT_CONTAINS(error_of([&] { SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5")); }),
                    "did not answer as khalo-h5probe (exit 0, no output)");
  }
  {
    ScopedEnv env("KHALO_H5PROBE", "none");  // the documented way to trust every file
    EXPECT_EQ(read_sample_value(dir.file("s.h5")), 1.0f);
  }
  // Without the variable, the helper linked into this program is found (the build tree's).
  EXPECT_EQ(read_sample_value(dir.file("s.h5")), 1.0f);
}

// ------------------------------------------------------------ sizes and shapes a file claims

// A dataset may declare a dataspace far larger than anything written: 10^15 float32 values (4 PB) in
// chunks that were never allocated. Asking about it must not try to size anything by it.
TEST(SnapshotUntrusted, HugeDeclaredDatasetIsRefused) {
  TempDir dir;
  const std::string path = dir.file("huge.h5");
  make_file(path, [](hid_t f) {
    const hsize_t dims[5] = {1000, 1000, 1000, 1000, 1000};
    const hsize_t chunk[5] = {1, 1, 1, 1, 1000};
    hid_t s = H5Screate_simple(5, dims, nullptr);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_chunk(dcpl, 5, chunk);
    H5Pset_alloc_time(dcpl, H5D_ALLOC_TIME_LATE);
    hid_t d = H5Dcreate2(f, "huge", H5T_IEEE_F32LE, s, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Dclose(d);
    H5Pclose(dcpl);
    H5Sclose(s);
  });
  SnapshotReader r(MPI_COMM_WORLD, path);
  EXPECT_EQ(r.datasets(), std::vector<std::string>{"/huge"});
  const std::string e = error_of([&] { (void)r.info("huge"); });
  EXPECT_CONTAINS(e, "dataset '/huge': claims 1000000000000000 elements (4000000000000000 bytes");
  EXPECT_CONTAINS(e, "bytes of memory of all nodes of this job; refused");
  std::vector<float> one(1);
  EXPECT_CONTAINS(error_of([&] {
                    r.read_raw("huge", {}, {{0, 0, 0, 0, 0}, {1, 1, 1, 1, 1}}, one.data(), khalo::io::DType::float32);
                  }),
                  "claims 1000000000000000 elements");
}

// khalo's attributes are one value; a file may give them any number. Before, the reader read them into
// one value's storage.
TEST(SnapshotUntrusted, AttributesOfManyValuesReadAsAbsent) {
  TempDir dir;
  const std::string path = dir.file("attrs.h5");
  make_file(path, [](hid_t f) {
    const hsize_t n = 4;
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(f, "data", H5T_IEEE_F32LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const float v[4] = {1, 2, 3, 4};
    H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    const hsize_t many = 4096;
    hid_t as = H5Screate_simple(1, &many, nullptr);
    std::vector<std::int64_t> ranks(many, 7);
    hid_t a = H5Acreate2(d, "ranks", H5T_STD_I64LE, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, H5T_NATIVE_INT64, ranks.data());
    H5Aclose(a);
    hid_t st = H5Tcopy(H5T_C_S1);
    H5Tset_size(st, 8);
    std::vector<char> text(8 * many, 'x');
    a = H5Acreate2(d, "memory_format", st, as, H5P_DEFAULT, H5P_DEFAULT);
    H5Awrite(a, st, text.data());
    H5Aclose(a);
    H5Tclose(st);
    H5Sclose(as);
    H5Dclose(d);
    H5Sclose(s);
  });
  SnapshotReader r(MPI_COMM_WORLD, path);
  const auto info = r.info("data");
  EXPECT_EQ(info.ranks, 0);
  EXPECT_EQ(info.memory_format, "");
  EXPECT_EQ(info.shape, std::vector<std::int64_t>{4});
}

// Hard links may make a group its own descendant (legal HDF5; h5py makes them). Listing ends.
TEST(SnapshotUntrusted, GroupCycleIsListedOnce) {
  TempDir dir;
  const std::string path = dir.file("cycle.h5");
  make_file(path, [](hid_t f) {
    hid_t g = H5Gcreate2(f, "g", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const hsize_t n = 2;
    hid_t s = H5Screate_simple(1, &n, nullptr);
    hid_t d = H5Dcreate2(g, "x", H5T_IEEE_F64LE, s, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    const double v[2] = {1, 2};
    H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v);
    H5Lcreate_hard(f, "/g", g, "loop", H5P_DEFAULT, H5P_DEFAULT);
    H5Dclose(d);
    H5Sclose(s);
    H5Gclose(g);
  });
  SnapshotReader r(MPI_COMM_WORLD, path);
  EXPECT_EQ(r.datasets(), std::vector<std::string>{"/g/x"});
  EXPECT_EQ(r.info("/g/loop/x").shape, std::vector<std::int64_t>{2});
}

// ------------------------------------------------------------ HDF5's error printing is the host's

int host_prints = 0;
herr_t count_print(hid_t, void*) {
  ++host_prints;
  return 0;
}

TEST(SnapshotUntrusted, HostHdf5ErrorPrintingIsLeftAlone) {
  TempDir dir;
  write_sample(dir.file("t.h5"), 1.0f);
  if (world_rank() == 0) fs::resize_file(dir.file("t.h5"), fs::file_size(dir.file("t.h5")) / 2);
  MPI_Barrier(MPI_COMM_WORLD);
  H5E_auto2_t saved = nullptr;
  void* saved_data = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &saved, &saved_data);
  int marker = 0;
  H5Eset_auto2(H5E_DEFAULT, count_print, &marker);
  host_prints = 0;
  // khalo meets HDF5 errors here (a truncated file, a missing dataset) and reports them itself.
  EXPECT_CONTAINS(error_of([&] { (void)read_sample_value(dir.file("t.h5")); }), "khalo::io::SnapshotReader");
  write_sample(dir.file("s.h5"), 1.0f);
  SnapshotReader r(MPI_COMM_WORLD, dir.file("s.h5"));
  EXPECT_FALSE(r.has("/no/such/dataset"));
  EXPECT_CONTAINS(error_of([&] { (void)r.info("/no/such/dataset"); }), "no such dataset");
  EXPECT_EQ(host_prints, 0) << "HDF5 printed an error of khalo's own calls";
  H5E_auto2_t now = nullptr;
  void* now_data = nullptr;
  H5Eget_auto2(H5E_DEFAULT, &now, &now_data);
  EXPECT_TRUE(now == count_print && now_data == &marker) << "khalo changed the application's HDF5 error printing";
  // The application's own failing call still reaches its handler.
  EXPECT_LT(H5Fopen(dir.file("absent.h5").c_str(), H5F_ACC_RDONLY, H5P_DEFAULT), 0);
  EXPECT_GT(host_prints, 0);
  H5Eset_auto2(H5E_DEFAULT, saved, saved_data);
}

// ------------------------------------------------------------ the commit

TEST(SnapshotCommit, EveryRankSyncsBeforeTheRename) {
  TempDir dir;
  const std::string path = dir.file("durable.h5");
  sync_watch = path;
  target_seen_at_sync = false;
  const int before = file_syncs;
  write_sample(path, 2.0f);
  sync_watch.clear();
  const int mine = file_syncs - before;
  int fewest = 0;
  MPI_Allreduce(&mine, &fewest, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  EXPECT_GE(fewest, 1) << "a rank committed without syncing its writes";
  EXPECT_FALSE(target_seen_at_sync) << "the target was replaced before every rank had synced";
  EXPECT_EQ(read_sample_value(path), 2.0f);
}

// The writer starts the disk writing each piece as soon as it is written (sync_file_range), but that only
// hints: durability still comes from the commit's MPI_File_sync on every rank, after the last piece and
// before the rename. A block in another memory format goes in several pieces; so does one in C order.
TEST(SnapshotCommit, EarlyWritebackDoesNotReplaceTheSync) {
  TempDir dir;
  const std::string path = dir.file("pieces.h5");
  const std::vector<std::int64_t> global{1, 144, 4, 64 * world_size(), 160};  // 22.5 MiB per rank: 3 pieces
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, global);
  for (const auto format : {khalo::MemoryFormat::channels_last_3d, khalo::MemoryFormat::contiguous}) {
    auto v = khalo::allocate<float*****>("v", dec.local_extents(), format);
    Kokkos::deep_copy(v, 5.0f);
    if (world_rank() == 0) fs::remove(path);
    MPI_Barrier(MPI_COMM_WORLD);
    sync_watch = path;
    target_seen_at_sync = false;
    const int writebacks_before = writebacks;
    {
      SnapshotWriter w(MPI_COMM_WORLD, path);
      w.write("/data", dec, v);
      w.commit();
    }
    sync_watch.clear();
    int mine[2] = {writebacks - writebacks_before, syncs_after_last_writeback}, fewest[2] = {};
    MPI_Allreduce(mine, fewest, 2, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
#ifdef __linux__
    EXPECT_GE(fewest[0], 3) << "a rank wrote its pieces without starting their writeback";
#endif
    EXPECT_GE(fewest[1], 1) << "a rank did not sync after the last piece's writeback had been started";
    EXPECT_FALSE(target_seen_at_sync) << "the target was replaced before every rank had synced";
    auto back = khalo::allocate<float*****>("back", dec.local_extents(), khalo::MemoryFormat::contiguous);
    SnapshotReader r(MPI_COMM_WORLD, path);
    r.read("/data", dec, back);
    const auto values = khalo::test::to_logical(back);
    EXPECT_EQ(std::count(values.begin(), values.end(), 5.0f), static_cast<std::ptrdiff_t>(values.size()));
  }
}

void back_date(const std::string& path, long seconds) {
  const auto when = std::time(nullptr) - seconds;
  utimbuf t{when, when};
  ::utime(path.c_str(), &t);
}

TEST(SnapshotCommit, StaleTemporariesOfTheTargetAreRemoved) {
  TempDir dir;
  const std::string target = dir.file("t.h5");
  char host[256] = {};
  ::gethostname(host, sizeof(host) - 1);
  const std::string stale = ".t.h5.khalo-tmp-123-456@elsewhere";
  const std::string stale_old_name = ".t.h5.khalo-tmp-77-88";  // named before hosts were recorded
  const std::string fresh = ".t.h5.khalo-tmp-124-457@elsewhere";
  const std::string live = ".t.h5.khalo-tmp-" + std::to_string(::getpid()) + "-1@" + host;  // a live writer here
  const std::string other_target = ".u.h5.khalo-tmp-125-458@elsewhere";
  const std::string lookalike = ".t.h5.khalo-tmp-notes";
  if (world_rank() == 0) {
    for (const auto& name : {stale, stale_old_name, fresh, live, other_target, lookalike}) {
      std::ofstream(dir.file(name)) << "left by a killed writer\n";
      // The fresh one is stamped ahead of this host's clock, as the kernel's finer clock may do
      // at a second's turn: its age is 0, not negative (which made the last check below flaky).
      back_date(dir.file(name), name == fresh ? -2 : 2 * 3600);
    }
    ::testing::internal::CaptureStderr();
  }
  write_sample(target, 1.0f);
  if (world_rank() == 0) {
    const std::string log = ::testing::internal::GetCapturedStderr();
    EXPECT_FALSE(fs::exists(dir.file(stale)));
    EXPECT_FALSE(fs::exists(dir.file(stale_old_name)));
    EXPECT_TRUE(fs::exists(dir.file(fresh))) << "a temporary younger than the stale age was removed";
    EXPECT_TRUE(fs::exists(dir.file(live))) << "the temporary of a live writer on this host was removed";
    EXPECT_TRUE(fs::exists(dir.file(other_target))) << "another target's temporary was removed";
    EXPECT_TRUE(fs::exists(dir.file(lookalike)));
    EXPECT_CONTAINS(log, "khalo::io::SnapshotWriter: '" + target + "': removed 2 stale temporaries older than 3600 s:");
    EXPECT_CONTAINS(log, stale);
    EXPECT_CONTAINS(log, stale_old_name);
    EXPECT_EQ(std::count(log.begin(), log.end(), '\n'), 1) << log;
  }
  // The age is the environment's to change: at 0 s, the fresh one goes too.
  {
    ScopedEnv age("KHALO_STALE_TEMP_SECONDS", "0");
    write_sample(target, 2.0f);
  }
  if (world_rank() == 0) EXPECT_FALSE(fs::exists(dir.file(fresh)));
  EXPECT_EQ(read_sample_value(target), 2.0f);
}

// A writer destroyed while every rank unwinds (an exception from outside it) leaves the target as it
// was and no temporary, and nothing waits: the next collective works.
TEST(SnapshotCommit, WriterUnwoundEverywhereLeavesTheTarget) {
  TempDir dir;
  const std::string path = dir.file("keep.h5");
  write_sample(path, 3.0f);
  try {
    const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 2, 2, 2 * world_size(), 3});
    auto v = khalo::allocate<float*****>("v", dec.local_extents(), khalo::MemoryFormat::contiguous);
    Kokkos::deep_copy(v, 9.0f);
    SnapshotWriter w(MPI_COMM_WORLD, path);
    w.write("/data", dec, v);
    throw std::runtime_error("the application failed before commit");
  } catch (const std::runtime_error&) {
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int entries = 0;
  for (const auto& entry : fs::directory_iterator(dir.path())) entries += 1 + 0 * entry.is_regular_file();
  EXPECT_EQ(entries, 1) << "a temporary was left beside the target";
  EXPECT_EQ(read_sample_value(path), 3.0f);
}

}  // namespace
