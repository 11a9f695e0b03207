// khalo's streamed pack (detail/stream_pack.hpp) of the Wan contiguous faces, one process, from a
// field out of cache (after a scrub of 96 MiB, as a convolution leaves it) and warm (the next
// two packs), beside two yardsticks:
//   interleaved: the same non-temporal copy run by run, without the pack's prefetch pass;
//   memcpy:      a memcpy per run into a buffer of this process (ordinary stores).
// Each face is row h = 30 of a (C, D, 32, W) float field in LayoutRight: C x D runs of W floats.
//
//   pack_cold [--quick]

#include "bench_common.hpp"

#include <khalo/detail/huge_pages.hpp>
#include <khalo/detail/stream_pack.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

namespace {

using khalo::detail::BlockWalk;
using Clock = std::chrono::steady_clock;

struct Face {
  std::int64_t c, d, w;
};

double micros_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count() * 1e6; }

}  // namespace

int main(int argc, char** argv) {
  Kokkos::initialize(argc, argv);
  int status = 0;
  {
    const bool quick = argc > 1 && std::string(argv[1]) == "--quick";
    const std::vector<Face> faces = quick ? std::vector<Face>{{8, 2, 104}}
                                          : std::vector<Face>{{96, 4, 104},  {96, 4, 208},  {96, 6, 416}, {192, 6, 104},
                                                              {192, 4, 416}, {384, 4, 104}, {384, 6, 208}};
    const int reps = quick ? 3 : 21;
    std::vector<unsigned char> scrub(quick ? (1 << 20) : (96 << 20), 1);
    const Kokkos::Serial exec;
    std::printf(
        "pack_cold: %s; one process; microseconds per pack, median (q1 .. q3) of %d; cold after a %zu MiB "
        "scrub\n",
        khalo_perf::cpu_model().c_str(), reps, scrub.size() >> 20);
    std::printf("%-16s %-12s %26s %26s\n", "face (C,D,W)", "scheme", "cold us", "warm us");
    for (const Face& f : faces) {
      constexpr std::int64_t H = 32;
      const std::int64_t n = f.c * f.d * H * f.w;
      const std::int64_t runs = f.c * f.d;
      std::unique_ptr<float[]> field(new float[static_cast<std::size_t>(n)]);
      khalo::detail::advise_huge_pages(field.get(), static_cast<std::size_t>(n) * sizeof(float));
      for (std::int64_t i = 0; i < n; ++i) field[static_cast<std::size_t>(i)] = static_cast<float>(i % 1000);
      BlockWalk w;
      w.ndims = 2;
      w.extent[0] = runs;
      w.stride[0] = H * f.w;
      w.extent[1] = f.w;
      w.stride[1] = 1;
      w.base = 30 * f.w;
      w.count = runs * f.w;
      std::vector<float> buf(static_cast<std::size_t>(w.count));
      const auto bytes = static_cast<std::size_t>(f.w) * sizeof(float);
      const char* names[] = {"khalo", "interleaved", "memcpy"};
      for (int scheme = 0; scheme < 3; ++scheme) {
        std::fill(buf.begin(), buf.end(), -1.0f);  // so that each scheme's check sees its own pack
        std::vector<double> cold, warm;
        for (int rep = 0; rep < reps; ++rep) {
          for (std::size_t i = 0; i < scrub.size(); i += 64) ++scrub[i];
          for (int k = 0; k < 3; ++k) {
            const auto t0 = Clock::now();
            if (scheme == 0) {
              khalo::detail::stream_pack_block(exec, field.get(), w, buf.data());
              exec.fence();
            } else {
              for (std::int64_t r = 0; r < runs; ++r) {
                const float* from = field.get() + w.run_offset(r);
                float* to = buf.data() + r * f.w;
                if (scheme == 1) {
                  khalo::detail::stream_copy(to, from, bytes);
                } else {
                  std::memcpy(to, from, bytes);
                }
              }
              khalo::detail::stream_fence();
            }
            (k == 0 ? cold : warm).push_back(micros_since(t0));
          }
        }
        // The data check: the last pack holds row 30 of every (c, d).
        for (std::int64_t r = 0; r < runs; ++r) {
          if (std::memcmp(buf.data() + r * f.w, field.get() + w.run_offset(r), bytes) != 0) {
            std::fprintf(stderr, "pack_cold: %s packed the wrong data\n", names[scheme]);
            status = 1;
            break;
          }
        }
        char face[32];
        std::snprintf(face, sizeof face, "(%ld,%ld,%ld)", static_cast<long>(f.c), static_cast<long>(f.d),
                      static_cast<long>(f.w));
        const khalo_perf::Spread sc = khalo_perf::spread_of(cold);
        const khalo_perf::Spread sw = khalo_perf::spread_of(warm);
        char c[64], m[64];
        std::snprintf(c, sizeof c, "%.1f (%.1f .. %.1f)", sc.median, sc.q1, sc.q3);
        std::snprintf(m, sizeof m, "%.1f (%.1f .. %.1f)", sw.median, sw.q1, sw.q3);
        std::printf("%-16s %-12s %26s %26s\n", face, names[scheme], c, m);
      }
    }
  }
  Kokkos::finalize();
  return status;
}
