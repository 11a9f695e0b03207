#pragma once
/// \file
/// The environment variables that fix one of the halo engine's choices, to compare its ways
/// (KHALO_STREAM_PACKS, KHALO_MAPPED_READS) or to turn a transport off (KHALO_SHARED_MEMORY,
/// KHALO_DIRECT_READS). One reading for all of them, so that they accept the same values. Not
/// public.

#include <cstdlib>
#include <cstring>

namespace khalo::detail {

enum class EnvSwitch { off, on, unset };

/// The switch \p name: "0" off, "1" on; unset, empty or anything else leaves the default
/// (measured, or allowed).
inline EnvSwitch env_switch(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr) return EnvSwitch::unset;
  if (std::strcmp(v, "0") == 0) return EnvSwitch::off;
  if (std::strcmp(v, "1") == 0) return EnvSwitch::on;
  return EnvSwitch::unset;
}

}  // namespace khalo::detail
