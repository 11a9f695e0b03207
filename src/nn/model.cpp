#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/layers/causal_conv3d.hpp>
#include <khalo/nn/layers/residual_block.hpp>
#include <khalo/nn/model.hpp>

#include <stdexcept>

namespace khalo::nn {

// AutoencoderKLWan's config defaults (Wan 2.1), as diffusers' pipelines apply them.
const std::array<float, 16> kWan21LatentsMean = {-0.7571f, -0.7089f, -0.9113f, 0.1075f,  -0.1745f, 0.9653f,
                                                 -0.1517f, 1.5508f,  0.4134f,  -0.0715f, 0.5517f,  -0.3632f,
                                                 -0.1922f, -0.9497f, 0.2503f,  -0.2921f};
const std::array<float, 16> kWan21LatentsStd = {2.8184f, 1.4541f, 2.3275f, 2.6558f, 1.2196f, 1.7708f, 2.6052f, 2.0743f,
                                                3.2687f, 2.1526f, 2.8652f, 1.5579f, 1.6382f, 1.1253f, 2.8251f, 1.9160f};

namespace {

const std::string kMid = "decoder.mid_block.";
const std::string kAttention = "decoder.mid_block.attentions.0.";

std::string up_prefix(std::size_t i) { return "decoder.up_blocks." + std::to_string(i) + "."; }

void append(std::vector<KeyShape>& to, const std::string& prefix, const std::vector<KeyShape>& keys) {
  for (const auto& [key, shape] : keys) to.push_back({prefix + key, shape});
}

AttentionWeights attention_weights(const WeightMap& w, int channels) {
  AttentionWeights a;
  a.channels = channels;
  a.gamma = w.at(kAttention + "norm.gamma");
  a.qkv_weight = w.at(kAttention + "to_qkv.weight");
  a.qkv_bias = w.at(kAttention + "to_qkv.bias");
  a.proj_weight = w.at(kAttention + "proj.weight");
  a.proj_bias = w.at(kAttention + "proj.bias");
  return a;
}

}  // namespace

// ------------------------------------------------------------------ configuration

DecoderConfig DecoderConfig::wan21(int base_dim, int z_dim, int num_res_blocks) {
  if (base_dim < 1 || z_dim < 1 || num_res_blocks < 0) {
    throw std::invalid_argument("khalo::nn::DecoderConfig::wan21: need base_dim >= 1, z_dim >= 1, num_res_blocks >= 0");
  }
  const int dims[5] = {4 * base_dim, 4 * base_dim, 4 * base_dim, 2 * base_dim, base_dim};
  const Upsample modes[4] = {Upsample::upsample3d, Upsample::upsample3d, Upsample::upsample2d, Upsample::none};
  DecoderConfig c;
  c.z_dim = z_dim;
  c.mid_dim = dims[0];
  c.out_dim = dims[4];
  for (int i = 0; i < 4; ++i) {
    StageConfig s;
    s.in_dim = i == 0 ? dims[0] : dims[i] / 2;
    s.out_dim = dims[i + 1];
    s.num_res_blocks = num_res_blocks;
    s.upsample = modes[i];
    c.up_blocks.push_back(s);
  }
  return c;
}

std::vector<KeyShape> DecoderConfig::keys() const {
  const std::int64_t z = z_dim, mid = mid_dim, out = out_dim;
  std::vector<KeyShape> k{{"post_quant_conv.weight", {z, z, 1, 1, 1}},
                          {"post_quant_conv.bias", {z}},
                          {"decoder.conv_in.weight", {mid, z, 3, 3, 3}},
                          {"decoder.conv_in.bias", {mid}}};
  append(k, kMid + "resnets.0.", ResidualBlock::keys(mid, mid));
  append(k, kAttention, AttentionWeights::expected_keys(mid_dim));
  append(k, kMid + "resnets.1.", ResidualBlock::keys(mid, mid));
  for (std::size_t i = 0; i < up_blocks.size(); ++i) append(k, up_prefix(i), up_blocks[i].keys());
  k.push_back({"decoder.norm_out.gamma", {out, 1, 1, 1}});
  k.push_back({"decoder.conv_out.weight", {out_channels, out, 3, 3, 3}});
  k.push_back({"decoder.conv_out.bias", {out_channels}});
  return k;
}

DecoderConfig DecoderConfig::infer(const io::TensorSource& file) {
  const std::string where = "khalo::nn::DecoderConfig: '" + file.path() + "': ";
  auto shape_of = [&](const std::string& key, std::size_t rank) {
    if (!file.has(key)) throw io::Error(where + "missing key '" + key + "'");
    const auto s = file.shape(key);
    if (s.size() != rank) {
      throw io::Error(where + "key '" + key + "' has shape " + khalo::detail::shape_text(s) + ", expected " +
                      std::to_string(rank) + " dimensions");
    }
    return s;
  };
  DecoderConfig c;
  c.z_dim = static_cast<int>(shape_of("post_quant_conv.weight", 5)[0]);
  c.mid_dim = static_cast<int>(shape_of("decoder.conv_in.weight", 5)[0]);
  const auto out = shape_of("decoder.conv_out.weight", 5);
  c.out_channels = static_cast<int>(out[0]);
  c.out_dim = static_cast<int>(out[1]);
  // A view of the same file under each up-block's prefix (it does not own the file).
  const std::shared_ptr<const io::TensorSource> shared(&file, [](const io::TensorSource*) {});
  int channels = c.mid_dim;
  for (std::size_t i = 0; file.has(up_prefix(i) + "resnets.0.conv1.weight"); ++i) {
    const StageConfig s = StageConfig::infer(io::PrefixedSource(shared, up_prefix(i)));
    if (s.in_dim != channels) {
      throw io::Error(where + "'" + up_prefix(i) + "resnets.0.conv1.weight' takes " + std::to_string(s.in_dim) +
                      " channels, but the layer before it gives " + std::to_string(channels));
    }
    channels = s.output_channels();
    c.up_blocks.push_back(s);
  }
  if (c.up_blocks.empty()) throw io::Error(where + "missing key '" + up_prefix(0) + "resnets.0.conv1.weight'");
  if (channels != c.out_dim) {
    throw io::Error(where + "'decoder.conv_out.weight' takes " + std::to_string(c.out_dim) +
                    " channels, but the last up-block gives " + std::to_string(channels));
  }
  return c;
}

std::int64_t DecoderConfig::output_frames(std::int64_t latent_frames) const {
  std::int64_t per = 1;
  for (const auto& s : up_blocks)
    if (s.upsample == Upsample::upsample3d) per *= 2;
  return latent_frames < 1 ? 0 : 1 + per * (latent_frames - 1);
}

std::int64_t DecoderConfig::scale() const {
  std::int64_t s = 1;
  for (const auto& b : up_blocks)
    if (b.upsample != Upsample::none) s *= 2;
  return s;
}

DecoderWeights DecoderWeights::load(const io::TensorSource& file) {
  DecoderWeights w;
  w.config = DecoderConfig::infer(file);
  w.WeightMap::load(file, w.config.keys());
  return w;
}

DecoderWeights DecoderWeights::random(const DecoderConfig& config, std::uint64_t seed) {
  DecoderWeights w;
  w.config = config;
  w.randomize(config.keys(), seed);
  return w;
}

// ------------------------------------------------------------------ pointwise kernels
// External linkage: CUDA's extended lambdas may not live in functions with internal linkage.

namespace detail {

/// x = x / (1 / std_c) + mean_c over frames [0, T) of this band (diffusers' pipelines).
void unnormalize_latents(const Strided5& x, const Kokkos::View<float*, LayerMem>& inv_std,
                         const Kokkos::View<float*, LayerMem>& mean, int N, int C, int T, int H, int W) {
  for_each_index(
      "khalo::nn::unnormalize_latents", LayerExec(), N, C, T, H, W, KOKKOS_LAMBDA(int n, int c, int t, int h, int w) {
        float& v = x(n, c, t, h, w);
        v = v / inv_std(c) + mean(c);
      });
}

/// Clamps frames [first, first + T) of this band to [-1, 1].
void clamp_frames(const Strided5& y, int first, int N, int C, int T, int H, int W) {
  for_each_index(
      "khalo::nn::clamp", LayerExec(), N, C, T, H, W, KOKKOS_LAMBDA(int n, int c, int t, int h, int w) {
        float& v = y(n, c, first + t, h, w);
        v = v < -1.0f ? -1.0f : (v > 1.0f ? 1.0f : v);
      });
}

}  // namespace detail

// ------------------------------------------------------------------ the model

struct Decoder::Impl {
  DecoderConfig cfg;
  Decomposition dec;
  RowBands bands;
  RowBands out_bands;
  std::int64_t T;
  std::unique_ptr<CausalConv3d> post_quant, conv_in, conv_out;
  std::unique_ptr<ResidualBlock> mid0, mid1;
  std::unique_ptr<SpatialAttention> attention;
  std::vector<std::unique_ptr<UpBlock>> ups;
  Activation<LayerMem> latent, z, a0, a1, a2, a3;  // a*: (N, mid, 1, rows, W)
  std::vector<Activation<LayerMem>> up_out;        // up-block i's output
  Kokkos::View<float*, LayerMem> inv_std, mean;

