// The Python module `khalo` (docs/python.md): halo exchange of NumPy arrays and PyTorch CPU tensors in
// place, in their own memory format, over mpi4py communicators; and khalo::io::compare_files.
//
// An array is never copied: its buffer is wrapped as an unmanaged Kokkos::View<T*..., LayoutStride,
// HostSpace> with the array's own strides (in elements), so khalo's layout-generic engine sees the
// caller's memory as it is (a channels-last tensor stays channels-last).

#include <khalo/config.hpp>
#include <khalo/decomposition.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/halo.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/io/compare.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/model.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <mpi4py/mpi4py.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

using Exec = Kokkos::DefaultHostExecutionSpace;
using HostHalo = khalo::Halo<Exec, Kokkos::HostSpace>;
using HostExchange = khalo::HaloExchange<Exec, Kokkos::HostSpace>;

// ---------------------------------------------------------------------------------------------
// Kokkos: initialised at import unless someone else did it; finalised by an atexit hook that first
// releases every live Halo and exchange (docs/python.md §6). Python runs atexit hooks before it
// clears module globals, so a Halo still referenced there would otherwise free its Kokkos buffers
// after Kokkos::finalize.

class Resource {
 public:
  virtual ~Resource() = default;
  virtual void release() noexcept = 0;
};

struct KokkosState {
  bool owned = false;      // this module initialised Kokkos, so it finalises it
  bool finalized = false;  // the hook ran: no new Halo
  std::set<Resource*> live;
};

KokkosState& kokkos_state() {
  static KokkosState state;
  return state;
}

void finalize_module() noexcept {
  auto& s = kokkos_state();
  if (s.finalized) return;
  s.finalized = true;
  // Releasing a handle completes its exchange, whose engine it shares with its Halo, so the order does
  // not matter. Released objects stay in the set until Python destroys them.
  for (Resource* r : s.live) r->release();
  if (s.owned && Kokkos::is_initialized()) Kokkos::finalize();
}

void require_alive(const char* what) {
  if (kokkos_state().finalized) {
    throw std::runtime_error(std::string("khalo.") + what +
                             ": khalo was finalized (interpreter exit or khalo.finalize())");
  }
}

// ---------------------------------------------------------------------------------------------
// Communicators: any mpi4py.MPI.Comm, or None for MPI_COMM_WORLD.

MPI_Comm comm_from(const py::object& obj) {
  if (obj.is_none()) return MPI_COMM_WORLD;
  if (!PyObject_TypeCheck(obj.ptr(), &PyMPIComm_Type)) {
    throw py::type_error("khalo: expected an mpi4py.MPI.Comm (or None for COMM_WORLD), got " +
                         std::string(py::str(py::type::of(obj).attr("__name__"))));
  }
  MPI_Comm* comm = PyMPIComm_Get(obj.ptr());
  if (comm == nullptr) throw py::error_already_set();
  if (*comm == MPI_COMM_NULL) throw std::invalid_argument("khalo: the communicator is MPI.COMM_NULL");
  return *comm;
}

