// khalo's convolutions beside cuDNN's on one GPU, on device memory: the decoder's convs at
// the Wan stage's per-rank shape (1, 96, 4, 60, 104), NCDHW (contiguous) and NDHWC
// (channels_last_3d), float32.
//   conv3d_3x3x3         causal: 2 leading frames and one ghost row above and below carried by
//                        the input, W padded by 1 (96 -> 96)
//   conv3d_1x1x1         96 -> 96
//   conv3d_3x1x1         time_conv: 2 leading frames (96 -> 192)
//   upsample_conv2d_3x3  nearest 2x then a per-frame 3x3 (96 -> 48, output 120 x 208). khalo
//                        fuses the upsampling into the conv; cuDNN has no such op, so its side
//                        is a separate upsampling kernel (Kokkos) plus the conv, timed together
//                        (the upsampling alone is reported too)
// Both read the same input buffer (cuDNN through a descriptor with the View's strides), so
// the ghost rows and leading frames are the same data; cuDNN pads nothing but W (and the
// upsampled W). Biases are zero on both sides (khalo still adds them).
// cuDNN runs its best forward algorithm from cudnnFindConvolutionForwardAlgorithm (legacy
// API, still in cuDNN 9), twice: with CUDNN_FMA_MATH (strict float32, what khalo computes:
// the ratio's baseline) and with CUDNN_DEFAULT_MATH (TF32 tensor cores allowed on Ampere and
// later: for information). Time = wall time of one call, fenced, median over repetitions
// after warm-up; GFLOP/s = 2 x MACs / time. khalo's output is checked against cuDNN's FMA
// output: max |khalo - cudnn| / max |cudnn| must stay below --tolerance (else exit 1), so the
// benchmark is also a correctness check of the team kernel on a GPU.
// Built only when Kokkos has CUDA and cuDNN is found (perf/CMakeLists.txt); cuDNN is used here
// only, never by the library.
//   bench_cudnn [--quick] [--reps N] [--tolerance X] [--json FILE]
#include <khalo/nn/conv.hpp>
#include <khalo/runtime.hpp>

#include "bench_common.hpp"

#include <cuda_runtime.h>
#include <cudnn.h>
#include <Kokkos_Core.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Exec = Kokkos::Cuda;
using Mem = Kokkos::CudaSpace;
using Json = nlohmann::json;

void check(cudnnStatus_t s, const char* what) {
  if (s != CUDNN_STATUS_SUCCESS) {
    throw std::runtime_error(std::string("bench_cudnn: ") + what + ": " + cudnnGetErrorString(s));
  }
}

struct Shape {
  int c, t, h, w;
};

struct Conv {
  std::string name;
  int cout, kt, kh, kw;
  bool up;
};

/// One cuDNN convolution set up for given tensors: descriptors, the best algorithm for a math
/// type, its workspace.
struct CudnnConv {
  cudnnHandle_t handle;
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t f = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  cudnnConvolutionFwdAlgo_t algo{};
  Kokkos::View<char*, Mem> workspace;
  bool supported = false;
  std::string algo_name;
  float find_ms = 0;  // cuDNN's own time for the chosen algorithm