  Impl(const Decomposition& d, const DecoderWeights& w, MemoryFormat format)
      : cfg(w.config), dec(d), bands(d, format), out_bands(bands), T(d.global_extents()[2]) {
    const int mid = cfg.mid_dim;
    post_quant = std::make_unique<CausalConv3d>(bands, w, "post_quant_conv", static_cast<int>(T));
    conv_in = std::make_unique<CausalConv3d>(bands, w, "decoder.conv_in", 1);
    mid0 = std::make_unique<ResidualBlock>(bands, w, kMid + "resnets.0.", 1);
    attention = std::make_unique<SpatialAttention>(bands.decomposition(mid, 1), attention_weights(w, mid), 1);
    mid1 = std::make_unique<ResidualBlock>(bands, w, kMid + "resnets.1.", 1);
    latent = bands.allocate("latent.unnormalized", cfg.z_dim, T);
    z = bands.allocate("post_quant_conv.out", cfg.z_dim, T);
    a0 = bands.allocate("conv_in.out", mid, 1);
    a1 = bands.allocate("mid_block.resnets.0.out", mid, 1);
    a2 = bands.allocate("mid_block.attentions.0.out", mid, 1);
    a3 = bands.allocate("mid_block.resnets.1.out", mid, 1);
    int frames = 1;  // the most frames one latent frame gives at each level
    RowBands level = bands;
    for (std::size_t i = 0; i < cfg.up_blocks.size(); ++i) {
      const auto& s = cfg.up_blocks[i];
      ups.push_back(std::make_unique<UpBlock>(level, w, up_prefix(i), s, frames));
      if (s.upsample == Upsample::upsample3d && T > 1) frames *= 2;
      level = ups.back()->output_bands();
      up_out.push_back(level.allocate(up_prefix(i) + "out", s.output_channels(), frames));
    }
    out_bands = level;
    conv_out = std::make_unique<CausalConv3d>(level, w, "decoder.conv_out", frames, Prologue::norm_silu,
                                              "decoder.norm_out.gamma");
    std::vector<float> inv(kWan21LatentsStd.size()), m(kWan21LatentsMean.begin(), kWan21LatentsMean.end());
    for (std::size_t c = 0; c < inv.size(); ++c) inv[c] = 1.0f / kWan21LatentsStd[c];
    inv_std = device_vector(inv, "latents.inv_std");
    mean = device_vector(m, "latents.mean");
  }
};

namespace {

Decomposition checked_latent(MPI_Comm comm, const DecoderWeights& w, MemoryFormat format,
                             const std::vector<std::int64_t>& shape) {
  return checked_row_decomposition(comm, shape, w.config.z_dim, format, "khalo::nn::Decoder: ", "the decoder");
}

}  // namespace

Decoder::Decoder(MPI_Comm comm, const DecoderWeights& weights, MemoryFormat format,
                 std::vector<std::int64_t> latent_shape)
    : impl_(std::make_unique<Impl>(checked_latent(comm, weights, format, latent_shape), weights, format)) {}

Decoder::~Decoder() = default;

const DecoderConfig& Decoder::config() const { return impl_->cfg; }
const Decomposition& Decoder::latent_decomposition() const { return impl_->dec; }

std::vector<std::int64_t> Decoder::output_shape() const {
  const auto& m = *impl_;
  return {m.bands.batch(), m.cfg.out_channels, m.cfg.output_frames(m.T), m.out_bands.height(), m.out_bands.width()};
}

Range Decoder::output_rows() const {
  return {impl_->out_bands.first_row(), impl_->out_bands.first_row() + impl_->out_bands.rows()};
}

DecoderStats Decoder::stats() const {
  const auto& m = *impl_;
  DecoderStats s;
  for (const CausalConv3d* c : {m.post_quant.get(), m.conv_in.get(), m.conv_out.get()}) s.halo += c->halo_stats();
  s.halo += m.mid0->halo_stats();
  s.halo += m.mid1->halo_stats();
  for (const auto& u : m.ups) s.halo += u->halo_stats();
  s.attention = m.attention->stats();
  return s;
}

Activation<> Decoder::run(const Activation<>& latent, bool normalized,
                          const std::function<void(const DecodedFrames&)>& on_frames,
                          const std::function<void(const LayerEvent&)>& on_layer, bool time_layers) {
  auto& m = *impl_;
  const std::string where = "khalo::nn::Decoder::run: ";
  std::string error;
  if (khalo::detail::extents_of(latent) != m.dec.local_extents())
    error = where + "the latent band has other extents than the rank's band";
  if (error.empty() && normalized && m.cfg.z_dim != static_cast<int>(kWan21LatentsMean.size())) {
    error =
        where + "--latents-normalized needs Wan 2.1's 16 latent channels, the model has " + std::to_string(m.cfg.z_dim);
  }
  khalo::detail::throw_if_any(m.bands.comm(), error);

  const LayerLog log(m.bands.comm(), on_layer, time_layers);
  const int N = static_cast<int>(m.bands.batch()), rows = static_cast<int>(m.bands.rows());
  const int W = static_cast<int>(m.bands.width()), Z = m.cfg.z_dim, mid = m.cfg.mid_dim;
  const auto shape = output_shape();
  Activation<> output = m.out_bands.allocate("decoder.out", shape[1], shape[2]);

  // post_quant_conv, once, on the whole latent (1x1x1: no cache, no halo).
  Strided5 x = strided(latent);
  if (normalized) {
    Kokkos::deep_copy(m.latent, latent);
    detail::unnormalize_latents(strided(m.latent), m.inv_std, m.mean, N, Z, static_cast<int>(m.T), rows, W);
    x = strided(m.latent);
  }
  double t0 = log.start();
  ConvKernel kernel = m.post_quant->run(x, static_cast<int>(m.T), strided(m.z), Strided5{}, false);
  log.report("post_quant_conv", t0, 2.0 * N * m.T * rows * W * Z * m.post_quant->macs_per_output(), &m.z, m.bands,
             static_cast<int>(m.T), 0, kernel.name());

  // Then latent frame by latent frame, every causal layer keeping its cache for the next.
  m.conv_in->reset();
  m.mid0->reset();
  m.mid1->reset();
  for (auto& u : m.ups) u->reset();
  m.conv_out->reset();
  std::int64_t produced = 0;
  const double mid_outputs = static_cast<double>(N) * rows * W * mid;
  for (int k = 0; k < static_cast<int>(m.T); ++k) {
    log.set_chunk(k);
    const bool keep = k + 1 < m.T;
    t0 = log.start();
    kernel = m.conv_in->run(strided(m.z).shifted(0, 0, k, 0, 0), 1, strided(m.a0), Strided5{}, keep);
    log.report("decoder.conv_in", t0, 2.0 * mid_outputs * m.conv_in->macs_per_output(), &m.a0, m.bands, 1, 0,
               kernel.name());
    m.mid0->run(strided(m.a0), 1, strided(m.a1), keep, log.under(kMid + "resnets.0."), &m.a1);
    t0 = log.start();
    const double flops_before = m.attention->stats().flops;
    m.attention->run(strided(m.a1), strided(m.a2), 1);
    log.report(kAttention.substr(0, kAttention.size() - 1), t0, m.attention->stats().flops - flops_before, &m.a2,
               m.bands, 1, 0);
    m.mid1->run(strided(m.a2), 1, strided(m.a3), keep, log.under(kMid + "resnets.1."), &m.a3);
    Strided5 in = strided(m.a3);
    int frames = 1;
    for (std::size_t i = 0; i < m.ups.size(); ++i) {
      const int out_frames = m.ups[i]->output_frames(frames);
      m.ups[i]->run(in, frames, strided(m.up_out[i]), keep, log.under(up_prefix(i)), &m.up_out[i]);
      in = strided(m.up_out[i]);
      frames = out_frames;
    }
    // norm_out, SiLU and conv_out, straight into this band of the output; then the clamp.
    t0 = log.start();
    const Strided5 y = strided(output).shifted(0, 0, produced, 0, 0);
    kernel = m.conv_out->run(in, frames, y, Strided5{}, keep);
    const Activation<> fresh = Kokkos::subview(output, Kokkos::ALL, Kokkos::ALL,
                                               std::make_pair(produced, produced + frames), Kokkos::ALL, Kokkos::ALL);
    detail::clamp_frames(strided(output), static_cast<int>(produced), N, m.cfg.out_channels, frames,
                         static_cast<int>(m.out_bands.rows()), static_cast<int>(m.out_bands.width()));
    log.report("decoder.conv_out", t0,
               2.0 * N * frames * static_cast<double>(m.out_bands.rows() * m.out_bands.width()) * m.cfg.out_channels *
                   m.conv_out->macs_per_output(),
               &fresh, m.out_bands, frames, 0, kernel.name());
    if (on_frames) {
      LayerExec().fence();
      on_frames(DecodedFrames{&output, frames, k, produced});
    }
    produced += frames;
  }
  LayerExec().fence();
  return output;
}

}  // namespace khalo::nn
