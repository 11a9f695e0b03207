#include <khalo/config.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/runtime.hpp>

#include <hdf5.h>
#include <mpi.h>
#include <Kokkos_Core.hpp>
#if defined(OPEN_MPI) && OPEN_MPI && __has_include(<mpi-ext.h>)
#include <mpi-ext.h>
#endif

#if defined(KOKKOS_ENABLE_CUDA)
#include <cuda_runtime_api.h>
#elif defined(KOKKOS_ENABLE_HIP)
#include <hip/hip_runtime_api.h>
#endif

#include <khalo/error.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

namespace khalo {
namespace {

// GPUs this process can see (0 on host backends); CUDA_VISIBLE_DEVICES and the
// like already applied, so `srun --gpus-per-task=1` leaves each rank one.
int visible_gpus() {
#if defined(KOKKOS_ENABLE_CUDA)
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
#elif defined(KOKKOS_ENABLE_HIP)
  int n = 0;
  return hipGetDeviceCount(&n) == hipSuccess ? n : 0;
#else
  return 0;
#endif
}

bool starts_with(const char* s, const char* prefix) { return std::string(s).rfind(prefix, 0) == 0; }

// Whether the user already told Kokkos which device to use.
bool device_chosen(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    if (argv[i] != nullptr && (starts_with(argv[i], "--kokkos-device-id") || starts_with(argv[i], "--device-id") ||
                               starts_with(argv[i], "--kokkos-map-device-id-by"))) {
      return true;
    }
  }
  for (const char* env : {"KOKKOS_DEVICE_ID", "KOKKOS_MAP_DEVICE_ID_BY"}) {
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return true;
  }
  return false;
}

const char* launcher_local_rank() {
  for (const char* env : {"SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK"}) {
    if (const char* v = std::getenv(env); v != nullptr && *v != '\0') return v;
  }
  return nullptr;
}

// The rank that handlers name; set once MPI is up.
volatile sig_atomic_t g_rank = -1;
volatile sig_atomic_t g_aborting = 0;

bool mpi_usable() noexcept {
  int initialized = 0;
  int finalized = 0;
  MPI_Initialized(&initialized);
  MPI_Finalized(&finalized);
  return initialized && !finalized;
}

void terminate_handler() {
  std::string what = "terminate called without an active exception";
  if (const auto e = std::current_exception()) {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      what = std::string("uncaught exception: ") + x.what();
    } catch (...) {
      what = "uncaught exception of unknown type";
    }
  }
  Runtime::abort_job(what);
}

const char* signal_name(int sig) {
  switch (sig) {
    case SIGSEGV: return "SIGSEGV (invalid memory access)";
    case SIGBUS: return "SIGBUS (bus error)";
    case SIGFPE: return "SIGFPE (arithmetic error)";
    case SIGILL: return "SIGILL (illegal instruction)";
    case SIGABRT: return "SIGABRT (abort, e.g. Kokkos::abort or a failed assertion)";
    default: return "a fatal signal";
  }
}

// Best effort: MPI_Abort is not async-signal-safe, but a rank that dies alone
// of a signal would leave the others waiting (srun does not end the job by
// default), which is worse.
void signal_handler(int sig) {
  if (g_aborting) {
    std::signal(sig, SIG_DFL);
    std::raise(sig);
    return;
  }
  g_aborting = 1;
  char line[160];
  const int n = std::snprintf(line, sizeof line, "khalo: rank %d: %s\n", static_cast<int>(g_rank), signal_name(sig));
  if (n > 0) {
    [[maybe_unused]] const auto w = ::write(STDERR_FILENO, line, static_cast<std::size_t>(n));
  }
  MPI_Abort(MPI_COMM_WORLD, 2);
  std::_Exit(2);
}

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kSanitized = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kSanitized = true;
#else
constexpr bool kSanitized = false;
#endif
#else
constexpr bool kSanitized = false;
#endif