  CudnnConv(cudnnHandle_t h, const std::array<int, 5>& xdim, const std::array<int, 5>& xstride,
            const std::array<int, 5>& ydim, const std::array<int, 5>& ystride, const std::array<int, 5>& fdim,
            bool channels_last, const std::array<int, 3>& pad, cudnnMathType_t math)
      : handle(h) {
    check(cudnnCreateTensorDescriptor(&x), "cudnnCreateTensorDescriptor");
    check(cudnnCreateTensorDescriptor(&y), "cudnnCreateTensorDescriptor");
    check(cudnnCreateFilterDescriptor(&f), "cudnnCreateFilterDescriptor");
    check(cudnnCreateConvolutionDescriptor(&conv), "cudnnCreateConvolutionDescriptor");
    check(cudnnSetTensorNdDescriptor(x, CUDNN_DATA_FLOAT, 5, xdim.data(), xstride.data()), "input descriptor");
    check(cudnnSetTensorNdDescriptor(y, CUDNN_DATA_FLOAT, 5, ydim.data(), ystride.data()), "output descriptor");
    check(cudnnSetFilterNdDescriptor(f, CUDNN_DATA_FLOAT, channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5,
                                     fdim.data()),
          "filter descriptor");
    const std::array<int, 3> one{1, 1, 1};
    check(cudnnSetConvolutionNdDescriptor(conv, 3, pad.data(), one.data(), one.data(), CUDNN_CROSS_CORRELATION,
                                          CUDNN_DATA_FLOAT),
          "convolution descriptor");
    check(cudnnSetConvolutionMathType(conv, math), "cudnnSetConvolutionMathType");
    std::array<int, 5> got{};
    check(cudnnGetConvolutionNdForwardOutputDim(conv, x, f, 5, got.data()), "output dimensions");
    if (got != ydim) throw std::logic_error("bench_cudnn: cuDNN's output shape differs from khalo's");
    int count = 0;
    std::array<cudnnConvolutionFwdAlgoPerf_t, CUDNN_CONVOLUTION_FWD_ALGO_COUNT> perf{};
    const cudnnStatus_t s =
        cudnnFindConvolutionForwardAlgorithm(h, x, f, conv, y, static_cast<int>(perf.size()), &count, perf.data());
    if (s == CUDNN_STATUS_NOT_SUPPORTED) return;
    check(s, "cudnnFindConvolutionForwardAlgorithm");
    for (int i = 0; i < count; ++i) {  // sorted fastest first
      if (perf[static_cast<std::size_t>(i)].status != CUDNN_STATUS_SUCCESS) continue;
      if (math == CUDNN_FMA_MATH && perf[static_cast<std::size_t>(i)].mathType != CUDNN_FMA_MATH) continue;
      algo = perf[static_cast<std::size_t>(i)].algo;
      find_ms = perf[static_cast<std::size_t>(i)].time;
      std::size_t bytes = 0;
      check(cudnnGetConvolutionForwardWorkspaceSize(h, x, f, conv, y, algo, &bytes), "workspace size");
      workspace = Kokkos::View<char*, Mem>("bench_cudnn::workspace", std::max<std::size_t>(bytes, 1));
      supported = true;
      algo_name = "algo " + std::to_string(static_cast<int>(algo)) +
                  (perf[static_cast<std::size_t>(i)].mathType == CUDNN_FMA_MATH ? " fma" : " tensor-op");
      break;
    }
  }
  CudnnConv(const CudnnConv&) = delete;
  CudnnConv& operator=(const CudnnConv&) = delete;
  ~CudnnConv() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(f);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
  }
  void run(const float* in, const float* weight, float* out) const {
    const float one = 1.0f, zero = 0.0f;
    check(cudnnConvolutionForward(handle, &one, x, in, f, weight, conv, algo, workspace.data(), workspace.size(), &zero,
                                  y, out),
          "cudnnConvolutionForward");
  }
};

template <class View>
std::array<int, 5> dims_of(const View& v) {
  std::array<int, 5> d{};
  for (int i = 0; i < 5; ++i) d[static_cast<std::size_t>(i)] = static_cast<int>(v.extent(static_cast<unsigned>(i)));
  return d;
}
template <class View>
std::array<int, 5> strides_of(const View& v) {
  std::array<int, 5> s{};
  for (int i = 0; i < 5; ++i) s[static_cast<std::size_t>(i)] = static_cast<int>(v.stride(static_cast<unsigned>(i)));
  return s;
}

/// Median wall time of \p f (fenced on \p exec) over \p reps calls after two warm-up calls.
double median_seconds(const Exec& exec, int reps, const std::function<void()>& f) {
  std::vector<double> t;
  for (int r = 0; r < reps + 2; ++r) {
    exec.fence();
    const auto t0 = std::chrono::steady_clock::now();
    f();
    exec.fence();
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (r >= 2) t.push_back(dt);
  }
  return khalo_perf::spread_of(t).median;
}

/// max |a - b| / max |b| over two tensors of the same extents (any strides).
template <class View>
double max_rel_error(const View& a, const View& b) {
  auto ha = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), a);
  auto hb = Kokkos::create_mirror_view_and_copy(Kokkos::HostSpace(), b);
  double diff = 0, ref = 0;
  for (std::size_t c = 0; c < ha.extent(1); ++c)
    for (std::size_t t = 0; t < ha.extent(2); ++t)
      for (std::size_t h = 0; h < ha.extent(3); ++h)
        for (std::size_t w = 0; w < ha.extent(4); ++w) {
          const double x = ha(0, c, t, h, w), y = hb(0, c, t, h, w);
          diff = std::max(diff, std::abs(x - y));
          ref = std::max(ref, std::abs(y));
          if (!std::isfinite(x)) diff = INFINITY;
        }
  return ref > 0 ? diff / ref : diff;
}

