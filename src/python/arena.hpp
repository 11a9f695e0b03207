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
#include <string>
#include <vector>

namespace khalo::python {

namespace py = pybind11;

// A torch dtype that khalo exchanges, as the NumPy dtype of the same elements; None otherwise
// (also where the caller has not imported torch).
inline py::object numpy_dtype_of_torch(const py::handle& dtype) {
  const TorchApi* t = torch_api();
  Elem e = Elem::float32;
  if (t == nullptr || !torch_elem(*t, dtype, e)) return py::none();
  switch (e) {
    case Elem::float32: return py::dtype::of<float>();
    case Elem::float64: return py::dtype::of<double>();
    case Elem::int32: return py::dtype::of<std::int32_t>();
    case Elem::int64: return py::dtype::of<std::int64_t>();
  }
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
  const StrideOrder order = format_order(memory_format_from_string(memory_format), static_cast<int>(shape.size()));
  const auto item = static_cast<std::size_t>(dt.itemsize());
  const std::size_t bytes = khalo::NodeSharedArena::dense_bytes(shape, item);  // refuses a count that wraps, first
  const Kokkos::LayoutStride layout = dense_layout(shape, order);
  unsigned char* memory = arena.allocate(bytes);
  std::vector<py::ssize_t> extents, strides;
  for (std::size_t d = 0; d < shape.size(); ++d) {
    extents.push_back(static_cast<py::ssize_t>(shape[d]));
    strides.push_back(static_cast<py::ssize_t>(layout.stride[d] * item));
  }
  py::array array(dt, extents, strides, memory, self);  // base: the arena, alive while the array is
  if (torch_dtype.is_none()) return std::move(array);
  return py::module_::import("torch").attr("from_numpy")(array);
}

}  // namespace khalo::python
