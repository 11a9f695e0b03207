#include "decode.hpp"

#include "lifetime.hpp"

#include <khalo/detail/mpi_error.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/layout.hpp>
#include <khalo/nn/model.hpp>

#include <Kokkos_Core.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <stdexcept>
#include <vector>

namespace khalo::python {

namespace py = pybind11;

py::array_t<float> decode(const std::string& weights, const py::array_t<float, py::array::c_style>& latent, MPI_Comm c,
                          const std::string& layout, bool normalized) {
  require_alive("decode");
  if (latent.ndim() != 5) {
    throw std::invalid_argument("khalo.decode: the latent must be (N, z_dim, T, H, W), it has " +
                                std::to_string(latent.ndim()) + " dimensions");
  }
  std::vector<std::int64_t> shape(5);
  for (int d = 0; d < 5; ++d) shape[static_cast<std::size_t>(d)] = latent.shape(d);
  const auto format = khalo::memory_format_from_string(layout);
  const float* src = latent.data();
  std::vector<float> whole;
  std::vector<std::int64_t> out_shape;
  {
    py::gil_scoped_release unlocked;
    std::optional<khalo::nn::Decoder> built;
    {
      // The host copy of the weights goes once the layers hold them packed.
      const auto file = khalo::io::open_tensor_source(c, weights);
      built.emplace(c, khalo::nn::DecoderWeights::load(*file), format, shape);
    }
    khalo::nn::Decoder& model = *built;
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

}  // namespace khalo::python
