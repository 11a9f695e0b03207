// One-off trial (perf/RESULTS.md, "A shared face by its datatype"): the 128^3 grid's z fill of
// 8 cold fields of 130^3 f64, with software prefetch D rows ahead (0: none). Not built by the
// project: g++ -O3 -march=native -o zf z_fill_prefetch.cpp && for D in 0 4 8 16 32; do ./zf 8 $D; done
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
int main(int argc, char** argv) {
  const long N = 130, F = argc > 1 ? atol(argv[1]) : 8;
  const int D = argc > 2 ? atoi(argv[2]) : 0;  // prefetch distance in rows (0: none)
  std::vector<std::vector<double>> f(F, std::vector<double>(N * N * N, 1.0));
  std::vector<char> scrub(256 << 20, 1);
  std::vector<double> t;
  for (int rep = 0; rep < 21; ++rep) {
    for (size_t i = 0; i < scrub.size(); i += 64) scrub[i]++;
    auto t0 = std::chrono::steady_clock::now();
    for (long q = 0; q < F; ++q) {
      double* d = f[q].data();
      const long rows = N * N;
      for (long k = 0; k < rows; ++k) {
        double* r = d + k * N;
        if (D) {
          __builtin_prefetch(r + D * N, 1);
          __builtin_prefetch(r + D * N + N - 1, 1);
        }
        r[0] = r[N - 2];
        r[N - 1] = r[1];
      }
    }
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("F=%ld D=%d median %.3f ms min %.3f\n", F, D, t[t.size() / 2] * 1e3, t[0] * 1e3);
}
