// khalo-compare A B [--dataset NAME] [--rtol R] [--atol A] [--max-ulp U] [--bitwise] [--nan-equal] [--json]
// Exit 0 when every compared dataset is within tolerance, 1 when not, 2 on any error.
#include <khalo/detail/strides.hpp>
#include <khalo/io/compare.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <iostream>

namespace {

using khalo::detail::shape_text;

nlohmann::json to_json(const khalo::io::Comparison& c, const std::string& a, const std::string& b,
                       const khalo::io::CompareOptions& o) {
  nlohmann::json j;
  j["file_a"] = a;
  j["file_b"] = b;
  j["options"] = {{"rtol", o.rtol}, {"atol", o.atol}, {"bitwise", o.bitwise}, {"nan_equal", o.nan_equal}};
  j["options"]["max_ulp"] = o.max_ulp ? nlohmann::json(*o.max_ulp) : nlohmann::json(nullptr);
  j["equal"] = c.equal();
  j["first_divergent"] = c.first_divergent ? nlohmann::json(*c.first_divergent) : nlohmann::json(nullptr);
  j["only_in_a"] = c.only_in_a;
  j["only_in_b"] = c.only_in_b;
  for (const auto& d : c.datasets) {
    nlohmann::json e = {
        {"name", d.name},         {"shape", d.shape},           {"dtype", khalo::io::to_string(d.dtype)},
        {"elements", d.elements}, {"mismatches", d.mismatches}, {"max_abs", d.max_abs},
        {"max_ulp", d.max_ulp},   {"nan_seen", d.nan_seen},     {"equal", d.equal()}};
    e["max_rel"] = std::isinf(d.max_rel) ? nlohmann::json("inf") : nlohmann::json(d.max_rel);
    e["first_mismatch"] = d.first_mismatch ? nlohmann::json(*d.first_mismatch) : nlohmann::json(nullptr);
    j["datasets"].push_back(e);
  }
  return j;
}

void print_text(const khalo::io::Comparison& c) {
  for (const auto& d : c.datasets) {
    std::printf("%s  shape %s  %s  %lld elements\n", d.name.c_str(), shape_text(d.shape).c_str(),
                khalo::io::to_string(d.dtype).c_str(), static_cast<long long>(d.elements));
    std::printf("  max abs %.9g  max rel %.9g  max ulp %llu%s  mismatches %lld", d.max_abs, d.max_rel,
                static_cast<unsigned long long>(d.max_ulp), d.nan_seen ? " (NaN present)" : "",
                static_cast<long long>(d.mismatches));
    if (d.first_mismatch) std::printf("  first at %s", shape_text(*d.first_mismatch).c_str());
    std::printf("  -> %s\n", d.equal() ? "equal" : "DIFFERENT");
  }
  for (const auto& n : c.only_in_a) std::printf("%s  only in the first file (not compared)\n", n.c_str());
  for (const auto& n : c.only_in_b) std::printf("%s  only in the second file (not compared)\n", n.c_str());
  if (c.first_divergent) {
    std::printf("result: DIFFERENT; first divergent dataset: %s\n", c.first_divergent->c_str());
  } else {
    std::printf("result: equal (%zu dataset%s compared)\n", c.datasets.size(), c.datasets.size() == 1 ? "" : "s");
  }
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  const bool root = runtime.world_rank() == 0;
  CLI::App app{"Compare the datasets of two HDF5 snapshots (exit 0 equal, 1 different, 2 error)"};
  std::string a, b;
  khalo::io::CompareOptions o;
  bool json = false;
  std::uint64_t max_ulp = 0;
  app.add_option("A", a, "first file");
  app.add_option("B", b, "second file (the reference for --rtol)");
  app.add_option("--dataset", o.dataset, "compare only this dataset");
  app.add_option("--rtol", o.rtol, "relative tolerance: |a-b| <= atol + rtol*|b| passes")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--atol", o.atol, "absolute tolerance")->check(CLI::NonNegativeNumber);
  auto* ulp = app.add_option("--max-ulp", max_ulp, "largest ULP distance that passes");
  app.add_flag("--bitwise", o.bitwise, "only identical bits pass (-0 differs from +0)");
  app.add_flag("--nan-equal", o.nan_equal, "NaN equals NaN");
  app.add_flag("--json", json, "print a JSON report instead of text");
  bool version = false;
  app.add_flag("--version", version, "print the versions of khalo, Kokkos, MPI and HDF5, and exit");
  try {
    app.parse(argc, argv);
    if (!version && (a.empty() || b.empty())) throw CLI::ValidationError("give two files, A and B");
  } catch (const CLI::ParseError& e) {
    if (root) app.exit(e);
    return e.get_exit_code() == 0 ? 0 : 2;
  }
  if (version) {
    const std::string text = khalo::build_info();
    if (root) std::printf("%s\n", text.c_str());
    return 0;
  }
  if (ulp->count() > 0) o.max_ulp = max_ulp;
  return runtime.guard("khalo-compare", [&] {
    const auto c = khalo::io::compare_files(MPI_COMM_WORLD, a, b, o);
    if (root) {
      if (json) {
        std::cout << to_json(c, a, b, o).dump(2) << "\n";
      } else {
        print_text(c);
      }
    }
    return c.equal() ? 0 : 1;
  });
}
