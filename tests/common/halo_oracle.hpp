#pragma once
// The oracle's checks for gtest: Views filled with the values of global_values.hpp
// and compared, element by element, with what halo_expected.hpp says a halo holds.

#include <halo_expected.hpp>
#include <test_views.hpp>

#include <string>

namespace khalo::test {

/// How many neighbours this rank has along array dimension \p dim (0, 1 or 2; no wrap).
inline int neighbours(const Decomposition& dec, int dim) {
  return (dec.neighbor(dim, Side::low) != MPI_PROC_NULL) + (dec.neighbor(dim, Side::high) != MPI_PROC_NULL);
}

/// Fills owned elements with their global value (times \p scale: new values for each of a run
/// of exchanges) and ghosts with the sentinel.
template <class View>
void fill_owned(const View& v, const Decomposition& dec, const HaloSpec& spec, double scale = 1.0) {
  fill(v,
       [&](const Index& i) { return is_owned(dec, spec, i) ? scale * value_at(global_of(dec, spec, i)) : sentinel; });
}

/// Counts elements that differ from the oracle (times \p scale, as fill_owned) and reports the
/// first few. The sentinel, which stands for untouched ghosts, is not scaled.
template <class View>
int count_wrong(const View& v, const Decomposition& dec, const HaloSpec& spec, const std::string& what,
                double scale = 1.0) {
  const auto h = span_to_host(v);
  int wrong = 0;
  for_each_index(detail::extents_of(v), [&](const Index& i) {
    const Index g = global_of(dec, spec, i);
    const double e = expected_value(dec, spec, g);
    const double want = static_cast<typename View::non_const_value_type>(e == sentinel ? e : scale * e);
    const double got = h[offset_of(v, i)];
    if (got != want && ++wrong <= 3) {
      std::string idx;
      for (auto x : g) idx += std::to_string(x) + ",";
      ADD_FAILURE() << what << ": at global (" << idx << ") got " << got << ", want " << want;
    }
  });
  return wrong;
}

}  // namespace khalo::test
