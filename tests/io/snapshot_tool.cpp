// A test helper for the crash-safety check (kill_writer.sh):
//   snapshot_tool write PATH VALUE MIB   writes a MIB-sized /data of VALUE, printing
//                                        "writing" before the large write starts
//   snapshot_tool check PATH VALUE       exit 0 when every element of /data is VALUE
//   snapshot_tool fail-one PATH VALUE    every rank writes /data of VALUE, then the last rank fails alone
//                                        while the writer is open, and the job ends as docs/failure-policy.md says
//                                        (one line "khalo: rank R: ...", MPI_Abort) (fail_one_writer.sh)
#include <khalo/detail/mpi_error.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/runtime.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  if (argc != 5 && argc != 4) {
    std::fprintf(stderr, "usage: snapshot_tool write PATH VALUE MIB | check PATH VALUE | fail-one PATH VALUE\n");
    return 2;
  }
  const std::string mode = argv[1];
  const std::string path = argv[2];
  const float value = std::strtof(argv[3], nullptr);
  const int rank = runtime.world_rank();
  try {
    if (mode == "write") {
      const std::int64_t n = std::atoll(argv[4]) * (1 << 20) / 4;
      const auto r = khalo::balanced_split(n, runtime.world_size(), rank);
      std::vector<float> mine(static_cast<std::size_t>(r.size()), value);
      khalo::io::SnapshotWriter w(MPI_COMM_WORLD, path);
      if (rank == 0) {
        std::printf("writing\n");
        std::fflush(stdout);
      }
      for (int part = 0; part < 4; ++part) {  // several datasets: a long write to interrupt
        w.write_raw(part == 0 ? "/data" : "/more" + std::to_string(part), {n}, {{r.begin}, {r.size()}}, mine.data(),
                    khalo::io::DType::float32, "contiguous", std::nullopt);
      }
      w.commit();
      return 0;
    }
    if (mode == "fail-one") {
      const int size = runtime.world_size();
      const auto r = khalo::balanced_split(1024, size, rank);
      std::vector<float> mine(static_cast<std::size_t>(r.size()), value);
      khalo::io::SnapshotWriter w(MPI_COMM_WORLD, path);
      w.write_raw("/data", {1024}, {{r.begin}, {r.size()}}, mine.data(), khalo::io::DType::float32, "contiguous",
                  std::nullopt);
      // The last rank fails alone, the writer still open; the others go on to the next collective.
      if (rank == size - 1) throw std::runtime_error("injected failure while the snapshot writer is open");
      KHALO_MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
      w.commit();
      return 0;
    }
    khalo::io::SnapshotReader reader(MPI_COMM_WORLD, path);
    const auto info = reader.info("/data");
    const auto r = khalo::balanced_split(info.shape[0], runtime.world_size(), rank);
    std::vector<float> mine(static_cast<std::size_t>(r.size()));
    reader.read_raw("/data", info.shape, {{r.begin}, {r.size()}}, mine.data(), khalo::io::DType::float32);
    int bad = 0;
    for (float v : mine) bad += v != value;
    int all_bad = 0;
    MPI_Allreduce(&bad, &all_bad, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (rank == 0)
      std::printf("%s: %lld elements, %d not %g\n", path.c_str(), static_cast<long long>(info.shape[0]), all_bad,
                  value);
    return all_bad == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    if (mode == "fail-one") {  // an error one rank may meet alone ends the job
      std::fprintf(stderr, "khalo: rank %d: %s\n", rank, e.what());
      MPI_Abort(MPI_COMM_WORLD, 2);
    }
    if (rank == 0) std::fprintf(stderr, "snapshot_tool: %s\n", e.what());
    return 2;
  }
}