// ---------------------------------------------------------------------------------------------
// Arrays: a numpy.ndarray through its buffer, a torch CPU tensor through data_ptr() and stride().

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
  if (dtype.is(api.float32)) {
    out.elem = Elem::float32;
  } else if (dtype.is(api.float64)) {
    out.elem = Elem::float64;
  } else if (dtype.is(api.int32)) {
    out.elem = Elem::int32;
  } else if (dtype.is(api.int64)) {
    out.elem = Elem::int64;
  } else {
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

// ---------------------------------------------------------------------------------------------
// Halo and its split-phase handle.

class PyExchange final : public Resource {
 public:
  PyExchange(HostExchange handle, py::object array) : handle_(std::move(handle)), array_(std::move(array)) {
    kokkos_state().live.insert(this);
  }
  ~PyExchange() override {
    kokkos_state().live.erase(this);
    if (handle_) {
      py::gil_scoped_release unlocked;
      handle_.reset();  // completes the exchange quietly, as HaloExchange's destructor does
    }
  }
  PyExchange(const PyExchange&) = delete;
  PyExchange& operator=(const PyExchange&) = delete;

  void wait() {
    if (!handle_) throw std::logic_error("khalo.Exchange.wait: nothing in flight (already waited for)");
    {
      py::gil_scoped_release unlocked;
      std::optional<HostExchange> handle = std::move(handle_);
      handle_.reset();
      handle->wait();
    }
    array_ = py::none();
  }
  bool pending() const noexcept { return handle_.has_value(); }
  void release() noexcept override { handle_.reset(); }

 private:
  std::optional<HostExchange> handle_;
  py::object array_;  // keeps the caller's memory alive until wait()
};

class PyHalo final : public Resource {
 public:
  PyHalo(const khalo::Decomposition& dec, const khalo::HaloSpec& spec, const py::handle& obj) {
    require_alive("Halo");
    // The array is checked on every rank together: a bad array on one rank alone must not leave the
    // others waiting in the plan's collectives.
    ArrayRef ref;
    const std::string error = take_array(obj, ref);
    khalo::detail::throw_if_any(dec.grid().comm(), error.empty() ? error : "khalo.Halo: " + error);
    elem_ = ref.elem;
    halo_ = with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      return std::make_unique<HostHalo>(dec, spec, view);
    });
    kokkos_state().live.insert(this);
  }
  ~PyHalo() override { kokkos_state().live.erase(this); }
  PyHalo(const PyHalo&) = delete;
  PyHalo& operator=(const PyHalo&) = delete;

  void exchange(const py::handle& obj) {
    ArrayRef ref = take(obj, "Halo.exchange");
    with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      halo_->exchange(Exec(), view);
    });
  }

  std::unique_ptr<PyExchange> start(const py::handle& obj) {
    ArrayRef ref = take(obj, "Halo.start");
    auto handle = with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      return halo_->start(Exec(), view);
    });
    return std::make_unique<PyExchange>(std::move(handle), ref.owner);
  }

  py::dict stats() const {
    const khalo::HaloStats& s = halo("Halo.stats").stats();
    py::dict d;
    d["faces_packed"] = s.faces_packed;
    d["bytes_packed"] = s.bytes_packed;
    d["bytes_sent"] = s.bytes_sent;
    d["bytes_received"] = s.bytes_received;
    d["messages"] = s.messages;
    d["allocations"] = s.allocations;
    return d;
  }
  void reset_stats() { halo("Halo.reset_stats").reset_stats(); }

  // For perf/bench_python_halo.py: \p reps blocking exchanges timed in C++ exactly as the benchmark times
  // them from Python (barrier, MPI_Wtime around one exchange, the slowest rank's time), so that the
  // difference between the two is what the Python call costs.
  std::vector<double> time_exchanges(const py::handle& obj, int reps) {
    ArrayRef ref = take(obj, "Halo._time_exchanges");
    if (reps < 1) throw std::invalid_argument("khalo.Halo._time_exchanges: reps must be at least 1");
    const MPI_Comm comm = halo_->decomposition().grid().comm();
    std::vector<double> t(static_cast<std::size_t>(reps));
    with_view(ref, [&](const auto& view) {
      py::gil_scoped_release unlocked;
      for (double& ti : t) {
        KHALO_MPI_CHECK(MPI_Barrier(comm));
        const double t0 = MPI_Wtime();
        halo_->exchange(Exec(), view);
        ti = MPI_Wtime() - t0;
      }
      KHALO_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, t.data(), reps, MPI_DOUBLE, MPI_MAX, comm));
    });
    return t;
  }
  void release() noexcept override { halo_.reset(); }

 private:
  HostHalo& halo(const char* where) const {
    if (halo_ == nullptr) {
      throw std::runtime_error(std::string("khalo.") + where +
                               ": khalo was finalized (interpreter exit or khalo.finalize())");
    }
    return *halo_;
  }
  // \p where: "Halo.exchange" or "Halo.start", for messages.
  ArrayRef take(const py::handle& obj, const char* where) {
    halo(where);
    ArrayRef ref = take_array_or_throw(obj, where);
    if (ref.elem != elem_) {
      throw std::invalid_argument(std::string("khalo.") + where + ": the plan was made for " + elem_name(elem_) +
                                  ", got " + elem_name(ref.elem));
    }
    return ref;
  }

  Elem elem_ = Elem::float32;
  std::unique_ptr<HostHalo> halo_;
};

