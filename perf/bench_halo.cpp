// Halo exchange on MPI ranks: khalo beside the schemes it replaces
// (halo_bench/schemes.hpp), in one run, on the same data, over the cases of
// halo_bench/cases.hpp.
// Time of a scheme = the slowest rank's time for one exchange; median over
// repetitions after warm-up. Within every repetition the schemes take turns, so
// that the machine's load hits them alike, and each runs twice in a row and is timed
// the second time: every scheme is timed with its own data and buffers in cache, the
// state raw_mpi's limit assumes (timing them cold, right after another scheme has
// swept the cache, favoured whichever scheme ran second on the same data). Every
// scheme's halo is checked once per case against khalo's, and khalo's against the
// tests' oracle (halo_bench/check.hpp); a wrong halo fails the run (exit 1).
//   mpirun -np 2 bench_halo [--quick] [--only wan|hpc] [--case TEXT] [--reps R]
//                           [--warmup W] [--budget S] [--fresh-alloc] [--raw-sendrecv] [--fill-every-exchange]
//                           [--no-shared-memory]
//                           [--transport automatic|pack|datatype] [--in-place-min BYTES] [--json FILE]
#include "halo_bench/cases.hpp"
#include "halo_bench/check.hpp"
#include "halo_bench/geometry.hpp"
#include "halo_bench/line_latency.hpp"
#include "halo_bench/profile.hpp"
#include "halo_bench/schemes.hpp"

#include <khalo/decomposition.hpp>
#include <khalo/detail/halo/mapped_reads.hpp>  // mapped_policy, for the records
#include <khalo/detail/halo/store_choice.hpp>  // store_policy, for the records
#include <khalo/halo.hpp>
#include <khalo/layout.hpp>
#include <khalo/node_shared_arena.hpp>
#include <khalo/runtime.hpp>

#include "bench_common.hpp"

#include <mpi.h>
#include <CLI/CLI.hpp>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

using namespace halo_bench;

