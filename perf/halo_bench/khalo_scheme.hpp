#pragma once
// The khalo and khalo_split schemes (schemes.hpp): one khalo::Halo over the case's
// F fields, planned once; Views and Halo live as long as the scheme.

#include "arrays.hpp"

#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>

#include <array>
#include <tuple>

namespace halo_bench {

template <class View, int F>
struct KhaloScheme {
  Exec exec;
  std::array<View, F> views;
  khalo::Halo<Exec, Mem> halo;

  KhaloScheme(const khalo::Decomposition& dec, const khalo::HaloSpec& spec, const std::array<View, F>& fields)
      : views(fields),
        halo(std::apply([&](const auto&... v) { return khalo::Halo<Exec, Mem>(dec, spec, v...); }, views)) {}

  // khalo: Halo::exchange, blocking.
  void exchange() {
    std::apply([&](const auto&... v) { halo.exchange(exec, v...); }, views);
  }

  // khalo_split: Halo::start; the caller waits on what it returns.
  khalo::HaloExchange<Exec, Mem> start() {
    return std::apply([&](const auto&... v) { return halo.start(exec, v...); }, views);
  }
};

}  // namespace halo_bench
