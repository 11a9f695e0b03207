// A 3-D heat-equation mini-app on a 3-D process grid: explicit Euler, 7-point
// stencil, one ghost layer per side. Each step starts the halo exchange,
// updates the cells that need no ghost while messages fly, then finishes the
// exchange and updates the shell. At the end every rank checks its block
// against the same steps run on the whole grid by one rank (bit for bit).
//
//   mpirun -np 4 khalo_heat3d --n 32 --steps 100 [--periodic]
#include <khalo/khalo.hpp>

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>

#include <cmath>
#include <cstdio>

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Field = Kokkos::View<double***, Kokkos::LayoutRight>;
using Box = Kokkos::MDRangePolicy<Exec, Kokkos::Rank<3>>;

// Initial temperature: a smooth bump, a function of the global cell only.
KOKKOS_INLINE_FUNCTION double initial(std::int64_t i, std::int64_t j, std::int64_t k, std::int64_t n) {
  const double x = (static_cast<double>(i) + 0.5) / static_cast<double>(n) - 0.5;
  const double y = (static_cast<double>(j) + 0.5) / static_cast<double>(n) - 0.3;
  const double z = (static_cast<double>(k) + 0.5) / static_cast<double>(n) - 0.6;
  return 1.0 / (1.0 + 40.0 * (x * x + y * y + z * z));
}

// u_new = u + r * (sum of the 6 neighbours - 6 u), on cells [lo, hi) (local indices incl. ghosts).
void update(const Exec& exec, Field u, Field out, double r, Kokkos::Array<std::int64_t, 3> lo,
            Kokkos::Array<std::int64_t, 3> hi) {
  if (lo[0] >= hi[0] || lo[1] >= hi[1] || lo[2] >= hi[2]) return;
  Kokkos::parallel_for(
      "heat3d::update", Box(exec, {lo[0], lo[1], lo[2]}, {hi[0], hi[1], hi[2]}),
      KOKKOS_LAMBDA(std::int64_t i, std::int64_t j, std::int64_t k) {
        const double lap = u(i - 1, j, k) + u(i + 1, j, k) + u(i, j - 1, k) + u(i, j + 1, k) + u(i, j, k - 1) +
                           u(i, j, k + 1) - 6.0 * u(i, j, k);
        out(i, j, k) = u(i, j, k) + r * lap;
      });
}

