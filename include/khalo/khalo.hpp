#pragma once
/// \file
/// Everything khalo offers, in one include.

#include <khalo/config.hpp>
#include <khalo/decomposition.hpp>
#include <khalo/halo.hpp>
#include <khalo/halo_rows.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/layout.hpp>
#include <khalo/runtime.hpp>
