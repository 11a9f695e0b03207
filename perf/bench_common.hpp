#pragma once
// What the MPI benchmarks share: statistics over repetitions (time = max over
// ranks, then median and quartiles over repetitions), and an in-process timer
// of named Kokkos kernels and profiling regions, set through the Kokkos Tools
// callbacks (no tool library needed), that says which copy of an exchange
// costs what. Kernel times are exact on host backends, where a parallel_for
// returns when it is done; on a GPU they would only time the launches.

#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace khalo_perf {

struct Spread {
  double median = 0, q1 = 0, q3 = 0, min = 0, max = 0;
};

/// Median, quartiles and range of \p v (not empty).
inline Spread spread_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const auto at = [&](double q) { return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)]; };
  return {at(0.5), at(0.25), at(0.75), v.front(), v.back()};
}

/// Element-wise maximum over the ranks of \p comm: per repetition, the slowest rank's time.
inline std::vector<double> max_over_ranks(std::vector<double> v, MPI_Comm comm) {
  MPI_Allreduce(MPI_IN_PLACE, v.data(), static_cast<int>(v.size()), MPI_DOUBLE, MPI_MAX, comm);
  return v;
}

inline double max_over_ranks(double t, MPI_Comm comm) {
  MPI_Allreduce(MPI_IN_PLACE, &t, 1, MPI_DOUBLE, MPI_MAX, comm);
  return t;
}

/// Seconds spent in each named kernel (parallel_for/reduce/scan label) and in
/// each profiling region, summed while the timer runs. One per process: the
/// Kokkos Tools callbacks are plain function pointers.
class KernelTimer {
 public:
  static void start() {
    namespace kt = Kokkos::Tools::Experimental;
    kt::set_begin_parallel_for_callback(&begin);
    kt::set_end_parallel_for_callback(&end);
    kt::set_begin_parallel_reduce_callback(&begin);
    kt::set_end_parallel_reduce_callback(&end);
    kt::set_begin_parallel_scan_callback(&begin);
    kt::set_end_parallel_scan_callback(&end);
    kt::set_push_region_callback(&push);
    kt::set_pop_region_callback(&pop);
  }
  static void stop() {
    namespace kt = Kokkos::Tools::Experimental;
    kt::set_begin_parallel_for_callback(nullptr);
    kt::set_end_parallel_for_callback(nullptr);
    kt::set_begin_parallel_reduce_callback(nullptr);
    kt::set_end_parallel_reduce_callback(nullptr);
    kt::set_begin_parallel_scan_callback(nullptr);
    kt::set_end_parallel_scan_callback(nullptr);
    kt::set_push_region_callback(nullptr);
    kt::set_pop_region_callback(nullptr);
  }
  static void reset() {
    seconds_.clear();
    calls_.clear();
  }
  /// Seconds per kernel or region label since the last reset.
  static double seconds(const std::string& label) {
    const auto it = seconds_.find(label);
    return it == seconds_.end() ? 0.0 : it->second;
  }
  static std::int64_t calls(const std::string& label) {
    const auto it = calls_.find(label);
    return it == calls_.end() ? 0 : it->second;
  }
  static const std::map<std::string, double>& all() { return seconds_; }

 private:
  using Clock = std::chrono::steady_clock;
  static void begin(const char* name, const std::uint32_t, std::uint64_t* id) {
    *id = open_.size();
    open_.emplace_back(name, Clock::now());
  }
  static void end(const std::uint64_t id) {
    if (id >= open_.size()) return;
    const auto& [name, t0] = open_[id];
    seconds_[name] += std::chrono::duration<double>(Clock::now() - t0).count();
    ++calls_[name];
    open_.resize(id);
  }
  static void push(const char* name) { regions_.emplace_back(name, Clock::now()); }
  static void pop() {
    if (regions_.empty()) return;
    const auto& [name, t0] = regions_.back();
    seconds_[name] += std::chrono::duration<double>(Clock::now() - t0).count();
    ++calls_[name];
    regions_.pop_back();
  }
  static inline std::map<std::string, double> seconds_;
  static inline std::map<std::string, std::int64_t> calls_;
  static inline std::vector<std::pair<std::string, Clock::time_point>> open_;
  static inline std::vector<std::pair<std::string, Clock::time_point>> regions_;
};

/// The CPU model named in /proc/cpuinfo ("unknown CPU" where there is none).
inline std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown CPU";
}

/// Writes \p records as a JSON list to \p path, each with the CPU and the build beside its numbers.
inline void write_records(const std::string& path, std::vector<nlohmann::json> records) {
  for (auto& r : records) {
    r["cpu"] = cpu_model();
    r["build"] = khalo::build_info();
  }
  std::ofstream(path) << nlohmann::json(records).dump(1) << "\n";
}

}  // namespace khalo_perf
