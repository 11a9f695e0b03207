#pragma once
// khalo.NodeSharedArena: khalo::NodeSharedArena for Python, handing out NumPy arrays and PyTorch
// tensors in node-shared memory, whose faces a neighbour on the node copies straight out of them
// (docs/halo.md §7, "Node-shared fields"; docs/python.md §1).

#include "arrays.hpp"
#include "lifetime.hpp"

#include <khalo/layout.hpp>
#include <khalo/node_shared_arena.hpp>

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace khalo::python {

namespace py = pybind11;

// A torch dtype that khalo exchanges, as the NumPy dtype of the same elements; None otherwise
// (also where the caller has not imported torch).
inline py::object numpy_dtype_of_torch(const py::handle& dtype) {
  const TorchApi* t = torch_api();
  if (t == nullptr) return py::none();
  if (dtype.is(t->float32)) return py::dtype::of<float>();
  if (dtype.is(t->float64)) return py::dtype::of<double>();
  if (dtype.is(t->int32)) return py::dtype::of<std::int32_t>();
  if (dtype.is(t->int64)) return py::dtype::of<std::int64_t>();
  return py::none();
}

/// `arena.zeros(shape, dtype, memory_format)`: a zeroed array of \p shape in \p memory_format
/// (a name of khalo::MemoryFormat with a fixed order: "contiguous", "channels_last" for rank 4,
/// "channels_last_3d" for rank 5, "column_major"), handed out by the arena \p self. A NumPy
/// dtype gives a numpy.ndarray; torch.float32, float64, int32 or int64 a torch tensor over the
/// same memory. Either keeps the arena alive. ValueError for a negative extent, an unknown
/// format or one that does not fit the rank, and when the arena has no room left.
inline py::object arena_zeros(const py::object& self, const std::vector<std::int64_t>& shape, const py::object& dtype,
                              const std::string& memory_format) {
  require_alive("NodeSharedArena.zeros");
  auto& arena = self.cast<khalo::NodeSharedArena&>();
  const py::object torch_dtype = numpy_dtype_of_torch(dtype);
  const py::dtype dt = torch_dtype.is_none() ? py::dtype::from_args(dtype) : py::dtype(torch_dtype);
  for (auto e : shape) {
    if (e < 0) throw std::invalid_argument("khalo.NodeSharedArena.zeros: negative extent " + std::to_string(e));
  }
  const int rank = static_cast<int>(shape.size());
  const StrideOrder order = format_order(memory_format_from_string(memory_format), rank);
  const Kokkos::LayoutStride layout = dense_layout(shape, order);
  // Bytes, counted without wrapping: a shape too large for any memory must not become a small request.
  std::int64_t nbytes = dt.itemsize();
  for (auto e : shape) {
    if (__builtin_mul_overflow(nbytes, e, &nbytes)) {
      throw std::length_error("khalo.NodeSharedArena.zeros: the array is larger than any arena");
    }
  }
  // The arena's own 64-byte-aligned, zeroed memory, taken as bytes.
  auto bytes = arena.view<unsigned char*>({nbytes}, StrideOrder{0});
  const auto item = static_cast<std::size_t>(dt.itemsize());
  std::vector<py::ssize_t> extents, strides;
  for (int d = 0; d < rank; ++d) {
    extents.push_back(static_cast<py::ssize_t>(shape[static_cast<std::size_t>(d)]));
    strides.push_back(static_cast<py::ssize_t>(layout.stride[d] * item));
  }
  py::array array(dt, extents, strides, bytes.data(), self);  // base: the arena, alive while the array is
  if (torch_dtype.is_none()) return std::move(array);
  return py::module_::import("torch").attr("from_numpy")(array);
}

}  // namespace khalo::python
