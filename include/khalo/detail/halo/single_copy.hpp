#pragma once
/// \file
/// Whether the MPI library moves a large message between two ranks of one node by a single copy
/// that the receiver makes out of the sender's memory (Open MPI's shared-memory transport with
/// CMA, XPMEM or KNEM), and from which size on. Not public.
///
/// Why it matters: a face packed for such a message is read next by another process, just like
/// a face packed into a node-shared buffer, so its pack streams past the cache
/// (stream_pack.hpp). Where the sender copies the message itself (eager sizes, or no single-copy
/// mechanism) an ordinary store is better: the sender reads the pack back from its own cache.
///
/// The answer comes from the MPI tool interface's control variables: one named
/// `<prefix>single_copy_mechanism` whose value is not "none", and the same component's
/// `<prefix>eager_limit` (messages up to it are copied by the sender). An MPI that names no such
/// variable (MPICH, or Open MPI before MPI_Init loaded the transport) gets ordinary stores.

#include <mpi.h>

#include <cstddef>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>

namespace khalo::detail {

inline constexpr std::size_t kNoSingleCopy = std::numeric_limits<std::size_t>::max();

inline bool ends_with(const std::string& s, const std::string& end) {
  return s.size() >= end.size() && s.compare(s.size() - end.size(), end.size(), end) == 0;
}

/// The rule on control variables given by name (an enumeration's value by its item's name, an
/// integer's in decimal): the smallest message the receiver copies out of the sender's memory,
/// or kNoSingleCopy.
inline std::size_t single_copy_min_bytes(const std::map<std::string, std::string>& cvars) {
  static const std::string mechanism = "single_copy_mechanism";
  for (const auto& [name, value] : cvars) {
    if (!ends_with(name, mechanism) || value.empty() || value == "none") continue;
    auto eager = cvars.find(name.substr(0, name.size() - mechanism.size()) + "eager_limit");
    if (eager == cvars.end()) continue;
    try {
      return static_cast<std::size_t>(std::stoull(eager->second)) + 1;
    } catch (const std::exception&) {
      continue;
    }
  }
  return kNoSingleCopy;
}

/// Reads the control variables whose names end in `single_copy_mechanism` or `eager_limit`
/// (integers of any width, and enumerations, of one value) through MPI_T. Empty when the tool
/// interface is not there. Local: no communication.
inline std::map<std::string, std::string> single_copy_control_variables() {
  std::map<std::string, std::string> out;
  int provided = 0;
  if (MPI_T_init_thread(MPI_THREAD_SINGLE, &provided) != MPI_SUCCESS) return out;
  int n = 0;
  if (MPI_T_cvar_get_num(&n) != MPI_SUCCESS) n = 0;
  for (int i = 0; i < n; ++i) {
    char name[256];
    int name_len = sizeof name;
    int verbosity = 0;
    int bind = 0;
    int scope = 0;
    MPI_Datatype type = MPI_DATATYPE_NULL;
    MPI_T_enum items = MPI_T_ENUM_NULL;
    char description[1024];
    int description_len = sizeof description;
    if (MPI_T_cvar_get_info(i, name, &name_len, &verbosity, &type, &items, description, &description_len, &bind,
                            &scope) != MPI_SUCCESS) {
      continue;
    }
    const std::string key = name;
    if (bind != MPI_T_BIND_NO_OBJECT || !(ends_with(key, "single_copy_mechanism") || ends_with(key, "eager_limit"))) {
      continue;
    }
    MPI_T_cvar_handle handle = MPI_T_CVAR_HANDLE_NULL;
    int count = 0;
    if (MPI_T_cvar_handle_alloc(i, nullptr, &handle, &count) != MPI_SUCCESS) continue;
    // Open MPI's sizes are size_t (MPI_UNSIGNED_LONG), its enumerations int.
    union {
      int i;
      unsigned u;
      long l;
      unsigned long ul;
      long long ll;
      unsigned long long ull;
    } v{};
    const bool read = count == 1 && MPI_T_cvar_read(handle, &v) == MPI_SUCCESS;
    MPI_T_cvar_handle_free(&handle);
    long long value = 0;
    if (!read) continue;
    if (type == MPI_INT) {
      value = v.i;
    } else if (type == MPI_UNSIGNED) {
      value = v.u;
    } else if (type == MPI_LONG) {
      value = v.l;
    } else if (type == MPI_UNSIGNED_LONG) {
      value = static_cast<long long>(v.ul);
    } else if (type == MPI_LONG_LONG) {
      value = v.ll;
    } else if (type == MPI_UNSIGNED_LONG_LONG) {
      value = static_cast<long long>(v.ull);
    } else {
      continue;
    }
    std::string text = std::to_string(value);
    int n_items = 0;
    char enum_name[256];
    int enum_len = sizeof enum_name;
    if (items != MPI_T_ENUM_NULL && MPI_T_enum_get_info(items, &n_items, enum_name, &enum_len) == MPI_SUCCESS) {
      for (int k = 0; k < n_items; ++k) {
        int item_value = 0;
        char item[256];
        int item_len = sizeof item;
        if (MPI_T_enum_get_item(items, k, &item_value, item, &item_len) == MPI_SUCCESS && item_value == value) {
          text = item;
        }
      }
    }
    out[key] = text;
  }
  MPI_T_finalize();
  return out;
}

/// This process's MPI: the smallest on-node message its receiver copies out of the sender's
/// memory, or kNoSingleCopy. Asked once per process, after MPI_Init: the transport does not
/// change, and Open MPI 4.1's MPI_T_init_thread alone takes a fifth of a second.
inline std::size_t single_copy_min_bytes() {
  static const std::size_t from = single_copy_min_bytes(single_copy_control_variables());
  return from;
}

}  // namespace khalo::detail
