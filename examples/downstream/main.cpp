// Exchanges one ghost row of a channels-last band with the neighbouring
// ranks and checks it, then writes and reads back a snapshot (whose reader
// runs the installed probe helper): a smoke test of the installed package.
#include <khalo/khalo.hpp>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  using Exec = Kokkos::DefaultExecutionSpace;
  const std::int64_t H = 4 * runtime.world_size() + 1;
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 8, 2, H, 6});  // N C D H W, split H
  auto e = dec.local_extents();
  e[3] += 2;  // one ghost row above and below
  auto x = khalo::allocate<float*****>("x", e, khalo::MemoryFormat::channels_last_3d);
  const std::int64_t first = dec.owned(3).begin - 1;  // global row of local row 0
  Kokkos::parallel_for(
      "fill", Kokkos::RangePolicy<Exec>(1, e[3] - 1), KOKKOS_LAMBDA(std::int64_t h) {
        for (int c = 0; c < 8; ++c)
          for (int d = 0; d < 2; ++d)
            for (int w = 0; w < 6; ++w) x(0, c, d, h, w) = static_cast<float>(first + h);
      });
  khalo::Halo<Exec> halo(dec, khalo::HaloSpec(1), x);
  halo.exchange(Exec(), x);
  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
  const float above = first >= 0 ? static_cast<float>(first) : 0.0f;  // zero padding at the top
  const float below = first + e[3] - 1 < H ? static_cast<float>(first + e[3] - 1) : 0.0f;
  const bool ok = h(0, 3, 1, 0, 2) == above && h(0, 3, 1, e[3] - 1, 2) == below;
  // A snapshot round trip: the installed reader finds the probe helper installed with the package.
  long long id = runtime.world_rank() == 0 ? static_cast<long long>(::getpid()) : 0;  // rank 0 names the file
  MPI_Bcast(&id, 1, MPI_LONG_LONG, 0, MPI_COMM_WORLD);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("khalo_downstream_" + std::to_string(id) + ".h5")).string();
  bool io_ok = false;
  {
    const auto r = khalo::balanced_split(6, runtime.world_size(), runtime.world_rank());
    std::vector<float> mine(static_cast<std::size_t>(r.size()));
    for (std::int64_t i = r.begin; i < r.end; ++i) mine[static_cast<std::size_t>(i - r.begin)] = static_cast<float>(i);
    khalo::io::SnapshotWriter w(MPI_COMM_WORLD, path);
    w.write_raw("/data", {6}, {{r.begin}, {r.size()}}, mine.data(), khalo::io::DType::float32, "contiguous",
                std::nullopt);
    w.commit();
    std::vector<float> all(6);
    khalo::io::SnapshotReader reader(MPI_COMM_WORLD, path);
    reader.read_raw("/data", {6}, {{0}, {6}}, all.data(), khalo::io::DType::float32);
    io_ok = all == std::vector<float>{0, 1, 2, 3, 4, 5};
  }
  MPI_Barrier(MPI_COMM_WORLD);
  if (runtime.world_rank() == 0) std::remove(path.c_str());
  int all_ok = 0;
  const int mine = ok && io_ok ? 1 : 0;
  MPI_Allreduce(&mine, &all_ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (runtime.world_rank() == 0) {
    std::printf("khalo_downstream: %s; %s; %d ranks exchanged ghost rows and a snapshot: %s\n",
                khalo::build_info().c_str(), khalo::to_string(khalo::memory_format(x)).c_str(), runtime.world_size(),
                all_ok ? "ok" : "WRONG");
  }
  return all_ok ? 0 : 1;
}
