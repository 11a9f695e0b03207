// A minimal Kokkos Tools library: wall time and calls per profiling region (Kokkos::Profiling::
// pushRegion / popRegion), per process, printed to stderr when Kokkos finalizes, one line per
// region: "kp_regions: rank R region NAME calls N seconds S" (R from Open MPI's or Slurm's
// environment). perf/decoder_model.sh loads it into khalo-decode with KOKKOS_PROFILE_LIBRARY to
// measure the halo's exposed time: khalo::Halo::start (pack, post) and khalo::Halo::wait (what
// the convolution of the interior rows did not hide, and the unpack). Nested regions each count
// their own wall time. Only the region callbacks are defined, so kernels pay nothing.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Totals {
  std::map<std::string, std::pair<long long, double>> regions;  // name: calls, seconds
  std::vector<std::pair<std::string, Clock::time_point>> open;
};

Totals& totals() {
  static Totals t;
  return t;
}

std::string rank_text() {
  for (const char* v : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"}) {
    if (const char* r = std::getenv(v)) return r;
  }
  return "0";
}

}  // namespace

extern "C" {

void kokkosp_init_library(int, std::uint64_t, std::uint32_t, void*) {}

void kokkosp_push_profile_region(const char* name) { totals().open.emplace_back(name, Clock::now()); }

void kokkosp_pop_profile_region() {
  auto& t = totals();
  if (t.open.empty()) return;
  const auto& [name, start] = t.open.back();
  auto& e = t.regions[name];
  e.first += 1;
  e.second += std::chrono::duration<double>(Clock::now() - start).count();
  t.open.pop_back();
}

void kokkosp_finalize_library() {
  const std::string rank = rank_text();
  for (const auto& [name, e] : totals().regions) {
    std::fprintf(stderr, "kp_regions: rank %s region %s calls %lld seconds %.6f\n", rank.c_str(), name.c_str(), e.first,
                 e.second);
  }
}

}  // extern "C"
