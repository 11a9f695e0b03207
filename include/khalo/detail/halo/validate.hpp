#pragma once
/// \file
/// The checks a plan makes before it exists, on every rank at once with the same message:
/// ranks, types, layouts, widths and boundaries agree, and every band owns what its halo needs.
/// Not public.

#include <khalo/decomposition.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/halo/boundary.hpp>
#include <khalo/detail/halo/fields.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

namespace khalo::detail {

/// The checks a plan makes before it exists: on every rank at once, with the
/// same message everywhere.
template <class Exec>
void validate(const Decomposition& dec, const HaloSpec& spec, const std::vector<FieldType<Exec>>& types,
              const std::vector<FieldShape>& shapes) {
  const std::string where = "khalo::Halo: ";
  std::string error;
  std::vector<std::int64_t> sig{static_cast<std::int64_t>(types.size())};
  std::vector<std::string> names{"the number of fields"};
  for (std::size_t f = 0; f < types.size(); ++f) {
    const std::string field = "field " + std::to_string(f);
    const FieldShape& s = shapes[f];
    sig.push_back(static_cast<std::int64_t>(s.extents.size()));
    names.push_back("the rank of " + field);
    sig.push_back(types[f].type_code);
    names.push_back("the element type of " + field + " (here " + types[f].type_name + ")");
    for (const std::int64_t v : layout_signature(s.extents, s.order)) {
      sig.push_back(v);
      names.push_back("the memory layout (stride order) of " + field);
    }
    if (!error.empty()) continue;
    if (static_cast<int>(s.extents.size()) != dec.rank()) {
      error = where + field + " has rank " + std::to_string(s.extents.size()) + " but the decomposition rank " +
              std::to_string(dec.rank());
      continue;
    }
    for (int d = 0; d < dec.rank() && error.empty(); ++d) {
      const DimHalo h = dec.is_split(d) ? spec.of(d) : DimHalo{0, 0, Boundary::none};
      const std::int64_t owned = dec.owned(d).size();
      const std::int64_t want = owned + h.low + h.high;
      if (h.low < 0 || h.high < 0) {
        error = where + "negative halo width in dimension " + std::to_string(d);
      } else if (s.extents[static_cast<std::size_t>(d)] != want) {
        error = where + field + " on rank " + std::to_string(dec.grid().rank()) + " has extent " +
                std::to_string(s.extents[static_cast<std::size_t>(d)]) + " in dimension " + std::to_string(d) +
                ", expected " + std::to_string(want) + " (" + std::to_string(owned) + " owned + " +
                std::to_string(h.low) + " + " + std::to_string(h.high) + " ghost layers)";
      }
    }
  }
  for (int d : dec.split_dims()) {
    const DimHalo h = spec.of(d);
    sig.insert(sig.end(), {h.low, h.high, static_cast<std::int64_t>(h.boundary)});
    names.insert(names.end(), 3, "the halo widths or boundary of dimension " + std::to_string(d));
    // Every rank can check every band: the split is deterministic.
    const int parts = dec.grid().dims()[static_cast<std::size_t>(dec.grid_dim_of(d))];
    const bool wrap = rule_of(h.boundary).wraps || dec.grid().periodic(dec.grid_dim_of(d));
    for (int c = 0; c < parts && error.empty(); ++c) {
      const std::int64_t n = dec.owned_at(d, c).size();
      const bool has_low = wrap || c > 0;
      const bool has_high = wrap || c < parts - 1;
      std::int64_t need = 0;
      if (has_low) need = std::max<std::int64_t>(need, h.high);
      if (has_high) need = std::max<std::int64_t>(need, h.low);
      if ((!has_low && h.low > 0) || (!has_high && h.high > 0)) {
        const int w = std::max(has_low ? 0 : h.low, has_high ? 0 : h.high);
        need = std::max<std::int64_t>(need, rule_of(h.boundary).owned_needed(w));
      }
      if (n < need) {
        error = where + "the band at grid coordinate " + std::to_string(c) + " of dimension " + std::to_string(d) +
                " owns " + std::to_string(n) + " layer(s), fewer than the " + std::to_string(need) +
                " that its halo (widths " + std::to_string(h.low) + "/" + std::to_string(h.high) + ", boundary " +
                to_string(h.boundary) + ") needs; use fewer ranks or a narrower halo";
      }
    }
  }
  const std::string disagree = disagreement(dec.grid().comm(), sig, names);
  throw_if_any(dec.grid().comm(), disagree.empty() ? error : where + disagree);
}

}  // namespace khalo::detail
