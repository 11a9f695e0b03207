#pragma once
// Arrays in the Python module: a numpy.ndarray through its buffer, a torch CPU tensor through
// data_ptr() and stride(), seen as an unmanaged Kokkos::View<T*..., LayoutStride, HostSpace>
// with the array's own strides (in elements): never copied, never converted.

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace khalo::python {

namespace py = pybind11;

enum class Elem { float32, float64, int32, int64 };

std::string elem_name(Elem e) {
  switch (e) {
    case Elem::float32: return "float32";
    case Elem::float64: return "float64";
    case Elem::int32: return "int32";
    case Elem::int64: return "int64";
  }
  return "?";
}

constexpr int kMaxRank = 5;

// What a halo call needs of an array: its memory, element type, extents and strides (in elements).
struct ArrayRef {
  py::object owner;  // the numpy array or torch tensor whose memory this is
  void* data = nullptr;
  Elem elem = Elem::float32;
  std::vector<std::int64_t> extents;
  std::vector<std::int64_t> strides;
};

// torch's Tensor type and the dtypes khalo takes, looked up once torch has been imported by the caller
// (khalo never imports torch itself). Leaked on purpose: nothing may drop a reference after the
// interpreter has finalized.
struct TorchApi {
  py::handle tensor, strided, float32, float64, int32, int64;
};

const TorchApi* torch_api() {
  static const TorchApi* api = nullptr;
  if (api != nullptr) return api;
  PyObject* modules = PySys_GetObject("modules");  // borrowed
  PyObject* torch = modules != nullptr ? PyDict_GetItemString(modules, "torch") : nullptr;
  if (torch == nullptr) return nullptr;
  const auto t = py::reinterpret_borrow<py::module_>(torch);
  const auto get = [&](const char* name) { return py::object(t.attr(name)).release(); };
  api = new TorchApi{get("Tensor"), get("strided"), get("float32"), get("float64"), get("int32"), get("int64")};
  return api;
}

// The element type of a torch dtype khalo takes; false for any other dtype.
inline bool torch_elem(const TorchApi& api, const py::handle& dtype, Elem& out) {
  if (dtype.is(api.float32)) {
    out = Elem::float32;
  } else if (dtype.is(api.float64)) {
    out = Elem::float64;
  } else if (dtype.is(api.int32)) {
    out = Elem::int32;
  } else if (dtype.is(api.int64)) {
    out = Elem::int64;
  } else {
    return false;
  }
  return true;
}

std::string type_name(const py::handle& obj) { return py::str(py::type::of(obj).attr("__name__")); }

// Fills \p out's extents and strides (in elements) from bytes or elements; an error for strides khalo
// cannot take (reversed, broadcast, not a multiple of the item size).
template <class Extent, class Stride>
std::string take_geometry(int rank, Extent extent, Stride stride, std::int64_t unit, ArrayRef& out) {
  if (rank < 1 || rank > kMaxRank) {
    return "arrays of rank 1.." + std::to_string(kMaxRank) + " only, got rank " + std::to_string(rank);
  }
  out.extents.resize(static_cast<std::size_t>(rank));
  out.strides.resize(static_cast<std::size_t>(rank));
  for (int d = 0; d < rank; ++d) {
    const std::int64_t n = extent(d);
    const std::int64_t s = stride(d);
    if (n > 1 && (s <= 0 || s % unit != 0)) {
      return "dimension " + std::to_string(d) + " has stride " + std::to_string(s) + (unit > 1 ? " bytes" : "") +
             "; khalo needs positive strides" + (unit > 1 ? " that are multiples of the item size" : "") +
             " (no reversed or broadcast views)";
    }
    out.extents[static_cast<std::size_t>(d)] = n;
    out.strides[static_cast<std::size_t>(d)] = n > 1 ? s / unit : 1;
  }
  return {};
}

std::size_t elem_size(Elem e) { return e == Elem::float32 || e == Elem::int32 ? 4 : 8; }

// A torch tensor, read from its own attributes (data_ptr, shape, stride, dtype): the tensor's memory
// as it is, with no intermediate object.
std::string take_tensor(const TorchApi& api, const py::handle& obj, ArrayRef& out) {
  if (!obj.attr("is_cpu").cast<bool>()) {
    return "a torch tensor must be on the CPU (got device " + std::string(py::str(obj.attr("device"))) + ")";
  }
  if (obj.attr("requires_grad").cast<bool>()) {
    return "a torch tensor that requires grad cannot be written in place; pass tensor.detach()";
  }
  if (!py::object(obj.attr("layout")).is(api.strided))
    return "only strided (dense) torch tensors, got a sparse or other layout";
  if (obj.attr("is_neg")().cast<bool>())
    return "the tensor is a lazy negation view (torch._neg_view); resolve it first";
  const py::object dtype = obj.attr("dtype");
  if (!torch_elem(api, dtype, out.elem)) {
    return "unsupported dtype " + std::string(py::str(dtype)) + " (float32, float64, int32 or int64)";
  }
  const auto shape = py::reinterpret_borrow<py::tuple>(obj.attr("shape"));
  const auto stride = obj.attr("stride")().cast<py::tuple>();
  std::string error = take_geometry(
      static_cast<int>(shape.size()), [&](int d) { return shape[static_cast<std::size_t>(d)].cast<std::int64_t>(); },
      [&](int d) { return stride[static_cast<std::size_t>(d)].cast<std::int64_t>(); }, 1, out);
  if (!error.empty()) return error;
  const auto address = obj.attr("data_ptr")().cast<std::uintptr_t>();
  if (address % elem_size(out.elem) != 0) return "the tensor's data is not aligned";
  out.data = reinterpret_cast<void*>(address);
  out.owner = py::reinterpret_borrow<py::object>(obj);
  return {};
}

std::string take_numpy(const py::array& a, ArrayRef& out) {
  const py::dtype dt = a.dtype();
  const char order = dt.byteorder();  // '=' native, '|' not applicable, '<' or '>' explicit
  constexpr bool little = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
  const bool native = order == '=' || order == '|' || order == (little ? '<' : '>');
  const char kind = dt.kind();
  const auto size = dt.itemsize();
  if (native && kind == 'f' && size == 4) {
    out.elem = Elem::float32;
  } else if (native && kind == 'f' && size == 8) {
    out.elem = Elem::float64;
  } else if (native && kind == 'i' && size == 4) {
    out.elem = Elem::int32;
  } else if (native && kind == 'i' && size == 8) {
    out.elem = Elem::int64;
  } else {
    return "unsupported dtype " + std::string(py::str(static_cast<const py::handle&>(dt))) +
           " (float32, float64, int32 or int64, native byte order)";
  }
  const int flags = py::detail::array_proxy(a.ptr())->flags;
  if ((flags & py::detail::npy_api::NPY_ARRAY_WRITEABLE_) == 0) {
    return "the array is read-only; ghost layers are written in place";
  }
  if ((flags & py::detail::npy_api::NPY_ARRAY_ALIGNED_) == 0) return "the array is not aligned";
  std::string error = take_geometry(
      static_cast<int>(a.ndim()), [&](int d) { return static_cast<std::int64_t>(a.shape(d)); },
      [&](int d) { return static_cast<std::int64_t>(a.strides(d)); }, static_cast<std::int64_t>(size), out);
  if (!error.empty()) return error;
  out.data = const_cast<void*>(a.data());
  out.owner = a;
  return {};
}

// The memory behind \p obj, or an error message (empty when fine). Never copies: what cannot be taken
// as it is is refused.
std::string take_array(const py::handle& obj, ArrayRef& out) {
  if (py::isinstance<py::array>(obj)) return take_numpy(py::reinterpret_borrow<py::array>(obj), out);
  const TorchApi* torch = torch_api();
  if (torch != nullptr && PyObject_IsInstance(obj.ptr(), torch->tensor.ptr()) == 1) {
    return take_tensor(*torch, obj, out);
  }
  return "expected a numpy.ndarray or a torch CPU tensor, got " + type_name(obj);
}

ArrayRef take_array_or_throw(const py::handle& obj, const char* where) {
  ArrayRef ref;
  const std::string error = take_array(obj, ref);
  if (!error.empty()) throw std::invalid_argument(std::string("khalo.") + where + ": " + error);
  return ref;
}

// An unmanaged View of rank R over \p ref's memory, with its extents and strides.
template <class T, int R>
struct ViewOf;
template <class T>
struct ViewOf<T, 1> {
  using type = Kokkos::View<T*, Kokkos::LayoutStride, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
};
template <class T>
struct ViewOf<T, 2> {
  using type = Kokkos::View<T**, Kokkos::LayoutStride, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
};
template <class T>
struct ViewOf<T, 3> {
  using type = Kokkos::View<T***, Kokkos::LayoutStride, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
};
template <class T>
struct ViewOf<T, 4> {
  using type = Kokkos::View<T****, Kokkos::LayoutStride, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
};
template <class T>
struct ViewOf<T, 5> {
  using type = Kokkos::View<T*****, Kokkos::LayoutStride, Kokkos::HostSpace, Kokkos::MemoryUnmanaged>;
};

template <class T, int R>
typename ViewOf<T, R>::type view_of(const ArrayRef& ref) {
  Kokkos::LayoutStride layout;
  for (int d = 0; d < R; ++d) {
    layout.dimension[d] = static_cast<std::size_t>(ref.extents[static_cast<std::size_t>(d)]);
    layout.stride[d] = static_cast<std::size_t>(ref.strides[static_cast<std::size_t>(d)]);
  }
  return typename ViewOf<T, R>::type(static_cast<T*>(ref.data), layout);
}

template <class T>
struct Tag {
  using type = T;
};

// Calls f(view) with the View that \p ref's element type and rank call for.
template <class F>
decltype(auto) with_view(const ArrayRef& ref, F&& f) {
  auto by_rank = [&](auto tag) -> decltype(auto) {
    using T = typename decltype(tag)::type;
    switch (ref.extents.size()) {
      case 1: return f(view_of<T, 1>(ref));
      case 2: return f(view_of<T, 2>(ref));
      case 3: return f(view_of<T, 3>(ref));
      case 4: return f(view_of<T, 4>(ref));
      default: return f(view_of<T, 5>(ref));
    }
  };
  switch (ref.elem) {
    case Elem::float32: return by_rank(Tag<float>{});
    case Elem::float64: return by_rank(Tag<double>{});
    case Elem::int32: return by_rank(Tag<std::int32_t>{});
    default: return by_rank(Tag<std::int64_t>{});
  }
}

}  // namespace khalo::python