namespace {

using Json = nlohmann::json;

struct SchemeTimes {
  std::string scheme;
  std::vector<double> t;        // per repetition, this rank
  std::vector<double> t_start;  // khalo_split: the time start() takes
  int reps = 0;                 // timed repetitions of this scheme
};

template <class DataType, int F>
std::vector<Json> run_case(const Case& c, const Options& opt, MPI_Comm world) {
  using View = Kokkos::View<DataType, Kokkos::LayoutStride, Mem>;
  using T = typename View::value_type;
  const Exec exec;
  const int rank_count = static_cast<int>(c.local.size());
  if (rank_count != static_cast<int>(View::rank) || c.fields != F) throw std::logic_error("bench_halo: bad case");
  int me = 0, nranks = 1;
  MPI_Comm_rank(world, &me);
  MPI_Comm_size(world, &nranks);

  const khalo::ProcessGrid grid(world, std::vector<int>(c.split.size(), 0));
  Ext global = c.local;
  for (std::size_t g = 0; g < c.split.size(); ++g) {
    global[static_cast<std::size_t>(c.split[g])] *= grid.dims()[g];
  }
  const khalo::Decomposition dec(grid, global, c.split);
  khalo::HaloSpec spec(1, c.boundary);
  spec.set_transport(opt.transport)
      .set_in_place_min_run_bytes(opt.in_place_min_run_bytes)
      .set_shared_memory(opt.shared_memory);
  // Nothing writes the ghost layers between exchanges here: open sides need zeroing once
  // (raw_mpi never zeroes them), unless --fill-every-exchange.
  spec.set_zero_fill_once(!opt.fill_every_exchange);
  const Geometry geo = geometry(dec, spec, c);
  MPI_Comm comm;
  BENCH_MPI(MPI_Comm_dup(world, &comm));

  // The same values for every scheme (check.hpp's fill_field).
  // --node-shared-fields: khalo's Views in node-shared memory (khalo::NodeSharedArena).
  std::unique_ptr<khalo::NodeSharedArena> arena;
  if (opt.node_shared_fields) {
    arena =
        std::make_unique<khalo::NodeSharedArena>(F * (static_cast<std::size_t>(product(geo.padded)) * sizeof(T) + 64));
  }
  std::array<View, F> kv, dv;
  std::vector<Arr<T>> karr, darr, bands;
  std::vector<Storage<T>> band_mem;
  for (int f = 0; f < F; ++f) {
    kv[f] = arena ? arena->view<DataType>(geo.padded, c.order)
                  : khalo::allocate<DataType, Mem>("khalo." + std::to_string(f), geo.padded, c.order);
    dv[f] = khalo::allocate<DataType, Mem>("datatype." + std::to_string(f), geo.padded, c.order);
    karr.push_back(arr_of(kv[f]));
    darr.push_back(arr_of(dv[f]));
    fill_field(karr.back(), f, dec, spec);
    fill_field(darr.back(), f, dec, spec);
    // The band of the tensor-library schemes: owned rows only.
    band_mem.emplace_back(product(c.local));
    bands.push_back(dense_at(band_mem.back().get(), c.local, c.order));
    Ext lo(c.local.size(), 0);
    for (int d : c.split) lo[static_cast<std::size_t>(d)] = 1;
    copy_box(exec, karr.back(), lo, bands.back(), Ext(c.local.size(), 0), c.local);
  }
  KhaloScheme<View, F> kh(dec, spec, kv);
  Concat<T> naive(true, geo, c, bands, comm, opt.fresh_alloc);
  Concat<T> seed(false, geo, c, bands, comm, opt.fresh_alloc);
  band_mem.clear();  // each concatenation scheme holds its own copy
  Datatypes<T> dt(geo, c, darr, comm, opt.fill_every_exchange);
  Raw<T> raw(geo, c, comm, opt.raw_sendrecv);

  // ---- Correctness, once per case, and khalo's counters for one exchange.
  check_schemes(dec, spec, c, geo, kh, naive, seed, dt, raw, world);
  const khalo::HaloStats one = check_stats(kh, geo, c, world);
  const std::int64_t want_bytes = geo.send_elems * F * static_cast<std::int64_t>(sizeof(T));
  const double line_ns = line_latency_ns(world);  // where the two ranks' cores sit, now

  // ---- Timing: schemes take turns within each repetition. A slow scheme stops after
  // the repetitions that fit its time budget (at least min_reps): the same count on every rank.
  std::vector<SchemeTimes> times;
  for (const auto& s : kSchemes) times.push_back({s, {}, {}, opt.reps});
  const std::int64_t alloc_before = kh.halo.stats().allocations;
  kh.halo.reset_stats();
  auto run_scheme = [&](SchemeTimes& st, bool keep) {
    BENCH_MPI(MPI_Barrier(comm));
    const double t0 = MPI_Wtime();
    double ts = 0;
    if (st.scheme == "khalo") {
      kh.exchange();
    } else if (st.scheme == "khalo_split") {
      auto pending = kh.start();
      ts = MPI_Wtime() - t0;
      pending.wait();
    } else if (st.scheme == "naive") {
      naive.run();
    } else if (st.scheme == "seed_fixed") {
      seed.run();
    } else if (st.scheme == "mpi_datatype") {
      dt.run();
    } else {
      raw.run();
    }
    const double t = MPI_Wtime() - t0;
    if (keep) {
      st.t.push_back(t);
      st.t_start.push_back(ts);
    }
    return t;
  };
  std::vector<double> first(times.size(), 0.0);
  for (int r = 0; r < std::max(opt.warmup, 1); ++r) {
    for (std::size_t s = 0; s < times.size(); ++s) first[s] = run_scheme(times[s], false);
  }
  first = khalo_perf::max_over_ranks(first, comm);
  for (std::size_t s = 0; s < times.size(); ++s) {
    const int fit = static_cast<int>(opt.budget_s / std::max(2 * first[s], 1e-9));
    times[s].reps = std::max(std::min(opt.reps, fit), std::min(opt.reps, opt.min_reps));
  }
  for (int r = 0; r < opt.reps; ++r) {
    // A new order every repetition, the same on every rank: what ran before a scheme
    // changes its time (in a fixed cycle, the scheme after raw_mpi ran slower).
    std::vector<std::size_t> order(times.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), std::mt19937(static_cast<unsigned>(r)));
    for (std::size_t k : order) {
      auto& st = times[k];
      if (r < st.reps) {
        run_scheme(st, false);
        run_scheme(st, true);
      }
    }
  }
  const khalo::HaloStats timed = kh.halo.stats();  // each timed repetition runs twice
  const std::int64_t exchanges = 2 * (std::max(opt.warmup, 1) + times[0].reps + times[1].reps);