// Cells of the owned block [1, n+1)^3 that are not its outermost layer, and the shell around them.
void step(const Exec& exec, khalo::Halo<Exec>& halo, Field u, Field out, double r, bool overlap) {
  const std::int64_t e[3] = {static_cast<std::int64_t>(u.extent(0)), static_cast<std::int64_t>(u.extent(1)),
                             static_cast<std::int64_t>(u.extent(2))};
  if (!overlap) {
    halo.exchange(exec, u);
    update(exec, u, out, r, {1, 1, 1}, {e[0] - 1, e[1] - 1, e[2] - 1});
    return;
  }
  auto pending = halo.start(exec, u);
  update(exec, u, out, r, {2, 2, 2}, {e[0] - 2, e[1] - 2, e[2] - 2});
  pending.wait();
  // The shell: two faces per dimension, each without the parts already done.
  for (int d = 0; d < 3; ++d) {
    for (std::int64_t face : {std::int64_t{1}, e[d] - 2}) {
      Kokkos::Array<std::int64_t, 3> lo{1, 1, 1};
      Kokkos::Array<std::int64_t, 3> hi{e[0] - 1, e[1] - 1, e[2] - 1};
      for (int p = 0; p < d; ++p) {  // earlier dims' faces are done: stay inside them
        lo[p] = 2;
        hi[p] = e[p] - 2;
      }
      lo[d] = face;
      hi[d] = face + 1;
      if (face == e[d] - 2 && e[d] - 2 == 1) continue;  // a one-cell-thick block has a single face
      update(exec, u, out, r, lo, hi);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"3-D heat equation on a 3-D process grid, checked against one rank"};
  std::int64_t n = 32;
  int steps = 50;
  bool periodic = false;
  app.add_option("--n", n, "cells per dimension of the global grid")->check(CLI::Range(2, 4096));
  app.add_option("--steps", steps, "time steps")->check(CLI::NonNegativeNumber);
  app.add_flag("--periodic", periodic, "periodic boundaries (default: zero temperature outside)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return runtime.world_rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  const bool root = runtime.world_rank() == 0;
  const double r = 0.1;  // dt * alpha / dx^2, stable below 1/6
  const khalo::Boundary boundary = periodic ? khalo::Boundary::periodic : khalo::Boundary::zero;
  const Exec exec;
  // An error every rank sees ends the run with exit 2; one a rank meets alone ends the job.
  return runtime.guard("heat3d", [&] {
    // The distributed run.
    const auto grid = khalo::ProcessGrid::balanced(MPI_COMM_WORLD, 3);
    const khalo::Decomposition dec(grid, {n, n, n}, {0, 1, 2});
    const khalo::HaloSpec spec(1, boundary);
    const auto own = dec.local_extents();
    Field u("u", own[0] + 2, own[1] + 2, own[2] + 2);
    Field v("v", own[0] + 2, own[1] + 2, own[2] + 2);
    const std::int64_t o0 = dec.owned(0).begin - 1, o1 = dec.owned(1).begin - 1, o2 = dec.owned(2).begin - 1;
    Kokkos::parallel_for(
        "heat3d::init", Box(exec, {1, 1, 1}, {own[0] + 1, own[1] + 1, own[2] + 1}),
        KOKKOS_LAMBDA(std::int64_t i, std::int64_t j, std::int64_t k) {
          u(i, j, k) = initial(i + o0, j + o1, k + o2, n);
        });
    // One plan serves both buffers: they have the same shape, so its buffers and messages are reused.
    khalo::Halo<Exec> halo(dec, spec, u);
    if (root) {
      std::printf("heat3d: %lld^3 cells, %d ranks as %s, %d steps, %s boundaries\n", static_cast<long long>(n),
                  grid.size(), khalo::ProcessGrid::shape_text(grid.dims()).c_str(), steps,
                  periodic ? "periodic" : "zero");
    }
    const double t0 = MPI_Wtime();
    for (int s = 0; s < steps; ++s) {
      if (s % 2 == 0) {
        step(exec, halo, u, v, r, true);
      } else {
        step(exec, halo, v, u, r, true);
      }
      if (root && (s + 1) % std::max(1, steps / 5) == 0) std::printf("  step %d/%d\n", s + 1, steps);
    }
    exec.fence();
    const double seconds = MPI_Wtime() - t0;
    Field result = steps % 2 == 0 ? u : v;

    // The reference: the same steps on the whole grid, on this rank alone.
    const khalo::Decomposition whole(khalo::ProcessGrid(MPI_COMM_SELF, {1, 1, 1}), {n, n, n}, {0, 1, 2});
    Field gu("gu", n + 2, n + 2, n + 2);
    Field gv("gv", n + 2, n + 2, n + 2);
    Kokkos::parallel_for(
        "heat3d::init", Box(exec, {1, 1, 1}, {n + 1, n + 1, n + 1}),
        KOKKOS_LAMBDA(std::int64_t i, std::int64_t j, std::int64_t k) {
          gu(i, j, k) = initial(i - 1, j - 1, k - 1, n);
        });
    khalo::Halo<Exec> ref_halo(whole, spec, gu);
    for (int s = 0; s < steps; ++s) {
      if (s % 2 == 0) {
        step(exec, ref_halo, gu, gv, r, false);
      } else {
        step(exec, ref_halo, gv, gu, r, false);
      }
    }
    Field ref = steps % 2 == 0 ? gu : gv;
    double max_diff = 0.0;
    double local_heat = 0.0;
    Kokkos::parallel_reduce(
        "heat3d::check", Box(exec, {1, 1, 1}, {own[0] + 1, own[1] + 1, own[2] + 1}),
        KOKKOS_LAMBDA(std::int64_t i, std::int64_t j, std::int64_t k, double& m) {
          const double d = result(i, j, k) - ref(i + o0 + 1, j + o1 + 1, k + o2 + 1);  // ref has its own ghost layer
          m = d < 0 ? (-d > m ? -d : m) : (d > m ? d : m);
        },
        Kokkos::Max<double>(max_diff));
    Kokkos::parallel_reduce(
        "heat3d::heat", Box(exec, {1, 1, 1}, {own[0] + 1, own[1] + 1, own[2] + 1}),
        KOKKOS_LAMBDA(std::int64_t i, std::int64_t j, std::int64_t k, double& s) { s += result(i, j, k); }, local_heat);
    double diff = 0.0;
    double heat = 0.0;
    double slowest = 0.0;
    MPI_Allreduce(&max_diff, &diff, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    MPI_Allreduce(&local_heat, &heat, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(&seconds, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    const auto& st = halo.stats();
    if (root) {
      std::printf("heat3d: total heat %.12g, %.3f s, %lld halo bytes sent by rank 0, %lld buffer allocations\n", heat,
                  slowest, static_cast<long long>(st.bytes_sent), static_cast<long long>(st.allocations));
      std::printf("heat3d: max |distributed - single rank| = %g -> %s\n", diff,
                  diff == 0.0 ? "bit-identical" : "MISMATCH");
    }
    return diff == 0.0 ? 0 : 1;
  });
}
