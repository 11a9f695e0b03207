#pragma once
// What bench_halo measures: the cases and the options of a run.
// Cases: the Wan decoder's activations (N = 1, C, D frames, H rows per rank, W; one
// ghost row along H; contiguous NCDHW and channels-last NDHWC) and a 3-D HPC grid
// (128^3 doubles per rank; 1, 2 or 3 split dimensions, periodic; 1 or 8 fields).

#include "arrays.hpp"

#include <khalo/halo_spec.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace halo_bench {

struct Case {
  std::string name;
  std::string layout;
  Ext local;               // owned extents on every rank
  StrideOrder order;       // memory order of the fields, slowest first
  std::vector<int> split;  // split array dimensions, in exchange order
  khalo::Boundary boundary = khalo::Boundary::zero;
  int fields = 1;
  bool fp64 = false;
  bool show_stats = false;  // print khalo's per-rank counters
};

struct Options {
  int reps = 25;          // timed repetitions of a scheme, at most
  int min_reps = 5;       // at least
  double budget_s = 1.0;  // a scheme's timed repetitions per case stop after about this long
  int warmup = 1;
  int profile_reps = 10;
  bool fresh_alloc = false;
  bool raw_sendrecv = false;
  bool fill_every_exchange = false;                          // khalo and mpi_datatype zero open sides on every exchange
  khalo::Transport transport = khalo::Transport::automatic;  // khalo's (HaloSpec::set_transport)
  std::int64_t in_place_min_run_bytes = khalo::kDefaultInPlaceMinRunBytes;
  bool shared_memory = true;        // HaloSpec::set_shared_memory
  bool node_shared_fields = false;  // khalo's Views in a khalo::NodeSharedArena
};

inline std::vector<Case> wan_cases(bool quick) {
  const StrideOrder right = {0, 1, 2, 3, 4}, last = {0, 2, 3, 4, 1};
  // (C, D, H rows per rank, W); every value of the grid appears at least once.
  std::vector<std::array<std::int64_t, 4>> shapes =
      quick ? std::vector<std::array<std::int64_t, 4>>{{8, 2, 4, 16}}
            : std::vector<std::array<std::int64_t, 4>>{{96, 4, 30, 104},  {96, 4, 120, 208}, {96, 6, 60, 416},
                                                       {192, 6, 60, 104}, {192, 4, 30, 416}, {384, 4, 30, 104},
                                                       {384, 6, 30, 208}};
  std::vector<Case> cases;
  for (const auto& [layout, order] : {std::pair{"contiguous", right}, std::pair{"channels_last_3d", last}}) {
    bool first = true;
    for (const auto& s : shapes) {
      Case c;
      c.name = "wan_c" + std::to_string(s[0]) + "_d" + std::to_string(s[1]) + "_h" + std::to_string(s[2]) + "_w" +
               std::to_string(s[3]);
      c.layout = layout;
      c.local = {1, s[0], s[1], s[2], s[3]};
      c.order = order;
      c.split = {3};
      c.show_stats = first;
      first = false;
      cases.push_back(c);
    }
  }
  return cases;
}

inline std::vector<Case> hpc_cases(bool quick) {
  const std::int64_t n = quick ? 16 : 128;
  std::vector<Case> cases;
  for (int fields : {1, 8}) {
    for (int dims = 1; dims <= 3; ++dims) {
      if (quick && dims == 2) continue;
      Case c;
      c.name = "hpc_" + std::to_string(n) + "cubed_split" + std::to_string(dims) + "_f" + std::to_string(fields);
      c.layout = "layout_right";
      c.local = {n, n, n};
      c.order = {0, 1, 2};
      for (int d = 0; d < dims; ++d) c.split.push_back(d);
      c.boundary = khalo::Boundary::periodic;
      c.fields = fields;
      c.fp64 = true;
      cases.push_back(c);
    }
  }
  return cases;
}

}  // namespace halo_bench
