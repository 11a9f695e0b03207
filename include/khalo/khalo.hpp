#pragma once
/// \file
/// Everything khalo offers, in one include.

#include <khalo/config.hpp>
#include <khalo/decomposition.hpp>
#include <khalo/error.hpp>
#include <khalo/halo.hpp>
#include <khalo/halo_rows.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/io/compare.hpp>
#include <khalo/io/safetensors.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/io/weights.hpp>
#include <khalo/layout.hpp>
#include <khalo/nn/conv.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <khalo/nn/pointwise.hpp>
#include <khalo/nn/tensor.hpp>
#include <khalo/node_shared_arena.hpp>
#include <khalo/runtime.hpp>
