// One-off trial (perf/RESULTS.md, "A run on a noisy Zen 5 guest"): the 128^3 grid's z fill of F
// cold fields of 130^3 f64, their memory advised MADV_NOHUGEPAGE (huge=0) or MADV_HUGEPAGE
// (huge=1) before the first touch; prints the fields' AnonHugePages to show which it got. Not
// built by the project: g++ -O3 -march=native -o zf z_fill_huge_pages.cpp && ./zf 8 0 1; ./zf 8 1 1
#include <sys/mman.h>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>
int main(int argc, char** argv) {
  const long N = 130, F = argc > 1 ? atol(argv[1]) : 8;
  const int huge = argc > 2 ? atoi(argv[2]) : 0;
  const int cold = argc > 3 ? atoi(argv[3]) : 1;
  const size_t bytes = (size_t(N * N * N) * 8 + (2u << 20)) / (2u << 20) * (2u << 20);
  std::vector<double*> f(F);
  for (long q = 0; q < F; ++q) {
    f[q] = static_cast<double*>(aligned_alloc(2u << 20, bytes));
    if (huge)
      madvise(f[q], bytes, MADV_HUGEPAGE);
    else
      madvise(f[q], bytes, MADV_NOHUGEPAGE);
    for (long i = 0; i < N * N * N; ++i) f[q][i] = 1.0;
  }
  std::vector<char> scrub(256 << 20, 1);
  std::vector<double> t;
  for (int rep = 0; rep < 21; ++rep) {
    if (cold)
      for (size_t i = 0; i < scrub.size(); i += 64) scrub[i]++;
    auto t0 = std::chrono::steady_clock::now();
    for (long q = 0; q < F; ++q) {
      double* d = f[q];
      const long rows = N * N;
      for (long k = 0; k < rows; ++k) {
        double* r = d + k * N;
        r[0] = r[N - 2];
        r[N - 1] = r[1];
      }
    }
    t.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  std::printf("F=%ld huge=%d cold=%d median %.3f ms min %.3f\n", F, huge, cold, t[t.size() / 2] * 1e3, t[0] * 1e3);
  FILE* s = fopen("/proc/self/smaps_rollup", "r");
  char line[256];
  while (s && fgets(line, sizeof line, s))
    if (strstr(line, "AnonHuge")) fputs(line, stdout);
}