  // ---- Where khalo's time goes (profile.hpp).
  const Profile prof = profile_khalo(kh, geo, c, opt, comm);
  const auto& breakdown = prof.slowest;
  const auto& breakdown_all = prof.per_rank;

  // ---- Report.
  std::int64_t send_bytes = want_bytes, msg_bytes = geo.max_message_elems * F * static_cast<std::int64_t>(sizeof(T));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &send_bytes, 1, MPI_INT64_T, MPI_MAX, comm));
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &msg_bytes, 1, MPI_INT64_T, MPI_MAX, comm));
  std::vector<khalo_perf::Spread> spreads, start_spreads;
  for (auto& st : times) {
    spreads.push_back(khalo_perf::spread_of(khalo_perf::max_over_ranks(st.t, comm)));
    start_spreads.push_back(khalo_perf::spread_of(khalo_perf::max_over_ranks(st.t_start, comm)));
  }
  // Per-rank counters (per exchange) for the table of open sides.
  constexpr std::size_t kCounters = 18;
  std::int64_t mine[kCounters] = {geo.phases[0].low != MPI_PROC_NULL,
                                  geo.phases[0].high != MPI_PROC_NULL,
                                  one.messages,
                                  one.bytes_sent,
                                  one.bytes_packed,
                                  one.faces_packed,
                                  timed.allocations,
                                  alloc_before,
                                  one.datatype_sends,
                                  one.datatype_recvs,
                                  one.shared_sends,
                                  one.shared_recvs,
                                  timed.faces_packed,
                                  timed.faces_streamed,
                                  one.direct_sends,
                                  one.direct_recvs,
                                  one.mapped_sends,
                                  one.mapped_recvs};
  std::vector<std::int64_t> all(kCounters * static_cast<std::size_t>(nranks));
  BENCH_MPI(MPI_Gather(mine, kCounters, MPI_INT64_T, all.data(), kCounters, MPI_INT64_T, 0, comm));
  std::int64_t alloc_timed = timed.allocations;
  BENCH_MPI(MPI_Allreduce(MPI_IN_PLACE, &alloc_timed, 1, MPI_INT64_T, MPI_MAX, comm));
  MPI_Comm_free(&comm);

  std::vector<Json> records;
  if (me != 0) return records;
  const double raw_t = spreads[5].median, naive_t = spreads[2].median;
  std::printf(
      "\n== %s  %s  %d ranks  field %s %s x%d, %zu split dim(s) (%s), messages up to %.1f KiB, %s boundary; a cache "
      "line between ranks 0 and 1: %.0f ns one way\n",
      c.name.c_str(), c.layout.c_str(), nranks, shape_text(geo.padded).c_str(), sizeof(T) == 8 ? "f64" : "f32", F,
      c.split.size(), khalo::ProcessGrid::shape_text(grid.dims()).c_str(), msg_bytes / 1024.0,
      khalo::to_string(c.boundary).c_str(), line_ns);
  std::printf("%-13s %11s %21s %10s %5s %9s %8s %9s\n", "scheme", "median ms", "q1 .. q3 ms", "min ms", "reps", "GB/s",
              "x raw", "naive/x");
  for (std::size_t s = 0; s < times.size(); ++s) {
    const auto& sp = spreads[s];
    std::printf("%-13s %11.4f %10.4f .. %-8.4f %10.4f %5d %9.2f %8.2f %9.2f\n", times[s].scheme.c_str(),
                sp.median * 1e3, sp.q1 * 1e3, sp.q3 * 1e3, sp.min * 1e3, times[s].reps,
                static_cast<double>(send_bytes) / sp.median * 1e-9, sp.median / raw_t, naive_t / sp.median);
    Json j = {{"case", c.name},
              {"layout", c.layout},
              {"ranks", nranks},
              {"scheme", times[s].scheme},
              {"bytes", send_bytes},
              {"message_bytes", msg_bytes},
              {"median_s", sp.median},
              {"q1_s", sp.q1},
              {"q3_s", sp.q3},
              {"min_s", sp.min},
              {"reps", times[s].reps},
              {"shape", geo.padded},
              {"fields", F},
              {"dtype", sizeof(T) == 8 ? "float64" : "float32"},
              {"split_dims", c.split.size()},
              {"grid", khalo::ProcessGrid::shape_text(grid.dims())},
              {"boundary", khalo::to_string(c.boundary)},
              {"fresh_alloc", opt.fresh_alloc},
              {"raw_sendrecv", opt.raw_sendrecv},
              {"transport", khalo::to_string(opt.transport)},
              {"fill_every_exchange", opt.fill_every_exchange},
              {"in_place_min_run_bytes", opt.in_place_min_run_bytes},
              {"shared_memory", opt.shared_memory},
              {"node_shared_fields", opt.node_shared_fields},
              {"stream_packs", khalo::detail::to_string(khalo::detail::store_policy())},
              {"mapped_reads", khalo::detail::to_string(khalo::detail::mapped_policy())},
              {"line_latency_ns", line_ns}};
    if (times[s].scheme == "khalo_split") j["start_median_s"] = start_spreads[s].median;
    if (times[s].scheme == "khalo") {
      j["profile"] = {{"exchange_s", breakdown[0]}, {"pack_s", breakdown[1]},          {"unpack_s", breakdown[2]},
                      {"fill_s", breakdown[3]},     {"mpi_wait_s", breakdown[4]},      {"mpi_post_s", breakdown[5]},
                      {"rest_s", breakdown[6]},     {"row_copy_pack_s", breakdown[7]}, {"reps", opt.profile_reps}};
      if (geo.self_messages > 0) j["profile"]["periodic_plain_loop_s"] = breakdown[8];
      Json ranks = Json::array();  // the same per rank: who waits for whom
      for (int r = 0; r < nranks; ++r) {
        const double* v = &breakdown_all[kProfileParts * static_cast<std::size_t>(r)];
        ranks.push_back({{"exchange_s", v[0]},
                         {"pack_s", v[1]},
                         {"unpack_s", v[2]},
                         {"fill_s", v[3]},
                         {"mpi_wait_s", v[4]},
                         {"mpi_post_s", v[5]}});
      }
      j["profile"]["per_rank"] = ranks;
      j["allocations_while_timed"] = alloc_timed;
      // HaloStats of one exchange on every rank: an open side adds no message and no packed byte.
      // "_while_timed": over every exchange since the warm-up (which kind of store the packs used).
      Json per_rank = Json::array();
      for (int r = 0; r < nranks; ++r) {
        const std::int64_t* v = &all[kCounters * static_cast<std::size_t>(r)];
        per_rank.push_back({{"rank", r},
                            {"low_neighbour", v[0] != 0},
                            {"high_neighbour", v[1] != 0},
                            {"messages", v[2]},
                            {"bytes_sent", v[3]},
                            {"bytes_packed", v[4]},
                            {"faces_packed", v[5]},
                            {"allocations_at_plan", v[7]},
                            {"datatype_sends", v[8]},
                            {"datatype_recvs", v[9]},
                            {"shared_sends", v[10]},
                            {"shared_recvs", v[11]},
                            {"faces_packed_while_timed", v[12]},
                            {"faces_streamed_while_timed", v[13]},
                            {"direct_sends", v[14]},
                            {"direct_recvs", v[15]},
                            {"mapped_sends", v[16]},
                            {"mapped_recvs", v[17]}});
      }
      j["stats_per_exchange"] = per_rank;
    }
    records.push_back(j);
  }
  std::printf(
      "khalo, per exchange (medians of %d profiled exchanges, slowest rank each): pack %.4f ms, unpack or direct "
      "read %.4f ms, "
      "boundary fill "
      "%.4f ms, MPI_Waitall %.4f ms, MPI_Isend/Irecv %.4f ms, the rest %.4f ms, of %.4f ms; split phase: start() "
      "takes %.4f ms\n"
      "  a row-wise copy (memcpy per contiguous run) of the same faces takes %.4f ms: khalo's pack takes %.1fx that\n",
      opt.profile_reps, breakdown[1] * 1e3, breakdown[2] * 1e3, breakdown[3] * 1e3, breakdown[4] * 1e3,
      breakdown[5] * 1e3, breakdown[6] * 1e3, breakdown[0] * 1e3, start_spreads[1].median * 1e3, breakdown[7] * 1e3,
      breakdown[7] > 0 ? breakdown[1] / breakdown[7] : 0.0);
  if (geo.self_messages > 0) {
    std::printf(
        "  the copies of the periodic dimensions one rank spans, as one plain loop, take %.4f ms: khalo's boundary "
        "fill takes %.1fx that\n",
        breakdown[8] * 1e3, breakdown[8] > 0 ? breakdown[3] / breakdown[8] : 0.0);
  }
  std::printf(
      "khalo's transport: %s, runs in place from %lld B, node-shared memory %s (stores of packs another process reads: "
      "%s); rank 0 per "
      "exchange: %lld "
      "messages, %lld sent and %lld received through a derived datatype, %lld faces packed, %lld sent and %lld "
      "received through node-shared memory, %lld sent and %lld received by direct reads, %lld sent and %lld received "
      "from node-shared Views%s\n",
      khalo::to_string(opt.transport).c_str(), static_cast<long long>(opt.in_place_min_run_bytes),
      spec.shared_memory() ? "on" : "off", khalo::detail::to_string(khalo::detail::store_policy()),
      static_cast<long long>(all[2]), static_cast<long long>(all[8]), static_cast<long long>(all[9]),
      static_cast<long long>(all[5]), static_cast<long long>(all[10]), static_cast<long long>(all[11]),
      static_cast<long long>(all[14]), static_cast<long long>(all[15]), static_cast<long long>(all[16]),
      static_cast<long long>(all[17]), opt.node_shared_fields ? " (--node-shared-fields)" : "");
  if (c.show_stats) {
    std::printf("khalo HaloStats per exchange (after %lld timed exchanges: %lld new allocations)\n",
                static_cast<long long>(exchanges), static_cast<long long>(alloc_timed));
    std::printf("%5s %4s %5s %9s %11s %13s %13s %12s\n", "rank", "low", "high", "messages", "bytes sent",
                "bytes packed", "faces packed", "allocations");
    for (int r = 0; r < nranks; ++r) {
      const std::int64_t* v = &all[kCounters * static_cast<std::size_t>(r)];
      std::printf("%5d %4s %5s %9lld %11lld %13lld %13lld %12lld\n", r, v[0] ? "yes" : "open", v[1] ? "yes" : "open",
                  static_cast<long long>(v[2]), static_cast<long long>(v[3]), static_cast<long long>(v[4]),
                  static_cast<long long>(v[5]), static_cast<long long>(v[7]));
    }
    std::printf(
        "(an open side adds no message and no packed byte: each rank's counts are those of its neighbours only)\n");
  }
  std::fflush(stdout);
  return records;
}