// ---------------------------------------------------------------------------------------------
// compare

py::object optional_index(const std::optional<std::vector<std::int64_t>>& v) {
  if (!v) return py::none();
  return py::tuple(py::cast(*v));
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// The whole decoder: the same latent on every rank in, the whole video on every rank out.

py::array_t<float> decode(const std::string& weights, const py::array_t<float, py::array::c_style>& latent,
                          const py::object& comm, const std::string& layout, bool normalized) {
  require_alive("decode");
  if (latent.ndim() != 5) {
    throw std::invalid_argument("khalo.decode: the latent must be (N, z_dim, T, H, W), it has " +
                                std::to_string(latent.ndim()) + " dimensions");
  }
  std::vector<std::int64_t> shape(5);
  for (int d = 0; d < 5; ++d) shape[static_cast<std::size_t>(d)] = latent.shape(d);
  const MPI_Comm c = comm_from(comm);
  const auto format = khalo::memory_format_from_string(layout);
  const float* src = latent.data();
  std::vector<float> whole;
  std::vector<std::int64_t> out_shape;
  {
    py::gil_scoped_release unlocked;
    const auto file = khalo::io::open_tensor_source(c, weights);
    const auto w = khalo::nn::DecoderWeights::load(*file);
    khalo::nn::Decoder model(c, w, format, shape);
    const auto& dec = model.latent_decomposition();
    auto band = khalo::nn::make_activation("latent", dec.local_extents(), format);
    auto host = Kokkos::create_mirror_view(band);
    const auto rows = dec.owned(3);
    const std::int64_t N = shape[0], Z = shape[1], T = shape[2], H = shape[3], W = shape[4];
    for (std::int64_t n = 0; n < N; ++n)
      for (std::int64_t z = 0; z < Z; ++z)
        for (std::int64_t t = 0; t < T; ++t)
          for (std::int64_t y = 0; y < rows.size(); ++y)
            for (std::int64_t x = 0; x < W; ++x)
              host(n, z, t, y, x) = src[(((n * Z + z) * T + t) * H + rows.begin + y) * W + x];
    Kokkos::deep_copy(band, host);
    const auto mine = khalo::io::SnapshotWriter::to_host_c_order(model.run(band, normalized));
    // Every rank's rows, in rank order (the bands' order), then each put at its rows.
    out_shape = model.output_shape();
    int ranks = 0;
    KHALO_MPI_CHECK(MPI_Comm_size(c, &ranks));
    const std::int64_t scale = model.config().scale();
    const std::int64_t planes = out_shape[0] * out_shape[1] * out_shape[2], width = out_shape[4];
    std::vector<int> counts(static_cast<std::size_t>(ranks)), displs(static_cast<std::size_t>(ranks));
    std::int64_t total = 0;
    for (int r = 0; r < ranks; ++r) {
      const std::int64_t n = planes * dec.owned_at(3, r).size() * scale * width;
      if (n > std::numeric_limits<int>::max() || total > std::numeric_limits<int>::max()) {
        throw std::invalid_argument("khalo.decode: the output is too large to gather (" + std::to_string(n) +
                                    " floats from one rank); use khalo-decode with --output");
      }
      counts[static_cast<std::size_t>(r)] = static_cast<int>(n);
      displs[static_cast<std::size_t>(r)] = static_cast<int>(total);
      total += n;
    }
    std::vector<float> gathered(static_cast<std::size_t>(total));
    KHALO_MPI_CHECK(MPI_Allgatherv(mine.data(), static_cast<int>(mine.size()), MPI_FLOAT, gathered.data(),
                                   counts.data(), displs.data(), MPI_FLOAT, c));
    whole.resize(static_cast<std::size_t>(total));
    const std::int64_t height = out_shape[3];
    for (int r = 0; r < ranks; ++r) {
      const std::int64_t first = dec.owned_at(3, r).begin * scale, count = dec.owned_at(3, r).size() * scale;
      const float* from = gathered.data() + displs[static_cast<std::size_t>(r)];
      for (std::int64_t p = 0; p < planes; ++p)
        std::copy(from + p * count * width, from + (p + 1) * count * width,
                  whole.begin() + (p * height + first) * width);
    }
  }
  py::array_t<float> out(std::vector<py::ssize_t>(out_shape.begin(), out_shape.end()));
  std::copy(whole.begin(), whole.end(), out.mutable_data());
  return out;
}

PYBIND11_MODULE(khalo, m) {
  m.doc() =
      "khalo: halo exchange of NumPy arrays and PyTorch CPU tensors split over MPI ranks, in place and in "
      "their own memory format (docs/python.md).";
  m.attr("__version__") = KHALO_VERSION_STRING;

  // mpi4py initialises MPI when mpi4py.MPI is imported; its C API gives the MPI_Comm of a Comm.
  if (import_mpi4py() < 0) throw py::error_already_set();
  if (!Kokkos::is_initialized()) {
    Kokkos::initialize();
    kokkos_state().owned = true;
  }
  m.def("finalize", &finalize_module,
        "Releases every Halo and pending exchange (later use raises RuntimeError) and finalizes Kokkos if "
        "khalo initialised it. Runs by itself at interpreter exit; idempotent.");
  py::module_::import("atexit").attr("register")(m.attr("finalize"));

  // khalo::io::Error is a std::runtime_error, which would otherwise become RuntimeError; std::invalid_argument
  // becomes ValueError and every other exception RuntimeError (pybind11's own translations).
  py::register_exception<khalo::io::Error>(m, "IOError", PyExc_OSError);

  m.def("build_info", &khalo::build_info, "Versions of khalo, Kokkos (backend), MPI and HDF5, in one line.");

  py::enum_<khalo::Boundary>(m, "Boundary",
                             "How ghost layers are filled on a side without a neighbour (docs/halo.md §2).")
      .value("zero", khalo::Boundary::zero, "zeros: a convolution's zero padding (the default)")
      .value("replicate", khalo::Boundary::replicate, "copies of the outermost owned layer")
      .value("reflect", khalo::Boundary::reflect, "mirror image without the edge layer (numpy.pad's 'reflect')")
      .value("periodic", khalo::Boundary::periodic, "the layers of the rank on the far side (wraps)")
      .value("none", khalo::Boundary::none, "left untouched");

  py::class_<khalo::HaloSpec>(m, "HaloSpec", "Ghost-layer widths per split dimension and side, and boundary policies.")
      .def(py::init<int, khalo::Boundary>(), py::arg("width") = 1, py::arg("boundary") = khalo::Boundary::zero)
      .def("set", &khalo::HaloSpec::set, py::arg("dim"), py::arg("low"), py::arg("high"),
           py::arg("boundary") = khalo::Boundary::zero,
           "Sets array dimension dim's widths and boundary policy; returns the spec.",
           py::return_value_policy::reference_internal)
      .def(
          "of",
          [](const khalo::HaloSpec& s, int dim) {
            const auto h = s.of(dim);
            return py::make_tuple(h.low, h.high, h.boundary);
          },
          py::arg("dim"), "(low, high, boundary) of array dimension dim.");

  py::class_<khalo::ProcessGrid>(m, "ProcessGrid", "A Cartesian grid of MPI ranks (collective to build).")
      .def(py::init([](const py::object& comm, std::vector<int> dims, std::vector<bool> periodic) {
             const MPI_Comm c = comm_from(comm);
             py::gil_scoped_release unlocked;
             return khalo::ProcessGrid(c, std::move(dims), std::move(periodic));
           }),
           py::arg("comm"), py::arg("dims"), py::arg("periodic") = std::vector<bool>{},
           "dims[i] == 0 lets MPI choose that dimension; periodic wraps a dimension around.")
      .def_property_readonly("ndims", &khalo::ProcessGrid::ndims)
      .def_property_readonly("dims", &khalo::ProcessGrid::dims)
      .def_property_readonly("coords", &khalo::ProcessGrid::coords)
      .def_property_readonly("rank", &khalo::ProcessGrid::rank)
      .def_property_readonly("size", &khalo::ProcessGrid::size);

  py::class_<khalo::Decomposition>(m, "Decomposition",
                                   "How a global array is split over a process grid (balanced bands).")
      .def(py::init([](const khalo::ProcessGrid& grid, std::vector<std::int64_t> global, std::vector<int> split) {
             py::gil_scoped_release unlocked;
             return khalo::Decomposition(grid, std::move(global), std::move(split));
           }),
           py::arg("grid"), py::arg("global_shape"), py::arg("split_dims"))
      .def_property_readonly("grid", &khalo::Decomposition::grid)
      .def_property_readonly("global_shape",
                             [](const khalo::Decomposition& d) { return py::tuple(py::cast(d.global_extents())); })
      .def_property_readonly("split_dims", &khalo::Decomposition::split_dims)
      .def_property_readonly(
          "local_shape", [](const khalo::Decomposition& d) { return py::tuple(py::cast(d.local_extents())); },
          "Extents of this rank's owned block (without ghost layers).")
      .def(
          "owned",
          [](const khalo::Decomposition& d, int dim) {
            const auto r = d.owned(dim);
            return py::make_tuple(r.begin, r.end);
          },
          py::arg("dim"), "(begin, end): the global range of dimension dim that this rank owns.")
      .def("is_split", &khalo::Decomposition::is_split, py::arg("dim"));

  m.def(
      "row_decomposition",
      [](const py::object& comm, std::vector<std::int64_t> shape, bool periodic) {
        const MPI_Comm c = comm_from(comm);
        py::gil_scoped_release unlocked;
        return khalo::row_decomposition(c, std::move(shape), periodic);
      },
      py::arg("comm"), py::arg("shape"), py::arg("periodic") = false,
      "Rows (the second-to-last dimension, H of (N, C, [D,] H, W)) in bands over all ranks of comm. Collective.");

  py::class_<PyExchange>(m, "Exchange", "A started exchange: call wait() before reading the ghost layers.")
      .def("wait", &PyExchange::wait, "Completes the exchange; the ghost layers are then filled.")
      .def_property_readonly("pending", &PyExchange::pending);

  py::class_<PyHalo>(m, "Halo",
                     "A halo-exchange plan for one array (NumPy or torch CPU tensor) that carries its ghost layers. "
                     "Collective to build; exchange() and start() write the caller's memory in place.")
      .def(py::init<const khalo::Decomposition&, const khalo::HaloSpec&, const py::handle&>(), py::arg("decomposition"),
           py::arg("spec"), py::arg("array"))
      .def("exchange", &PyHalo::exchange, py::arg("array"),
           "Fills the ghost layers of array in place; blocks until done. Collective.")
      .def("start", &PyHalo::start, py::arg("array"),
           "Starts an exchange and returns an Exchange; call its wait() before reading the ghost layers.")
      .def_property_readonly("stats", &PyHalo::stats, "Counters accumulated over the plan's exchanges.")
      .def("reset_stats", &PyHalo::reset_stats)
      .def("_time_exchanges", &PyHalo::time_exchanges, py::arg("array"), py::arg("reps"),
           "Benchmark helper (perf/bench_python_halo.py): reps exchanges timed in C++, each the slowest rank's "
           "seconds. Collective.");

  py::class_<khalo::io::DatasetComparison>(m, "DatasetComparison")
      .def_readonly("name", &khalo::io::DatasetComparison::name)
      .def_property_readonly("shape",
                             [](const khalo::io::DatasetComparison& c) { return py::tuple(py::cast(c.shape)); })
      .def_property_readonly("dtype",
                             [](const khalo::io::DatasetComparison& c) { return khalo::io::to_string(c.dtype); })
      .def_readonly("elements", &khalo::io::DatasetComparison::elements)
      .def_readonly("mismatches", &khalo::io::DatasetComparison::mismatches)
      .def_readonly("max_abs", &khalo::io::DatasetComparison::max_abs)
      .def_readonly("max_rel", &khalo::io::DatasetComparison::max_rel)
      .def_readonly("max_ulp", &khalo::io::DatasetComparison::max_ulp)
      .def_readonly("nan_seen", &khalo::io::DatasetComparison::nan_seen)
      .def_property_readonly("first_mismatch",
                             [](const khalo::io::DatasetComparison& c) { return optional_index(c.first_mismatch); })
      .def_property_readonly("equal", &khalo::io::DatasetComparison::equal);

  py::class_<khalo::io::Comparison>(m, "Comparison")
      .def_readonly("datasets", &khalo::io::Comparison::datasets)
      .def_readonly("only_in_a", &khalo::io::Comparison::only_in_a)
      .def_readonly("only_in_b", &khalo::io::Comparison::only_in_b)
      .def_readonly("first_divergent", &khalo::io::Comparison::first_divergent)
      .def_property_readonly("equal", &khalo::io::Comparison::equal);

  m.def(
      "compare",
      [](const std::string& a, const std::string& b, const py::object& comm, const std::string& dataset, double rtol,
         double atol, std::optional<std::uint64_t> max_ulp, bool bitwise, bool nan_equal) {
        khalo::io::CompareOptions o;
        o.rtol = rtol;
        o.atol = atol;
        o.max_ulp = max_ulp;
        o.bitwise = bitwise;
        o.nan_equal = nan_equal;
        o.dataset = dataset;
        const MPI_Comm c = comm_from(comm);
        py::gil_scoped_release unlocked;
        return khalo::io::compare_files(c, a, b, o);
      },
      py::arg("a"), py::arg("b"), py::arg("comm") = py::none(), py::kw_only(), py::arg("dataset") = "",
      py::arg("rtol") = 0.0, py::arg("atol") = 0.0, py::arg("max_ulp") = py::none(), py::arg("bitwise") = false,
      py::arg("nan_equal") = false,
      "Compares two HDF5 snapshots dataset by dataset, as khalo-compare does (docs/cli.md §2). Collective over comm "
      "(default COMM_WORLD); raises khalo.IOError on every rank for a missing file or dataset, or a shape or type "
      "mismatch.");

  m.def("decode", &decode, py::arg("weights"), py::arg("latent"), py::arg("comm") = py::none(), py::kw_only(),
        py::arg("layout") = "channels_last_3d", py::arg("latents_normalized") = false,
        "Decodes a Wan 2.1 latent with the whole VAE decoder of a safetensors checkpoint (docs/decoder.md §5), "
        "distributed over comm (default COMM_WORLD) by bands of rows. latent: the same float32 (N, z_dim, T, H, W) "
        "array on every rank; returns the whole (N, 3, 1 + 4 (T - 1), 8 H, 8 W) output, clamped, on every rank, "
        "bit-identical on any number of ranks. Collective; errors (missing key, wrong shape, a damaged file) are "
        "raised on every rank.");
}