void install_handlers() {
  std::set_terminate(terminate_handler);
  // Sanitizers report through their own handlers; KHALO_NO_SIGNAL_HANDLERS=1 keeps the
  // MPI library's (OpenMPI prints a backtrace).
  const char* off = std::getenv("KHALO_NO_SIGNAL_HANDLERS");
  if (kSanitized || (off != nullptr && *off != '\0' && std::string(off) != "0")) return;
  struct sigaction action {};
  action.sa_handler = signal_handler;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESETHAND;
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT}) sigaction(sig, &action, nullptr);
}

double fail_agree_seconds() {
  if (const char* v = std::getenv("KHALO_FAIL_AGREE_SECONDS"); v != nullptr && *v != '\0') {
    char* end = nullptr;
    const double s = std::strtod(v, &end);
    if (end != v && s >= 0) return s;
  }
  return 3.0;
}

}  // namespace

void Runtime::abort_job(const std::string& what) noexcept {
  g_aborting = 1;
  std::fprintf(stderr, "khalo: rank %d: %s\n", static_cast<int>(g_rank), what.c_str());
  std::fflush(stderr);
  if (mpi_usable()) MPI_Abort(MPI_COMM_WORLD, 2);
  std::_Exit(2);
}

int Runtime::guard(const char* program, const std::function<int()>& body) const {
  std::string what;
  std::exception_ptr error;  // rethrown under throw_only, after the catch block has ended
  try {
    return body();
  } catch (const std::exception& e) {
    if (is_collective(e)) {
      if (world_rank_ == 0) std::fprintf(stderr, "%s: error: %s\n", program, e.what());
      return 2;
    }
    what = e.what();
    error = std::current_exception();
  } catch (...) {
    what = "exception of unknown type";
    error = std::current_exception();
  }
  // Did every rank fail? Then the error is everyone's: one message, exit 2, no abort.
  if (fail_comm_ != MPI_COMM_NULL && mpi_usable()) {
    int mine = world_rank_;
    int lowest = 0;
    MPI_Request request = MPI_REQUEST_NULL;
    if (MPI_Iallreduce(&mine, &lowest, 1, MPI_INT, MPI_MIN, fail_comm_, &request) == MPI_SUCCESS) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(fail_agree_seconds());
      int done = 0;
      while (MPI_Test(&request, &done, MPI_STATUS_IGNORE) == MPI_SUCCESS && !done &&
             std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
      }
      if (done) {
        int len = world_rank_ == lowest ? static_cast<int>(what.size()) : 0;
        MPI_Bcast(&len, 1, MPI_INT, lowest, fail_comm_);
        std::string message = what;
        message.resize(static_cast<std::size_t>(len));
        MPI_Bcast(message.data(), len, MPI_CHAR, lowest, fail_comm_);
        if (world_rank_ == 0) std::fprintf(stderr, "%s: error: %s\n", program, message.c_str());
        return 2;
      }
    }
  }
  if (policy_ == FailurePolicy::throw_only) std::rethrow_exception(error);
  abort_job(what);
}

