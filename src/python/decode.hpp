#pragma once
// khalo.decode: the whole Wan 2.1 decoder on a latent that every rank holds whole.

#include <mpi.h>
#include <pybind11/numpy.h>

#include <string>

namespace khalo::python {

/// Decodes \p latent (N, z_dim, T, H, W) with the decoder in \p weights over \p comm; every
/// rank gets the whole video (docs/python.md).
pybind11::array_t<float> decode(const std::string& weights,
                                const pybind11::array_t<float, pybind11::array::c_style>& latent, MPI_Comm comm,
                                const std::string& layout, bool normalized);

}  // namespace khalo::python