/// \p dst (1, C, T, 2H + 2, 2W) = the nearest-2x image of \p src (1, C, T, H + 2, W): row j
/// from row floor((j - 1) / 2) + 1, column q from column q / 2.
void upsample2x(const Exec& exec, const khalo::nn::Activation<Mem>& in, const khalo::nn::Activation<Mem>& up,
                bool last) {
  const khalo::nn::Strided5 src = khalo::nn::strided(in), dst = khalo::nn::strided(up);
  const auto C = static_cast<std::int64_t>(up.extent(1)), T = static_cast<std::int64_t>(up.extent(2));
  const auto R = static_cast<std::int64_t>(up.extent(3)), W2 = static_cast<std::int64_t>(up.extent(4));
  Kokkos::parallel_for(
      "bench_cudnn::upsample2x", Kokkos::RangePolicy<Exec>(exec, 0, C * T * R * W2),
      KOKKOS_LAMBDA(const std::int64_t i) {
        // Consecutive threads write consecutive addresses: C fastest for NDHWC, W for NCDHW.
        std::int64_t c, t, j, q;
        if (last) {
          c = i % C;
          q = i / C % W2;
          j = i / (C * W2) % R;
          t = i / (C * W2 * R);
        } else {
          q = i % W2;
          j = i / W2 % R;
          t = i / (W2 * R) % T;
          c = i / (W2 * R * T);
        }
        dst(0, c, t, j, q) = src(0, c, t, j == 0 ? 0 : (j - 1) / 2 + 1, q / 2);
      });
}

