// A Kokkos Tools library that makes one rank fail, for the fail-stop tests.
// Loaded by Kokkos at initialisation (KOKKOS_PROFILE_LIBRARY in Kokkos 3,
// KOKKOS_TOOLS_LIBS in Kokkos 4); nothing of it is in khalo itself, and a run
// without those variables never sees it. It fails through the means a real
// fault takes: an allocation that does not succeed, an error inside an
// exchange, or the process dying.
//
//   KHALO_FAULT_RANK=R        the rank that fails (OMPI_COMM_WORLD_RANK, PMIX_RANK or SLURM_PROCID)
//   KHALO_FAULT_ALLOC=TEXT    fail an allocation whose Kokkos label contains TEXT
//   KHALO_FAULT_REGION=NAME   fail on entering the profiling region NAME (e.g. khalo::Halo::wait)
//   KHALO_FAULT_SKIP=K        let the first K matches pass (default 0)
//   KHALO_FAULT_ACTION=throw  throw std::bad_alloc (allocation) or std::runtime_error (region); default
//   KHALO_FAULT_ACTION=kill   raise SIGKILL instead, as `kill -9` would
#include <csignal>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <stdexcept>
#include <string>

namespace {

struct Fault {
  bool armed = false;
  std::string alloc;
  std::string region;
  long skip = 0;
  bool kill = false;
  std::string what;  // the message of the exception thrown
};

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? v : nullptr;
}

int my_rank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID", "PMI_RANK"}) {
    if (const char* v = env(name)) return std::atoi(v);
  }
  return 0;
}

Fault& fault() {
  static Fault f = [] {
    Fault x;
    const char* rank = env("KHALO_FAULT_RANK");
    x.armed = rank != nullptr && std::atoi(rank) == my_rank();
    if (const char* v = env("KHALO_FAULT_ALLOC")) x.alloc = v;
    if (const char* v = env("KHALO_FAULT_REGION")) x.region = v;
    if (const char* v = env("KHALO_FAULT_SKIP")) x.skip = std::atol(v);
    if (const char* v = env("KHALO_FAULT_ACTION")) x.kill = std::strcmp(v, "kill") == 0;
    return x;
  }();
  return f;
}

// True when this match is the one that fails.
bool fires(bool matches) {
  Fault& f = fault();
  if (!f.armed || !matches) return false;
  if (f.skip-- > 0) return false;
  f.armed = false;
  if (f.kill) std::raise(SIGKILL);
  return true;
}

class InjectedOutOfMemory : public std::bad_alloc {
 public:
  explicit InjectedOutOfMemory(std::string what) : what_(std::move(what)) {}
  const char* what() const noexcept override { return what_.c_str(); }

 private:
  std::string what_;
};

}  // namespace

// The Kokkos Tools interface (C linkage, looked up by name).
struct KokkosSpaceHandle {
  char name[64];
};

extern "C" void kokkosp_init_library(int, uint64_t, uint32_t, void*) {}
extern "C" void kokkosp_finalize_library() {}

extern "C" void kokkosp_allocate_data(KokkosSpaceHandle, const char* label, const void*, uint64_t size) {
  const Fault& f = fault();
  if (!f.alloc.empty() && fires(label != nullptr && std::strstr(label, f.alloc.c_str()) != nullptr)) {
    throw InjectedOutOfMemory("out of memory: allocating " + std::to_string(size) + " bytes for '" + label +
                              "' failed (injected by the fault tool)");
  }
}

extern "C" void kokkosp_push_profile_region(const char* name) {
  const Fault& f = fault();
  if (!f.region.empty() && fires(name != nullptr && f.region == name)) {
    throw std::runtime_error(std::string("failure inside ") + name + " (injected by the fault tool)");
  }
}
