#pragma once
/// \file
/// The plan behind khalo::Halo for one set of field shapes: the phases (phases.hpp) and the
/// send and receive buffers that persist across exchanges (buffers.hpp). The rooms: fields
/// (fields.hpp), messages and fills (messages.hpp), boundary policies (boundary.hpp), phase
/// geometry (phases.hpp), validation (validate.hpp), the in-place handshake (handshake.hpp), the
/// kind of store of packs (store_choice.hpp), mapped reads (mapped_reads.hpp), and the MPI engine
/// that runs a plan (engine.hpp).
/// Not public.

#include <khalo/detail/halo/buffers.hpp>
#include <khalo/detail/halo/fields.hpp>
#include <khalo/detail/halo/handshake.hpp>
#include <khalo/detail/halo/mapped_reads.hpp>
#include <khalo/detail/halo/messages.hpp>
#include <khalo/detail/halo/phases.hpp>
#include <khalo/detail/halo/store_choice.hpp>
#include <khalo/detail/halo/validate.hpp>

#include <vector>

namespace khalo::detail {

/// A plan for one set of field shapes: built collectively, then reused.
template <class MemSpace>
struct ShapePlan {
  std::vector<Phase> phases;
  Buffers<MemSpace> buffers;
  std::vector<StoreChoice> stores;         // per phase: the kind of store of the packs another process reads
  std::vector<MappedChoice> maps;          // per phase: whether the sends that can be mapped are
  std::vector<std::vector<void*>> zeroed;  // with HaloSpec::zero_fill_once: the Views whose open sides are zeroed
};

}  // namespace khalo::detail
