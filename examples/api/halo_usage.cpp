// The API reference's first example (docs/api.md): the README's usage as a complete program. A
// channels-last (N, C, D, H, W) tensor split by rows, one ghost row per side, exchanged blocking and
// split-phase; every rank checks its ghost rows against the values its neighbours own.
//
//   mpirun -np 2 build/examples/api/khalo_halo_usage
#include <khalo/khalo.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  //! [usage]
  khalo::Runtime runtime(argc, argv);  // MPI, then Kokkos; finalized in reverse
  using Exec = Kokkos::DefaultExecutionSpace;

  // An (N, C, D, H, W) tensor whose rows (H) are split in bands over all ranks.
  const auto dec = khalo::row_decomposition(MPI_COMM_WORLD, {1, 96, 4, 60, 104});
  khalo::HaloSpec spec(1);  // one ghost row per side, zeros at the edges

  auto e = dec.local_extents();
  e[3] += 2;  // owned rows plus the ghost rows
  auto x = khalo::allocate<float*****>("x", e, khalo::MemoryFormat::channels_last_3d);

  khalo::Halo<Exec> halo(dec, spec, x);  // collective: validate, neighbours, buffers
  //! [usage]

  // Every owned element holds its global row number plus one, so a ghost row tells where it came from.
  const std::int64_t first = dec.owned(3).begin - 1;  // global row of local row 0
  Kokkos::parallel_for(
      "fill", Kokkos::RangePolicy<Exec>(1, e[3] - 1), KOKKOS_LAMBDA(std::int64_t h) {
        for (int c = 0; c < 96; ++c)
          for (int d = 0; d < 4; ++d)
            for (int w = 0; w < 104; ++w) x(0, c, d, h, w) = static_cast<float>(first + h + 1);
      });

  //! [exchange]
  auto pending = halo.start(Exec(), x);  // messages in flight
  // ... compute the rows that need no ghost ...
  pending.wait();            // ghosts filled; compute the edge rows
  halo.exchange(Exec(), x);  // or blocking, in one call
  // halo.stats(): faces packed, bytes packed/sent/received, messages, allocations
  //! [exchange]

  auto h = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), x);
  const std::int64_t rows = dec.global_extents()[3];
  const float above = first >= 0 ? static_cast<float>(first + 1) : 0.0f;  // zero padding at the top
  const float below = first + e[3] - 1 < rows ? static_cast<float>(first + e[3]) : 0.0f;
  const int mine = h(0, 95, 3, 0, 103) == above && h(0, 0, 0, e[3] - 1, 0) == below ? 1 : 0;
  int ok = 0;
  MPI_Allreduce(&mine, &ok, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
  if (runtime.world_rank() == 0) {
    std::printf("khalo_halo_usage: %d rank(s), %s: ghost rows %s\n", runtime.world_size(),
                khalo::to_string(khalo::memory_format(x)).c_str(), ok ? "as expected" : "WRONG");
  }
  return ok ? 0 : 1;
}