Runtime::Runtime(int& argc, char**& argv, FailurePolicy policy) : policy_(policy) {
  int mpi_ready = 0;
  KHALO_MPI_CHECK(MPI_Initialized(&mpi_ready));
  int provided = MPI_THREAD_SINGLE;
  if (!mpi_ready) {
    // FUNNELED: only the thread that called main talks to MPI; OpenMP threads compute.
    KHALO_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    owns_mpi_ = true;
  } else {
    KHALO_MPI_CHECK(MPI_Query_thread(&provided));
  }
  KHALO_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
  KHALO_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
  g_rank = world_rank_;
  if (provided < MPI_THREAD_FUNNELED) {
    // Every rank gets the same answer from the same library, so every rank throws.
    throw std::runtime_error("khalo::Runtime: the MPI library provides thread level " + std::to_string(provided) +
                             ", below the MPI_THREAD_FUNNELED that khalo needs");
  }
  KHALO_MPI_CHECK(MPI_Comm_dup(MPI_COMM_WORLD, &fail_comm_));
  KHALO_MPI_CHECK(MPI_Comm_set_errhandler(fail_comm_, MPI_ERRORS_RETURN));
  if (policy_ == FailurePolicy::abort_job) install_handlers();
  local_rank_ = node_local_rank(MPI_COMM_WORLD);
  const char* verbose = std::getenv("KHALO_VERBOSE");
  const bool say = verbose != nullptr && *verbose != '\0' && std::string(verbose) != "0";
  if (!Kokkos::is_initialized()) {
    // One GPU per rank, round robin over the node's ranks; Kokkos reads KOKKOS_DEVICE_ID
    // (a --kokkos-device-id on the command line still wins).
    const int gpus = visible_gpus();
    if (gpus > 0 && !device_chosen(argc, argv)) {
      device_id_ = local_rank_ % gpus;
      setenv("KOKKOS_DEVICE_ID", std::to_string(device_id_).c_str(), 1);
    }
    Kokkos::initialize(argc, argv);
    owns_kokkos_ = true;
  }
  if (say) {
    const char* hint = launcher_local_rank();
    std::fprintf(stderr, "khalo: rank %d of %d, node-local rank %d (launcher says %s), %s%s\n", world_rank_,
                 world_size_, local_rank_, hint != nullptr ? hint : "nothing", device_id_ >= 0 ? "GPU " : "backend ",
                 device_id_ >= 0 ? std::to_string(device_id_).c_str() : Kokkos::DefaultExecutionSpace::name());
  }
}

Runtime::~Runtime() {
  if (owns_kokkos_ && Kokkos::is_initialized()) {
    Kokkos::finalize();
  }
  if (fail_comm_ != MPI_COMM_NULL && mpi_usable()) MPI_Comm_free(&fail_comm_);
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (owns_mpi_ && !finalized) {
    MPI_Finalize();
  }
}

int node_local_rank(MPI_Comm comm) {
  MPI_Comm node = MPI_COMM_NULL;
  int me = 0;
  KHALO_MPI_CHECK(MPI_Comm_rank(comm, &me));
  KHALO_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, me, MPI_INFO_NULL, &node));
  int local = 0;
  const int rc = MPI_Comm_rank(node, &local);
  MPI_Comm_free(&node);
  KHALO_MPI_CHECK(rc);
  return local;
}

bool gpu_aware_mpi() {
  if (const char* env = std::getenv("KHALO_GPU_AWARE_MPI"); env != nullptr && *env != '\0') {
    return std::string(env) != "0";
  }
#if defined(MPIX_CUDA_AWARE_SUPPORT) && MPIX_CUDA_AWARE_SUPPORT
  return MPIX_Query_cuda_support() == 1;
#elif defined(MPICH) && defined(MPIX_GPU_SUPPORT_CUDA)
  int supported = 0;
  return MPIX_GPU_query_support(MPIX_GPU_SUPPORT_CUDA, &supported) == MPI_SUCCESS && supported != 0;
#else
  return false;
#endif
}

std::string build_info() {
  char mpi_version[MPI_MAX_LIBRARY_VERSION_STRING] = {};
  int len = 0;
  KHALO_MPI_CHECK(MPI_Get_library_version(mpi_version, &len));
  std::string mpi(mpi_version, static_cast<std::size_t>(len));
  if (const auto eol = mpi.find_first_of("\r\n,"); eol != std::string::npos) mpi.resize(eol);
  unsigned major = 0, minor = 0, release = 0;
  H5get_libversion(&major, &minor, &release);
#ifdef H5_HAVE_PARALLEL
  const char* hdf5_kind = "parallel";
#else
  const char* hdf5_kind = "serial";
#endif
  return std::string("khalo ") + KHALO_VERSION_STRING + "; Kokkos " + std::to_string(KOKKOS_VERSION / 10000) + "." +
         std::to_string(KOKKOS_VERSION / 100 % 100) + "." + std::to_string(KOKKOS_VERSION % 100) + " (" +
         Kokkos::DefaultExecutionSpace::name() + "); " + mpi + (gpu_aware_mpi() ? " (GPU-aware)" : " (not GPU-aware)") +
         "; HDF5 " + std::to_string(major) + "." + std::to_string(minor) + "." + std::to_string(release) + " (" +
         hdf5_kind + ")";
}

}  // namespace khalo
