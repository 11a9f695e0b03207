// Snapshot throughput: a collective write (temporary file, fsync, rename) and
// a read of the same global array on this run's ranks, beside one process
// writing the same bytes sequentially with plain POSIX write() + fsync.
// Time = max over ranks, median of repetitions.
//   mpirun -np 2 bench_io [--mib M] [--reps R] [--dir DIR] [--json FILE]
// It also prints where the time goes (medians, slowest rank): the writer's
// constructor, write() (of which the conversion to C order alone, timed apart),
// commit() (close, sync, rename); the reader's constructor (probe) and read().
//
// Both writes go to a name that does not exist: the baseline removes its file
// after each repetition, outside the timed region, and the previous
// repetition's snapshot is removed the same way before the next one is
// written. Otherwise the snapshot's rename would free the old file's blocks
// inside its timed region (synchronously, and slowly on a file system mounted
// with `discard`) while the baseline's own freeing went untimed. What freeing
// costs is timed apart and printed for both ("replacing an old file").
#include <khalo/io/snapshot.hpp>
#include <khalo/runtime.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

double max_over_ranks(double t) {
  double m = 0;
  MPI_Allreduce(&t, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  int mib = 64, reps = 5;
  std::string dir = "/tmp", json;
  for (int i = 1; i + 1 < argc; ++i) {
    if (!std::strcmp(argv[i], "--mib"))
      mib = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps"))
      reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--dir"))
      dir = argv[++i];
    else if (!std::strcmp(argv[i], "--json"))
      json = argv[++i];
  }
  const int rank = runtime.world_rank();
  // (1, C, T, H, W) with H split over the ranks.
  const std::int64_t W = 256, H = 256, T = 4,
                     C = std::max<std::int64_t>(1, static_cast<std::int64_t>(mib) * (1 << 20) / 4 / (W * H * T));
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, C, T, H, W});
  auto band = khalo::allocate<float*****>("band", dec.local_extents(), khalo::MemoryFormat::channels_last_3d);
  Kokkos::deep_copy(band, 1.5f);
  const double bytes = 4.0 * C * T * H * W;
  const std::string path = dir + "/khalo-bench-io.h5";
  std::vector<double> tw, tr, ts, t_open, t_write, t_commit, t_ropen, t_read, t_conv, t_free_snap, t_free_plain;
  for (int r = 0; r < reps + 1; ++r) {
    // The previous repetition's snapshot goes now, untimed, as the baseline's file does below.
    double free_snap = 0;
    if (rank == 0) {
      const double f0 = MPI_Wtime();
      std::remove(path.c_str());
      free_snap = MPI_Wtime() - f0;
    }
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    double p_open = 0, p_write = 0, p_commit = 0, p_ropen = 0, p_read = 0;
    {
      khalo::io::SnapshotWriter w(MPI_COMM_WORLD, path);
      p_open = MPI_Wtime() - t0;
      w.write("/data", dec, band);
      p_write = MPI_Wtime() - t0 - p_open;
      w.commit();
      p_commit = MPI_Wtime() - t0 - p_open - p_write;
    }
    const double write = max_over_ranks(MPI_Wtime() - t0);
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    {
      khalo::io::SnapshotReader rd(MPI_COMM_WORLD, path);
      p_ropen = MPI_Wtime() - t0;
      rd.read("/data", dec, band);
      p_read = MPI_Wtime() - t0 - p_ropen;
    }
    const double read = max_over_ranks(MPI_Wtime() - t0);
    // The conversion to C order alone (what write() does before HDF5 sees the data).
    MPI_Barrier(MPI_COMM_WORLD);
    t0 = MPI_Wtime();
    {
      const auto c_order = khalo::io::detail::host_c_order(band);
      if (c_order.data == nullptr) std::printf("empty\n");
    }
    const double conv = max_over_ranks(MPI_Wtime() - t0);
    // The baseline: one process, the same bytes, sequential write() and fsync().
    double seq = 0, free_plain = 0;
    if (rank == 0) {
      std::vector<char> buf(static_cast<std::size_t>(bytes), 1);
      const std::string plain = dir + "/khalo-bench-io.bin";
      t0 = MPI_Wtime();
      const int fd = ::open(plain.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      std::size_t done = 0;
      while (fd >= 0 && done < buf.size()) {
        const ssize_t n = ::write(fd, buf.data() + done, buf.size() - done);
        if (n <= 0) break;
        done += static_cast<std::size_t>(n);
      }
      if (fd >= 0) {
        ::fsync(fd);
        ::close(fd);
      }
      seq = MPI_Wtime() - t0;
      t0 = MPI_Wtime();
      std::remove(plain.c_str());
      free_plain = MPI_Wtime() - t0;
    }
    seq = max_over_ranks(seq);
    if (r > 0) {  // the first round is warm-up
      tw.push_back(write);
      tr.push_back(read);
      ts.push_back(seq);
      t_open.push_back(max_over_ranks(p_open));
      t_write.push_back(max_over_ranks(p_write));
      t_commit.push_back(max_over_ranks(p_commit));
      t_ropen.push_back(max_over_ranks(p_ropen));
      t_read.push_back(max_over_ranks(p_read));
      t_conv.push_back(conv);
      t_free_snap.push_back(free_snap);
      t_free_plain.push_back(free_plain);
    } else {
      for (double p : {p_open, p_write, p_commit, p_ropen, p_read}) (void)max_over_ranks(p);
    }
  }
  if (rank == 0) std::remove(path.c_str());
  const double w = median(tw), rd = median(tr), s = median(ts);
  if (rank == 0) {
    std::printf(
        "snapshot of %.1f MiB on %d ranks: write %.3f s (%.2f GB/s), read %.3f s (%.2f GB/s); "
        "plain sequential write of the same bytes %.3f s (%.2f GB/s)\n",
        bytes / (1 << 20), runtime.world_size(), w, bytes / w * 1e-9, rd, bytes / rd * 1e-9, s, bytes / s * 1e-9);
    std::printf("  vs plain: write %.2fx, read %.2fx\n", s / w, s / rd);
    std::printf(
        "  where: writer open %.3f s, write() %.3f s (C-order conversion alone %.3f s), commit %.3f s; "
        "reader open %.3f s, read() %.3f s\n",
        median(t_open), median(t_write), median(t_conv), median(t_commit), median(t_ropen), median(t_read));
    std::printf(
        "  replacing an old file (untimed above): removing the previous snapshot %.3f s, the plain file %.3f s\n",
        median(t_free_snap), median(t_free_plain));
    if (!json.empty()) {
      std::ofstream o(json);
      o << "[{\"bench\": \"snapshot_io\", \"ranks\": " << runtime.world_size() << ", \"bytes\": " << bytes
        << ", \"write_median_s\": " << w << ", \"read_median_s\": " << rd << ", \"plain_write_median_s\": " << s
        << ", \"dir\": \"" << dir << "\"}]\n";
    }
  }
  return 0;
}
