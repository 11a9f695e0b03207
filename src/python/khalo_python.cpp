// The Python module `khalo` (docs/python.md): halo exchange of NumPy arrays and PyTorch CPU tensors in
// place, in their own memory format, over mpi4py communicators; khalo::io::compare_files; the
// whole decoder. This file binds; arrays.hpp wraps arrays, halo_objects.hpp holds the Halo and
// Exchange objects, arena.hpp hands out arrays in node-shared memory, lifetime.* Kokkos's lifetime,
// decode.* the decoder.
//
// mpi4py's C API lives in this one translation unit: import_mpi4py() fills per-unit tables.

#include "arena.hpp"
#include "decode.hpp"
#include "halo_objects.hpp"
#include "lifetime.hpp"

#include <khalo/config.hpp>
#include <khalo/decomposition.hpp>
#include <khalo/detail/comm.hpp>
#include <khalo/halo_spec.hpp>
#include <khalo/io/compare.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <mpi4py/mpi4py.h>
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <Kokkos_Core.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace py = pybind11;

namespace {

using namespace khalo::python;  // NOLINT(google-build-using-namespace): the module's own pieces

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

// compare: an index or None.
py::object optional_index(const std::optional<std::vector<std::int64_t>>& v) {
  if (!v) return py::none();
  return py::tuple(py::cast(*v));
}

}  // namespace

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

  py::enum_<khalo::Transport>(m, "Transport", "How the bytes of a message reach MPI (docs/halo.md §7).")
      .value("automatic", khalo::Transport::automatic, "per side, the cheaper of packing and a datatype (default)")
      .value("pack", khalo::Transport::pack, "always packed into the plan's buffer")
      .value("datatype", khalo::Transport::datatype, "an MPI derived datatype over the array, where MPI may read it");

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
          py::arg("dim"), "(low, high, boundary) of array dimension dim.")
      .def_property(
          "zero_fill_once", [](const khalo::HaloSpec& s) { return s.zero_fill_once(); },
          [](khalo::HaloSpec& s, bool once) { s.set_zero_fill_once(once); },
          "Zero open 'zero' sides on a plan's first exchange of each array only (for callers that never "
          "write ghost layers).")
      .def_property(
          "transport", [](const khalo::HaloSpec& s) { return s.transport(); },
          [](khalo::HaloSpec& s, khalo::Transport t) { s.set_transport(t); }, "How messages reach MPI.")
      .def_property(
          "in_place_min_run_bytes", [](const khalo::HaloSpec& s) { return s.in_place_min_run_bytes(); },
          [](khalo::HaloSpec& s, std::int64_t b) { s.set_in_place_min_run_bytes(b); },
          "Runs of at least this many bytes go to MPI in place when a face is made of several.")
      .def_property(
          "shared_memory", [](const khalo::HaloSpec& s) { return s.shared_memory(); },
          [](khalo::HaloSpec& s, bool on) { s.set_shared_memory(on); },
          "Packed faces between ranks of one node go through node-shared buffers, not MPI (default True).");

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

  py::class_<khalo::NodeSharedArena>(
      m, "NodeSharedArena",
      "Node-shared host memory (Linux memfd) for arrays whose faces a neighbour on this node copies straight out "
      "of them: one copy per face instead of a pack and an unpack (docs/halo.md §7, 'Node-shared fields').")
      .def(py::init<std::size_t>(), py::arg("nbytes"),
           "Reserves nbytes now; RuntimeError where the node cannot give them.")
      .def("zeros", &arena_zeros, py::arg("shape"), py::arg("dtype") = py::dtype::of<float>(),
           py::arg("memory_format") = "contiguous",
           "A zeroed array of shape in memory_format ('contiguous', 'channels_last', 'channels_last_3d' or "
           "'column_major') from the arena: a numpy.ndarray for a NumPy dtype, a torch tensor for torch.float32, "
           "float64, int32 or int64. It keeps the arena alive; memory is never reused. ValueError when no room "
           "is left.")
      .def_property_readonly("capacity", &khalo::NodeSharedArena::capacity, "Bytes the arena holds in all.")
      .def_property_readonly("used", &khalo::NodeSharedArena::used, "Bytes handed out so far, alignment included.");

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

  m.def(
      "decode",
      [](const std::string& weights, const py::array_t<float, py::array::c_style>& latent, const py::object& comm,
         const std::string& layout,
         bool normalized) { return khalo::python::decode(weights, latent, comm_from(comm), layout, normalized); },
      py::arg("weights"), py::arg("latent"), py::arg("comm") = py::none(), py::kw_only(),
      py::arg("layout") = "channels_last_3d", py::arg("latents_normalized") = false,
      "Decodes a Wan 2.1 latent with the whole VAE decoder of a safetensors checkpoint (docs/decoder.md §5), "
      "distributed over comm (default COMM_WORLD) by bands of rows. latent: the same float32 (N, z_dim, T, H, W) "
      "array on every rank; returns the whole (N, 3, 1 + 4 (T - 1), 8 H, 8 W) output, clamped, on every rank, "
      "bit-identical on any number of ranks. Collective; errors (missing key, wrong shape, a damaged file) are "
      "raised on every rank.");
}
