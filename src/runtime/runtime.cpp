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

#include <cstdio>
#include <cstdlib>
#include <string>

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

}  // namespace

Runtime::Runtime(int& argc, char**& argv) {
  int mpi_ready = 0;
  KHALO_MPI_CHECK(MPI_Initialized(&mpi_ready));
  if (!mpi_ready) {
    int provided = 0;
    // FUNNELED: only the thread that called main talks to MPI; OpenMP threads compute.
    KHALO_MPI_CHECK(MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided));
    owns_mpi_ = true;
  }
  KHALO_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world_rank_));
  KHALO_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world_size_));
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
