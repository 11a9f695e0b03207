// No #pragma once, on purpose: every kernel header includes this at its top and
// conv_macros_end.hpp at its bottom, so the macros below exist inside the
// kernel headers only and never reach a user of khalo.

// Unrolling a tile's loop keeps its accumulators in registers (GCC needs telling);
// keeping a short loop lets GCC's loop vectorizer see it (see channel_fma).
#if defined(__GNUC__) && !defined(__clang__) && !defined(__CUDACC__)
#define KHALO_UNROLL _Pragma("GCC unroll 48")
#define KHALO_KEEP_LOOP _Pragma("GCC unroll 1")
#else
#define KHALO_UNROLL
#define KHALO_KEEP_LOOP
#endif
