#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/decoder_stage.hpp>

#include <stdexcept>

namespace khalo::nn {

std::vector<int> chunk_sizes(int frames, int chunks) {
  if (chunks < 1 || chunks > frames) {
    throw std::invalid_argument("khalo::nn::chunk_sizes: cannot split " + std::to_string(frames) + " frame(s) into " +
                                std::to_string(chunks) + " chunk(s) (need 1 <= chunks <= frames)");
  }
  std::vector<int> sizes(static_cast<std::size_t>(chunks), frames / chunks);
  for (int i = 0; i < frames % chunks; ++i) ++sizes[static_cast<std::size_t>(i)];
  return sizes;
}

// ------------------------------------------------------------------ weights

StageWeights StageWeights::load(const io::TensorSource& file) {
  StageWeights s;
  s.config = StageConfig::infer(file);
  s.WeightMap::load(file, s.config.keys());
  return s;
}

StageWeights StageWeights::random(const StageConfig& c, std::uint64_t seed) {
  if (c.in_dim < 1 || c.out_dim < 1 || c.num_res_blocks < 0) {
    throw std::invalid_argument("khalo::nn::StageWeights::random: channels must be >= 1 and blocks >= 0");
  }
  if (c.upsample != Upsample::none && c.out_dim % 2 != 0) {
    throw std::invalid_argument("khalo::nn::StageWeights::random: the upsampler needs an even --out-dim");
  }
  StageWeights s;
  s.config = c;
  s.randomize(c.keys(), seed);
  return s;
}

// ------------------------------------------------------------------ stage

namespace {

std::uint64_t splitmix(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

}  // namespace

struct DecoderStage::Impl {
  Decomposition dec;
  RowBands bands;
  UpBlock block;
  std::int64_t T;

  Impl(const Decomposition& d, const StageWeights& w, MemoryFormat format)
      : dec(d),
        bands(d, format),
        block(bands, w, "", w.config, static_cast<int>(d.global_extents()[2])),
        T(d.global_extents()[2]) {}
};

DecoderStage::DecoderStage(MPI_Comm comm, const StageWeights& weights, MemoryFormat format,
                           std::vector<std::int64_t> input_shape)
    : impl_(std::make_unique<Impl>(checked_row_decomposition(comm, input_shape, weights.config.in_dim, format,
                                                             "khalo::nn::DecoderStage: ", "the stage"),
                                   weights, format)) {}

DecoderStage::~DecoderStage() = default;

const Decomposition& DecoderStage::input_decomposition() const { return impl_->dec; }
const StageConfig& DecoderStage::config() const { return impl_->block.config(); }

std::vector<std::int64_t> DecoderStage::output_shape(int chunks) const {
  const auto& m = *impl_;
  const auto& cfg = config();
  std::int64_t t = m.T;
  if (cfg.upsample == Upsample::upsample3d && chunks > 1)
    t = m.T + (m.T - chunk_sizes(static_cast<int>(m.T), chunks)[0]);
  const std::int64_t s = cfg.upsample == Upsample::none ? 1 : 2;
  return {m.bands.batch(), cfg.output_channels(), t, m.bands.height() * s, m.bands.width() * s};
}

Range DecoderStage::output_rows() const {
  const RowBands out = impl_->block.output_bands();
  return {out.first_row(), out.first_row() + out.rows()};
}

HaloStats DecoderStage::halo_stats() const { return impl_->block.halo_stats(); }

Activation<> DecoderStage::run(const Activation<>& input, int chunks,
                               const std::function<void(const LayerEvent&)>& on_layer, bool time_layers) {
  auto& m = *impl_;
  const std::string where = "khalo::nn::DecoderStage::run: ";
  std::string error;
  if (khalo::detail::extents_of(input) != m.dec.local_extents())
    error = where + "the input band has other extents than the rank's band";
  if (error.empty() && (chunks < 0 || chunks > m.T)) {
    error =
        where + std::to_string(chunks) + " chunks for " + std::to_string(m.T) + " frame(s): need 0 <= chunks <= frames";
  }
  khalo::detail::throw_if_any(m.bands.comm(), error);
  const auto sizes = chunks == 0 ? std::vector<int>{static_cast<int>(m.T)} : chunk_sizes(static_cast<int>(m.T), chunks);
  const auto shape = output_shape(chunks);
  const RowBands out_bands = m.block.output_bands();
  Activation<> output = out_bands.allocate("stage.out", shape[1], shape[2]);
  LayerLog log(m.bands.comm(), on_layer, time_layers);
  m.block.reset();  // fresh state: every cache starts empty (zeros in front)
  int in_frame = 0, out_frame = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    log.set_chunk(static_cast<int>(k));
    const int frames = sizes[k];
    const int produced = m.block.output_frames(frames);
    // Another chunk follows: keep the causal caches (after the last one nobody reads them).
    m.block.run(strided(input).shifted(0, 0, in_frame, 0, 0), frames, strided(output).shifted(0, 0, out_frame, 0, 0),
                k + 1 < sizes.size(), log, &output);
    in_frame += frames;
    out_frame += produced;
  }
  LayerExec().fence();
  return output;
}

void fill_random_input(const Activation<>& band, const Decomposition& dec, std::uint64_t seed) {
  auto h = Kokkos::create_mirror_view(band);
  const auto& g = dec.global_extents();
  const std::int64_t r0 = dec.owned(3).begin;
  for (std::int64_t n = 0; n < static_cast<std::int64_t>(band.extent(0)); ++n)
    for (std::int64_t c = 0; c < static_cast<std::int64_t>(band.extent(1)); ++c)
      for (std::int64_t t = 0; t < static_cast<std::int64_t>(band.extent(2)); ++t)
        for (std::int64_t y = 0; y < static_cast<std::int64_t>(band.extent(3)); ++y)
          for (std::int64_t x = 0; x < static_cast<std::int64_t>(band.extent(4)); ++x) {
            const std::int64_t flat = (((n * g[1] + c) * g[2] + t) * g[3] + (y + r0)) * g[4] + x;
            const std::uint64_t bits = splitmix(seed ^ splitmix(static_cast<std::uint64_t>(flat)));
            h(n, c, t, y, x) =
                static_cast<float>(static_cast<double>(bits >> 40) / static_cast<double>(1 << 24) * 2.0 - 1.0);
          }
  Kokkos::deep_copy(band, h);
}

}  // namespace khalo::nn