Json run(cudnnHandle_t handle, const Exec& exec, khalo::MemoryFormat format, const Shape& s, const Conv& cv, int reps,
         double tolerance) {
  const bool last = format == khalo::MemoryFormat::channels_last_3d;
  const int C = s.c, T = s.t, H = s.h, W = s.w, K = cv.cout;
  const int taps = cv.kt * cv.kh * cv.kw;
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  // PyTorch's layout (K, C, kt, kh, kw), scaled like a trained layer's.
  const float scale = 1.0f / std::sqrt(static_cast<float>(C * taps));
  std::vector<float> w(static_cast<std::size_t>(K) * C * taps), b(static_cast<std::size_t>(K), 0.0f);
  for (auto& x : w) x = scale * normal(rng);
  const auto weights = khalo::nn::ConvWeights<Mem>::from_torch(w, b, K, C, cv.kt, cv.kh, cv.kw, format);
  // cuDNN's filter: KCTRS for NCDHW, KTRSC for NDHWC.
  std::vector<float> fw(w.size());
  for (int k = 0; k < K; ++k)
    for (int c = 0; c < C; ++c)
      for (int tap = 0; tap < taps; ++tap) {
        const std::size_t src = (static_cast<std::size_t>(k) * C + c) * taps + tap;
        const std::size_t dst = last ? (static_cast<std::size_t>(k) * taps + tap) * C + c : src;
        fw[dst] = w[src];
      }
  Kokkos::View<float*, Mem> cudnn_w("bench_cudnn::filter", fw.size());
  Kokkos::deep_copy(cudnn_w,
                    Kokkos::View<const float*, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>(fw.data(), fw.size()));

  // The input carries kt - 1 leading frames and, for kh = 3, a ghost row above and below.
  const int ghost = cv.kh / 2, up = cv.up ? 2 : 1;
  auto in = khalo::nn::make_activation<Mem>("in", {1, C, T + cv.kt - 1, H + 2 * ghost, W}, format);
  auto out = khalo::nn::make_activation<Mem>("out", {1, K, T, up * H, up * W}, format);
  auto ref = khalo::nn::make_activation<Mem>("ref", {1, K, T, up * H, up * W}, format);
  auto tf32 = khalo::nn::make_activation<Mem>("tf32", {1, K, T, up * H, up * W}, format);
  {
    auto h = Kokkos::create_mirror_view(in);
    for (std::size_t c = 0; c < h.extent(1); ++c)
      for (std::size_t t = 0; t < h.extent(2); ++t)
        for (std::size_t r = 0; r < h.extent(3); ++r)
          for (std::size_t x = 0; x < h.extent(4); ++x) h(0, c, t, r, x) = normal(rng);
    Kokkos::deep_copy(in, h);
  }
  khalo::nn::ConvLaunch l;
  l.in = khalo::nn::strided(in);
  l.out = khalo::nn::strided(out);
  l.frames = T;
  l.row_end = up * H;
  l.in_width = W;
  l.out_width = up * W;
  l.cout_count = K;
  std::string kernel;
  const double khalo_s = median_seconds(exec, reps, [&] {
    kernel = khalo::nn::conv(exec, l, weights, cv.up, khalo::nn::ConvAlgorithm::automatic).name();
  });

  // cuDNN's input: the input itself, or for the upsampler its nearest-2x image of every row the
  // fused kernel reads: upsampled rows -1 .. 2H (global), i.e. 2H + 2 rows from the ghosted
  // input, row j from input row floor((j - 1) / 2) + 1.
  khalo::nn::Activation<Mem> x = in;
  std::function<void()> upsample = [] {};
  if (cv.up) {
    x = khalo::nn::make_activation<Mem>("up", {1, C, T, 2 * H + 2, 2 * W}, format);
    upsample = [&exec, &in, &x, last] { upsample2x(exec, in, x, last); };
  }
  const std::array<int, 3> pad{0, 0, cv.kw / 2};
  const auto ydim = dims_of(out);
  std::array<int, 5> fdim{K, C, cv.kt, cv.kh, cv.kw};
  const double macs = static_cast<double>(C) * K * taps * T * (up * H) * (up * W);
  Json j{{"bench", "conv_vs_cudnn"},
         {"conv", cv.name},
         {"layout", khalo::to_string(format)},
         {"C", C},
         {"Cout", K},
         {"T", T},
         {"H", H},
         {"W", W},
         {"khalo_s", khalo_s},
         {"khalo_gflops", 2 * macs / khalo_s * 1e-9},
         {"khalo_kernel", kernel},
         {"backend", Exec::name()}};
  double upsample_s = 0;
  if (cv.up) {
    upsample_s = median_seconds(exec, reps, upsample);
    j["cudnn_upsample_s"] = upsample_s;
  }
  upsample();
  exec.fence();
  for (const auto math : {CUDNN_FMA_MATH, CUDNN_DEFAULT_MATH}) {
    const bool fma = math == CUDNN_FMA_MATH;
    const std::string key = fma ? "cudnn" : "cudnn_default_math";
    // A layout or shape cuDNN refuses is recorded, not fatal: the other convs still run.
    std::unique_ptr<CudnnConv> made;
    try {
      made =
          std::make_unique<CudnnConv>(handle, dims_of(x), strides_of(x), ydim, strides_of(out), fdim, last, pad, math);
    } catch (const std::runtime_error& e) {
      j[key + "_algo"] = std::string("error: ") + e.what();
      continue;
    }
    const CudnnConv& cd = *made;
    if (!cd.supported) {
      j[key + "_algo"] = "unsupported";
      continue;
    }
    auto& y = fma ? ref : tf32;
    const double conv_s = median_seconds(exec, reps, [&] { cd.run(x.data(), cudnn_w.data(), y.data()); });
    // The upsampler's cuDNN time includes its separate upsampling kernel.
    const double total = conv_s + upsample_s;
    j[key + "_algo"] = cd.algo_name;
    j[key + "_conv_s"] = conv_s;
    j[key + "_s"] = total;
    j[key + "_find_ms"] = cd.find_ms;
    j[key + "_gflops"] = 2 * macs / total * 1e-9;
    j["khalo_over_" + key] = total / khalo_s;  // speed ratio: > 1 means khalo is faster
    const double err = max_rel_error(out, y);
    j[key + "_max_rel_error"] = err;
    if (fma) j["ok"] = err <= tolerance;
  }
  // No cuDNN result to check against: acceptable for NDHWC (cuDNN's legacy API may refuse it),
  // a failure of this benchmark for NCDHW, cuDNN's native layout.
  if (!j.contains("ok")) j["ok"] = last;
  return j;
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  bool quick = false;
  int reps = 20;
  // Loose enough for FFT and Winograd algorithms (~1e-5 here), far below a wrong tap or
  // channel (errors of order 1).
  double tolerance = 1e-3;
  std::string json;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--quick") == 0) quick = true;
    if (std::strcmp(argv[i], "--reps") == 0 && i + 1 < argc) reps = std::max(1, std::atoi(argv[++i]));
    if (std::strcmp(argv[i], "--tolerance") == 0 && i + 1 < argc) tolerance = std::atof(argv[++i]);
    if (std::strcmp(argv[i], "--json") == 0 && i + 1 < argc) json = argv[++i];
  }
  if (quick) reps = std::min(reps, 3);
  const Shape s = quick ? Shape{16, 2, 8, 16} : Shape{96, 4, 60, 104};
  const std::vector<Conv> convs{{"conv3d_3x3x3", s.c, 3, 3, 3, false},
                                {"conv3d_1x1x1", s.c, 1, 1, 1, false},
                                {"conv3d_3x1x1", 2 * s.c, 3, 1, 1, false},
                                {"upsample_conv2d_3x3", s.c / 2, 1, 3, 3, true}};
  int device = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&device) != cudaSuccess || cudaGetDeviceProperties(&prop, device) != cudaSuccess) {
    std::fprintf(stderr, "bench_cudnn: no CUDA device\n");
    return 1;
  }
  std::printf("bench_cudnn: %s (sm_%d%d), cuDNN %zu, %s; input (1, %d, %d, %d, %d); median of %d after 2 warm-up\n",
              prop.name, prop.major, prop.minor, cudnnGetVersion(), khalo::build_info().c_str(), s.c, s.t, s.h, s.w,
              reps);
  std::printf("%-18s %-20s %5s %9s %9s %9s %8s %9s %10s  %s / %s\n", "layout", "conv", "Cout", "khalo ms", "cuDNN ms",
              "khalo GF", "cuDNN GF", "khalo/cu", "max rel", "khalo kernel", "cuDNN algo (FMA math)");
  cudnnHandle_t handle = nullptr;
  check(cudnnCreate(&handle), "cudnnCreate");
  const Exec exec;
  check(cudnnSetStream(handle, exec.cuda_stream()), "cudnnSetStream");
  std::vector<Json> records;
  int status = 0;
  try {
    for (auto f : {khalo::MemoryFormat::contiguous, khalo::MemoryFormat::channels_last_3d}) {
      for (const auto& cv : convs) {
        Json r = run(handle, exec, f, s, cv, reps, tolerance);
        r["gpu"] = prop.name;
        r["cudnn_version"] = cudnnGetVersion();
        const bool has = r.contains("cudnn_s");
        std::printf("%-18s %-20s %5d %9.3f %9s %9.1f %8s %9s %10s  %s / %s%s\n", r["layout"].get<std::string>().c_str(),
                    cv.name.c_str(), cv.cout, r["khalo_s"].get<double>() * 1e3,
                    has ? std::to_string(r["cudnn_s"].get<double>() * 1e3).substr(0, 7).c_str() : "-",
                    r["khalo_gflops"].get<double>(),
                    has ? std::to_string(r["cudnn_gflops"].get<double>()).substr(0, 7).c_str() : "-",
                    has ? std::to_string(r["khalo_over_cudnn"].get<double>()).substr(0, 5).c_str() : "-",
                    has ? std::to_string(r["cudnn_max_rel_error"].get<double>()).substr(0, 9).c_str() : "-",
                    r["khalo_kernel"].get<std::string>().c_str(), r["cudnn_algo"].get<std::string>().c_str(),
                    r["ok"].get<bool>() ? "" : "  WRONG");
        if (!r["ok"].get<bool>()) status = 1;
        records.push_back(std::move(r));
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cudnn: %s\n", e.what());
    status = 1;
  }
  cudnnDestroy(handle);
  if (!json.empty()) khalo_perf::write_records(json, std::move(records));
  std::printf("target: khalo >= 0.5x cuDNN (FMA math) per conv; khalo's output within %.0e of cuDNN's: %s\n", tolerance,
              status == 0 ? "outputs agree" : "FAILED");
  return status;
}