// Copy bandwidth of this machine, for context: memcpy of \p bytes, median of repetitions.
double memcpy_gbps(std::size_t bytes) {
  std::vector<char> a(bytes, 1), b(bytes, 2);
  std::vector<double> t;
  for (int r = 0; r < 12; ++r) {
    const double t0 = MPI_Wtime();
    std::memcpy(b.data(), a.data(), bytes);
    t.push_back(MPI_Wtime() - t0);
    a[r] = b[bytes - 1 - static_cast<std::size_t>(r)];  // keep the copy observable
  }
  return static_cast<double>(bytes) / khalo_perf::spread_of(t).median * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  CLI::App app{"Halo exchange: khalo beside naive, fixed seed, MPI datatypes and raw MPI (time = max over ranks)"};
  bool quick = false;
  std::string only, filter, json;
  Options opt;
  app.add_flag("--quick", quick, "tiny shapes, few repetitions (a smoke test)");
  app.add_option("--only", only, "wan or hpc")->check(CLI::IsMember({"wan", "hpc"}));
  app.add_option("--case", filter, "only cases whose name contains this text");
  app.add_option("--reps", opt.reps, "timed repetitions per scheme")->check(CLI::PositiveNumber);
  app.add_option("--warmup", opt.warmup, "untimed repetitions first")->check(CLI::NonNegativeNumber);
  app.add_option("--budget", opt.budget_s, "seconds of timed repetitions per scheme and case, about")
      ->check(CLI::PositiveNumber);
  app.add_flag("--fresh-alloc", opt.fresh_alloc,
               "naive and seed_fixed concatenate into newly allocated tensors every time (as PyTorch on a CPU), "
               "paying first-touch page faults; default: into tensors allocated once (as a caching allocator)");
  app.add_flag("--raw-sendrecv", opt.raw_sendrecv,
               "raw_mpi as two MPI_Sendrecv per split dimension (serialises the directions) instead of "
               "nonblocking sends and receives all in flight");
  app.add_flag("--fill-every-exchange", opt.fill_every_exchange,
               "khalo and mpi_datatype zero the open sides on every exchange (default: once, since nothing "
               "writes the ghost layers in between; raw_mpi never does)");
  const std::map<std::string, khalo::Transport> transports{{"automatic", khalo::Transport::automatic},
                                                           {"pack", khalo::Transport::pack},
                                                           {"datatype", khalo::Transport::datatype}};
  app.add_option("--transport", opt.transport, "khalo's transport (HaloSpec::set_transport)")
      ->transform(CLI::CheckedTransformer(transports));
  app.add_flag(
      "--no-shared-memory", [&](std::int64_t) { opt.shared_memory = false; },
      "khalo sends packed faces through MPI, not node-shared buffers (HaloSpec::set_shared_memory)");
  app.add_flag("--node-shared-fields", opt.node_shared_fields,
               "khalo's Views lie in node-shared memory (khalo::NodeSharedArena): a neighbour on this node copies "
               "packed faces straight from them");
  app.add_option("--in-place-min", opt.in_place_min_run_bytes,
                 "khalo sends runs of at least this many bytes in place (HaloSpec::set_in_place_min_run_bytes)")
      ->check(CLI::PositiveNumber);
  app.add_option("--json", json, "write the records here (rank 0)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return runtime.world_rank() == 0 ? app.exit(e) : (e.get_exit_code() == 0 ? 0 : 2);
  }
  if (quick) {
    opt.reps = std::min(opt.reps, 3);
    opt.warmup = std::min(opt.warmup, 1);
    opt.profile_reps = 2;
  }
  const bool root = runtime.world_rank() == 0;
  std::vector<Case> cases;
  if (only != "hpc") {
    for (auto& c : wan_cases(quick)) cases.push_back(c);
  }
  if (only != "wan") {
    for (auto& c : hpc_cases(quick)) cases.push_back(c);
  }
  if (root) {
    std::printf(
        "bench_halo: %d ranks; %s; %s; time = slowest rank, median of up to %d repetitions (at least %d; about "
        "%.1f s per scheme and case) after %d warm-up\n",
        runtime.world_size(), khalo_perf::cpu_model().c_str(), khalo::build_info().c_str(), opt.reps,
        std::min(opt.reps, opt.min_reps), opt.budget_s, std::max(opt.warmup, 1));
    std::printf("memcpy on this machine: %.1f GB/s (1 MiB, in cache), %.1f GB/s (256 MiB)\n", memcpy_gbps(1 << 20),
                memcpy_gbps(std::size_t{256} << 20));
    std::printf(
        "GB/s = halo bytes the busiest rank sends per exchange / time; x raw = time / raw_mpi's time; naive/x = "
        "naive's time / time\n");
  }
  std::vector<Json> records;
  int status = 0;
  try {
    for (const auto& c : cases) {
      if (!filter.empty() && c.name.find(filter) == std::string::npos) continue;
      std::vector<Json> r;
      if (!c.fp64) {
        r = run_case<float*****, 1>(c, opt, MPI_COMM_WORLD);
      } else if (c.fields == 1) {
        r = run_case<double***, 1>(c, opt, MPI_COMM_WORLD);
      } else {
        r = run_case<double***, 8>(c, opt, MPI_COMM_WORLD);
      }
      records.insert(records.end(), r.begin(), r.end());
    }
  } catch (const std::exception& e) {
    if (root) std::fprintf(stderr, "%s\n", e.what());
    status = 1;
  }
  if (root && status == 0 && !json.empty()) khalo_perf::write_records(json, std::move(records));
  return status;
}
