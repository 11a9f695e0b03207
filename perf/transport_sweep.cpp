// The measurements behind khalo's transport choice (include/khalo/detail/halo/transport.hpp):
// two ranks exchange a face of R runs of S bytes each way, four ways, same run:
//   pack      copy the runs into a buffer, one message, copy out on the other side (3 copies)
//   datatype  one message described by an MPI hvector over the runs (MPI's convertor copies)
//   in_place  one message per run, straight from and into the array (no copy of khalo's)
//   raw       one pre-packed message of the same bytes: the transport's limit
// Time = the slower rank's, median of --reps after warm-up; the ways take turns in each round.
//   mpirun -np 2 transport_sweep [--run-bytes S ...] [--face-bytes B ...] [--reps N] [--json FILE]
// Plain MPI and memcpy, no Kokkos: it measures MPI's side of the choice, not khalo's kernels.
#include "bench_common.hpp"

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

enum Way { kPack, kDatatype, kInPlace, kRaw, kWays };
const char* const kNames[kWays] = {"pack", "datatype", "in_place", "raw"};

struct Face {
  std::int64_t run = 0;                            // bytes per run
  std::int64_t runs = 0;                           // runs per face
  std::int64_t stride() const { return 3 * run; }  // a face of a band three times as wide
};

// One exchange of `face` with rank `peer` the given way; returns this rank's seconds.
double exchange(Way way, const Face& f, int peer, std::vector<char>& field, std::vector<char>& ghost,
                std::vector<char>& sbuf, std::vector<char>& rbuf, MPI_Datatype type) {
  const auto bytes = static_cast<int>(f.run * f.runs);
  const double t0 = MPI_Wtime();
  std::vector<MPI_Request> q;
  auto irecv = [&](void* p, int n, MPI_Datatype t) {
    q.emplace_back();
    MPI_Irecv(p, n, t, peer, 0, MPI_COMM_WORLD, &q.back());
  };
  auto isend = [&](const void* p, int n, MPI_Datatype t) {
    q.emplace_back();
    MPI_Isend(p, n, t, peer, 0, MPI_COMM_WORLD, &q.back());
  };
  switch (way) {
    case kPack:
      irecv(rbuf.data(), bytes, MPI_BYTE);
      for (std::int64_t r = 0; r < f.runs; ++r) std::memcpy(&sbuf[r * f.run], &field[r * f.stride()], f.run);
      isend(sbuf.data(), bytes, MPI_BYTE);
      break;
    case kDatatype:
      irecv(ghost.data(), 1, type);
      isend(field.data(), 1, type);
      break;
    case kInPlace:
      for (std::int64_t r = 0; r < f.runs; ++r) irecv(&ghost[r * f.stride()], static_cast<int>(f.run), MPI_BYTE);
      for (std::int64_t r = 0; r < f.runs; ++r) isend(&field[r * f.stride()], static_cast<int>(f.run), MPI_BYTE);
      break;
    default: irecv(rbuf.data(), bytes, MPI_BYTE); isend(sbuf.data(), bytes, MPI_BYTE);
  }
  MPI_Waitall(static_cast<int>(q.size()), q.data(), MPI_STATUSES_IGNORE);
  if (way == kPack) {
    for (std::int64_t r = 0; r < f.runs; ++r) std::memcpy(&ghost[r * f.stride()], &rbuf[r * f.run], f.run);
  }
  return MPI_Wtime() - t0;
}

}  // namespace

int main(int argc, char** argv) {
  MPI_Init(&argc, &argv);
  int rank = 0, size = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  CLI::App app{"MPI's side of khalo's transport choice: pack, datatype, in place and raw on 2 ranks"};
  std::vector<std::int64_t> run_bytes{64, 416, 1664, 4096, 8192, 16384, 32768, 65536};
  std::vector<std::int64_t> face_bytes{32768, 131072, 262144, 524288, 1048576};
  int reps = 60;
  std::string json;
  app.add_option("--run-bytes", run_bytes, "bytes per run");
  app.add_option("--face-bytes", face_bytes, "bytes per face (runs = face / run, at least 2)");
  app.add_option("--reps", reps, "timed exchanges per way and face")->check(CLI::PositiveNumber);
  app.add_option("--json", json, "write the records here (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = rank == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
    MPI_Finalize();
    return code;
  }
  if (size != 2) {
    if (rank == 0) std::fprintf(stderr, "transport_sweep: run it on 2 ranks\n");
    MPI_Finalize();
    return 2;
  }
  if (rank == 0) {
    std::printf("transport_sweep: 2 ranks, %s; median us of %d exchanges, slower rank\n",
                khalo_perf::cpu_model().c_str(), reps);
    std::printf("%9s %7s %10s %10s %10s %10s %10s\n", "run B", "runs", "face B", "pack", "datatype", "in_place", "raw");
  }
  std::vector<nlohmann::json> records;
  for (const std::int64_t run : run_bytes) {
    for (const std::int64_t face : face_bytes) {
      const Face f{run, face / run};
      if (f.runs < 2) continue;
      std::vector<char> field(static_cast<std::size_t>(f.stride() * f.runs), 1);
      std::vector<char> ghost(field.size(), 0);
      std::vector<char> sbuf(static_cast<std::size_t>(f.run * f.runs), 2), rbuf(sbuf.size(), 0);
      MPI_Datatype type;
      MPI_Type_create_hvector(static_cast<int>(f.runs), static_cast<int>(f.run), f.stride(), MPI_BYTE, &type);
      MPI_Type_commit(&type);
      std::vector<std::vector<double>> t(kWays);
      for (int i = 0; i < reps + 5; ++i) {
        for (int w = 0; w < kWays; ++w) {
          MPI_Barrier(MPI_COMM_WORLD);
          double s = exchange(static_cast<Way>(w), f, 1 - rank, field, ghost, sbuf, rbuf, type);
          MPI_Allreduce(MPI_IN_PLACE, &s, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
          if (i >= 5) t[static_cast<std::size_t>(w)].push_back(s);
        }
      }
      MPI_Type_free(&type);
      if (rank != 0) continue;
      nlohmann::json j = {{"run_bytes", f.run}, {"runs", f.runs}, {"face_bytes", f.run * f.runs}};
      std::printf("%9lld %7lld %10lld", static_cast<long long>(f.run), static_cast<long long>(f.runs),
                  static_cast<long long>(f.run * f.runs));
      for (int w = 0; w < kWays; ++w) {
        auto& v = t[static_cast<std::size_t>(w)];
        std::sort(v.begin(), v.end());
        const double median = v[v.size() / 2];
        j[std::string(kNames[w]) + "_s"] = median;
        std::printf(" %10.1f", median * 1e6);
      }
      std::printf("\n");
      records.push_back(j);
    }
  }
  if (rank == 0 && !json.empty()) khalo_perf::write_records(json, std::move(records));
  MPI_Finalize();
  return 0;
}
