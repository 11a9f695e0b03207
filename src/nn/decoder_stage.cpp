#include <khalo/halo.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/conv.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <khalo/nn/pointwise.hpp>

#include <cmath>
#include <optional>
#include <random>
#include <stdexcept>

namespace khalo::nn {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using Weights = ConvWeights<Mem>;

std::string to_string(Upsample u) {
  switch (u) {
    case Upsample::none: return "none";
    case Upsample::upsample2d: return "upsample2d";
    case Upsample::upsample3d: return "upsample3d";
  }
  return "unknown";
}

Upsample upsample_from_string(const std::string& name) {
  for (auto u : {Upsample::none, Upsample::upsample2d, Upsample::upsample3d}) {
    if (name == to_string(u)) return u;
  }
  throw std::invalid_argument("khalo::nn::upsample_from_string: unknown upsampler '" + name +
                              "' (expected none, upsample2d or upsample3d)");
}

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

std::vector<std::pair<std::string, std::vector<std::int64_t>>> StageWeights::expected_keys(const StageConfig& c) {
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> keys;
  for (int i = 0; i <= c.num_res_blocks; ++i) {
    const std::int64_t cin = i == 0 ? c.in_dim : c.out_dim;
    const std::int64_t cout = c.out_dim;
    const std::string p = "resnets." + std::to_string(i) + ".";
    keys.push_back({p + "norm1.gamma", {cin, 1, 1, 1}});
    keys.push_back({p + "conv1.weight", {cout, cin, 3, 3, 3}});
    keys.push_back({p + "conv1.bias", {cout}});
    keys.push_back({p + "norm2.gamma", {cout, 1, 1, 1}});
    keys.push_back({p + "conv2.weight", {cout, cout, 3, 3, 3}});
    keys.push_back({p + "conv2.bias", {cout}});
    if (cin != cout) {
      keys.push_back({p + "conv_shortcut.weight", {cout, cin, 1, 1, 1}});
      keys.push_back({p + "conv_shortcut.bias", {cout}});
    }
  }
  const std::int64_t d = c.out_dim;
  if (c.upsample == Upsample::upsample3d) {
    keys.push_back({"upsamplers.0.time_conv.weight", {2 * d, d, 3, 1, 1}});
    keys.push_back({"upsamplers.0.time_conv.bias", {2 * d}});
  }
  if (c.upsample != Upsample::none) {
    keys.push_back({"upsamplers.0.resample.1.weight", {d / 2, d, 3, 3}});
    keys.push_back({"upsamplers.0.resample.1.bias", {d / 2}});
  }
  return keys;
}

StageWeights StageWeights::load(const io::TensorSource& file) {
  StageWeights s;
  const std::string where = "khalo::nn::StageWeights: '" + file.path() + "'" +
                            (file.prefix().empty() ? "" : " (prefix '" + file.prefix() + "')") + ": ";
  int blocks = 0;
  while (file.has("resnets." + std::to_string(blocks) + ".conv1.weight")) ++blocks;
  if (blocks == 0) throw io::Error(where + "missing key 'resnets.0.conv1.weight' (no residual block found)");
  const auto first = file.shape("resnets.0.conv1.weight");
  if (first.size() != 5) throw io::Error(where + "key 'resnets.0.conv1.weight' is not a 5-D convolution weight");
  s.config.in_dim = static_cast<int>(first[1]);
  s.config.out_dim = static_cast<int>(first[0]);
  s.config.num_res_blocks = blocks - 1;
  const bool resample = file.has("upsamplers.0.resample.1.weight");
  const bool time_conv = file.has("upsamplers.0.time_conv.weight");
  if (time_conv && !resample) throw io::Error(where + "missing key 'upsamplers.0.resample.1.weight'");
  s.config.upsample = time_conv ? Upsample::upsample3d : resample ? Upsample::upsample2d : Upsample::none;
  if (s.config.upsample != Upsample::none && s.config.out_dim % 2 != 0) {
    throw io::Error(where + "the upsampler halves " + std::to_string(s.config.out_dim) + " channels (not even)");
  }
  for (const auto& [key, shape] : expected_keys(s.config)) {
    s.tensors[key] = file.load(key, shape);
    s.shapes[key] = shape;
  }
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
  std::mt19937_64 rng(seed);
  for (const auto& [key, shape] : expected_keys(c)) {
    std::int64_t n = 1;
    for (auto e : shape) n *= e;
    std::vector<float> v(static_cast<std::size_t>(n));
    const bool gamma = key.find("gamma") != std::string::npos;
    const bool bias = key.find("bias") != std::string::npos;
    const double fan_in = shape.size() > 1 ? static_cast<double>(n / shape[0]) : 1.0;
    std::normal_distribution<double> normal(0.0, bias ? 0.1 : 1.0 / std::sqrt(fan_in));
    std::uniform_real_distribution<double> uniform(0.5, 1.5);
    for (auto& x : v) x = static_cast<float>(gamma ? uniform(rng) : normal(rng));
    s.tensors[key] = std::move(v);
    s.shapes[key] = shape;
  }
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

Weights conv_weights(const StageWeights& s, const std::string& name, MemoryFormat format) {
  const auto& shape = s.shapes.at(name + ".weight");
  const int kt = shape.size() == 5 ? static_cast<int>(shape[2]) : 1;
  const int kh = static_cast<int>(shape[shape.size() - 2]);
  const int kw = static_cast<int>(shape[shape.size() - 1]);
  return Weights::from_torch(s.tensors.at(name + ".weight"), s.tensors.at(name + ".bias"), static_cast<int>(shape[0]),
                             static_cast<int>(shape[1]), kt, kh, kw, format);
}

Kokkos::View<float*, Mem> device_vector(const std::vector<float>& v, const std::string& label) {
  Kokkos::View<float*, Mem> d(label, v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

// A causal convolution's input: cache frames in front of the chunk's frames,
// ghost rows around them, and one halo plan per chunk length.
struct ConvInput {
  Activation<> buffer;  // (N, C, 2 + T_max, H + 2*ghost, W)
  Activation<> cache;   // (N, C, 2, H + 2*ghost, W)
  bool cached = false;  // false: zeros in front (first chunk, whole clip, or time_conv's 'Rep')
  int ghost = 0;
  std::map<int, std::unique_ptr<Halo<Exec>>> halos;
};

}  // namespace

struct DecoderStage::Impl {
  Decomposition dec;
  StageConfig cfg;
  MemoryFormat format;
  std::int64_t N, T, H, W, rows, first_row;
  MPI_Comm comm;
  bool more_chunks = false;  // another chunk follows the current one: keep the causal caches

  struct Block {
    int cin, cout;
    Kokkos::View<float*, Mem> gamma1, gamma2;
    Weights conv1, conv2;
    std::optional<Weights> shortcut;
    ConvInput x1, x2;
    Activation<> y1;            // conv1 output (N, cout, T_max, H, W)
    Activation<> shortcut_out;  // (N, cout, T_max, H, W) when cin != cout
    Activation<> out;           // (N, cout, T_max, H + 2, W): ghost rows for an upsampler after it
  };
  std::vector<std::unique_ptr<Block>> blocks;  // pointers: a Block holds move-only halo plans
  std::optional<Weights> time_conv, resample;
  ConvInput xt;                                         // time_conv input (no ghost rows)
  std::map<int, std::unique_ptr<Halo<Exec>>> up_halos;  // upsampler conv input (frames -> plan)
  Activation<> up_in;  // (N, C, 2*T_max, H + 2, W): the upsampler's conv2d input after time_conv

  Impl(const Decomposition& d) : dec(d) {}

  Activation<> act(const std::string& label, std::int64_t c, std::int64_t t, std::int64_t h, std::int64_t w) {
    return make_activation<Mem>(label, {N, c, t, h, w}, format);
  }
  ConvInput conv_input(const std::string& label, std::int64_t c, std::int64_t t_max, int ghost) {
    ConvInput in;
    in.ghost = ghost;
    in.buffer = act(label, c, t_max + 2, rows + 2 * ghost, W);
    in.cache = act(label + ".cache", c, 2, rows + 2 * ghost, W);
    Kokkos::deep_copy(in.buffer, 0.0f);  // ghost rows of frames never exchanged stay zero
    return in;
  }

  // The halo plan for frames [first, first + count) of a buffer with one ghost row.
  Halo<Exec>& halo_for(std::map<int, std::unique_ptr<Halo<Exec>>>& plans, const Activation<>& buf, int first, int count,
                       std::int64_t channels) {
    auto it = plans.find(count);
    if (it == plans.end()) {
      const Decomposition d(dec.grid(), {N, channels, count, H, W}, {3});
      auto view = frames_of(buf, first, count);
      it = plans.emplace(count, std::make_unique<Halo<Exec>>(d, HaloSpec(1), view)).first;
    }
    return *it->second;
  }
  static Activation<> frames_of(const Activation<>& buf, int first, int count) {
    return Kokkos::subview(buf, Kokkos::ALL, Kokkos::ALL, std::make_pair(first, first + count), Kokkos::ALL,
                           Kokkos::ALL);
  }

  // Output rows [0, rows) in two steps: the rows that need no ghost while the
  // halo is in flight, then the two edge rows.
  template <class Launch>
  void overlapped(Halo<Exec>& halo, const Activation<>& view, int out_rows, Launch launch) {
    const Exec exec;
    auto pending = halo.start(exec, view);
    launch(1, out_rows - 1);
    pending.wait();
    launch(0, 1);
    if (out_rows > 1) launch(out_rows - 1, out_rows);
  }

  // A causal 3x3x3 convolution of norm+silu(x): fills the input buffer, exchanges, convolves, keeps the cache.
  // Returns the kernel it ran.
  ConvKernel causal_conv(ConvInput& in, const Strided5& x, int cin, const Kokkos::View<float*, Mem>& gamma,
                         const Weights& w, int frames, const Strided5& out, const Strided5& residual) {
    const Exec exec;
    const Strided5 buf = strided(in.buffer);
    if (in.cached) {
      copy_frames(exec, strided(in.cache), 0, buf, 0, 2, static_cast<int>(N), cin, static_cast<int>(rows + 2),
                  static_cast<int>(W));
    } else {
      zero_frames(exec, buf, 0, 2, static_cast<int>(N), cin, static_cast<int>(rows + 2), static_cast<int>(W));
    }
    rms_norm_silu(exec, x, buf.shifted(0, 0, 2, 1, 0), gamma.data(), static_cast<int>(N), cin, frames,
                  static_cast<int>(rows), static_cast<int>(W));
    auto view = frames_of(in.buffer, 2, frames);
    Halo<Exec>& halo = halo_for(in.halos, in.buffer, 2, frames, cin);
    ConvKernel kernel;
    overlapped(halo, view, static_cast<int>(rows), [&](int r0, int r1) {
      ConvLaunch l;
      l.in = buf;
      l.out = out;
      l.residual = residual;
      l.n = static_cast<int>(N);
      l.frames = frames;
      l.row_begin = r0;
      l.row_end = r1;
      l.out_width = l.in_width = static_cast<int>(W);
      l.cout_count = w.cout;
      kernel = conv(exec, l, w);
    });
    // The cache: the last two input frames (with the cache itself in front when the chunk has one frame),
    // for the next chunk only: after the last one nobody reads it.
    if (more_chunks) {
      copy_frames(exec, buf, frames, strided(in.cache), 0, 2, static_cast<int>(N), cin, static_cast<int>(rows + 2),
                  static_cast<int>(W));
      in.cached = true;
    }
    return kernel;
  }
};

DecoderStage::DecoderStage(MPI_Comm comm, const StageWeights& weights, MemoryFormat format,
                           std::vector<std::int64_t> input_shape)
    : impl_(std::make_unique<Impl>(row_decomposition(comm, input_shape))) {
  auto& m = *impl_;
  const std::string where = "khalo::nn::DecoderStage: ";
  std::string error;
  if (input_shape.size() != 5) error = where + "the input must be (N, C, T, H, W)";
  if (error.empty() && input_shape[1] != weights.config.in_dim) {
    error = where + "the input has " + std::to_string(input_shape[1]) + " channels, the stage takes " +
            std::to_string(weights.config.in_dim);
  }
  if (error.empty() && format != MemoryFormat::contiguous && format != MemoryFormat::channels_last_3d) {
    error = where + "layout must be contiguous or channels_last_3d";
  }
  if (error.empty()) {
    const int parts = m.dec.grid().dims()[0];
    for (int c = 0; c < parts; ++c) {
      if (m.dec.owned_at(3, c).size() < 1) {
        error = where + "the input has " + std::to_string(input_shape[3]) + " rows for " + std::to_string(parts) +
                " ranks: rank band " + std::to_string(c) +
                " would hold none; a band must hold at least the halo (1 row)";
        break;
      }
    }
  }
  khalo::detail::throw_if_any(m.dec.grid().comm(), error);
  m.cfg = weights.config;
  m.format = format;
  m.comm = m.dec.grid().comm();
  m.N = input_shape[0];
  m.T = input_shape[2];
  m.H = input_shape[3];
  m.W = input_shape[4];
  m.rows = m.dec.owned(3).size();
  m.first_row = m.dec.owned(3).begin;
  const auto t_max = m.T;  // chunks are at most the whole clip
  for (int i = 0; i <= m.cfg.num_res_blocks; ++i) {
    auto owned = std::make_unique<Impl::Block>();
    Impl::Block& b = *owned;
    const std::string p = "resnets." + std::to_string(i);
    b.cin = i == 0 ? m.cfg.in_dim : m.cfg.out_dim;
    b.cout = m.cfg.out_dim;
    b.gamma1 = device_vector(weights.tensors.at(p + ".norm1.gamma"), p + ".norm1");
    b.gamma2 = device_vector(weights.tensors.at(p + ".norm2.gamma"), p + ".norm2");
    b.conv1 = conv_weights(weights, p + ".conv1", format);
    b.conv2 = conv_weights(weights, p + ".conv2", format);
    if (b.cin != b.cout) b.shortcut = conv_weights(weights, p + ".conv_shortcut", format);
    b.x1 = m.conv_input(p + ".conv1.in", b.cin, t_max, 1);
    b.x2 = m.conv_input(p + ".conv2.in", b.cout, t_max, 1);
    b.y1 = m.act(p + ".conv1.out", b.cout, t_max, m.rows, m.W);
    if (b.shortcut) b.shortcut_out = m.act(p + ".shortcut.out", b.cout, t_max, m.rows, m.W);
    b.out = m.act(p + ".out", b.cout, t_max, m.rows + 2, m.W);
    Kokkos::deep_copy(b.out, 0.0f);
    m.blocks.push_back(std::move(owned));
  }
  if (m.cfg.upsample != Upsample::none) {
    m.resample = conv_weights(weights, "upsamplers.0.resample.1", format);
    if (m.cfg.upsample == Upsample::upsample3d) {
      m.time_conv = conv_weights(weights, "upsamplers.0.time_conv", format);
      m.xt = m.conv_input("upsamplers.0.time_conv.in", m.cfg.out_dim, t_max, 0);
      m.up_in = m.act("upsamplers.0.resample.in", m.cfg.out_dim, 2 * t_max, m.rows + 2, m.W);
      Kokkos::deep_copy(m.up_in, 0.0f);
    }
  }
}

DecoderStage::~DecoderStage() = default;

const Decomposition& DecoderStage::input_decomposition() const { return impl_->dec; }
const StageConfig& DecoderStage::config() const { return impl_->cfg; }

std::vector<std::int64_t> DecoderStage::output_shape(int chunks) const {
  const auto& m = *impl_;
  std::int64_t t = m.T;
  if (m.cfg.upsample == Upsample::upsample3d && chunks > 1)
    t = m.T + (m.T - chunk_sizes(static_cast<int>(m.T), chunks)[0]);
  const std::int64_t s = m.cfg.upsample == Upsample::none ? 1 : 2;
  return {m.N, m.cfg.output_channels(), t, m.H * s, m.W * s};
}

Range DecoderStage::output_rows() const {
  const std::int64_t s = impl_->cfg.upsample == Upsample::none ? 1 : 2;
  return {impl_->first_row * s, (impl_->first_row + impl_->rows) * s};
}

HaloStats DecoderStage::halo_stats() const {
  HaloStats total;
  auto add = [&](const HaloStats& s) {
    total.faces_packed += s.faces_packed;
    total.bytes_packed += s.bytes_packed;
    total.bytes_sent += s.bytes_sent;
    total.bytes_received += s.bytes_received;
    total.messages += s.messages;
    total.allocations += s.allocations;
  };
  auto add_plans = [&](const std::map<int, std::unique_ptr<Halo<Exec>>>& plans) {
    for (const auto& [frames, plan] : plans) add(plan->stats());
  };
  for (const auto& b : impl_->blocks) {
    add_plans(b->x1.halos);
    add_plans(b->x2.halos);
  }
  add_plans(impl_->up_halos);
  return total;
}

Activation<> DecoderStage::run(const Activation<>& input, int chunks,
                               const std::function<void(const LayerEvent&)>& on_layer) {
  auto& m = *impl_;
  const Exec exec;
  const std::string where = "khalo::nn::DecoderStage::run: ";
  std::string error;
  if (khalo::detail::extents_of(input) != m.dec.local_extents())
    error = where + "the input band has other extents than the rank's band";
  if (error.empty() && (chunks < 0 || chunks > m.T)) {
    error =
        where + std::to_string(chunks) + " chunks for " + std::to_string(m.T) + " frame(s): need 0 <= chunks <= frames";
  }
  khalo::detail::throw_if_any(m.comm, error);
  const auto sizes = chunks == 0 ? std::vector<int>{static_cast<int>(m.T)} : chunk_sizes(static_cast<int>(m.T), chunks);
  const auto out_shape = output_shape(chunks);
  const std::int64_t s = m.cfg.upsample == Upsample::none ? 1 : 2;
  Activation<> output = m.act("stage.out", out_shape[1], out_shape[2], m.rows * s, m.W * s);
  const Strided5 out_all = strided(output);
  // Fresh state: every cache starts empty (zeros in front).
  for (auto& b : m.blocks) b->x1.cached = b->x2.cached = false;
  m.xt.cached = false;

  int in_frame = 0;
  int out_frame = 0;
  for (std::size_t k = 0; k < sizes.size(); ++k) {
    const int T = sizes[k];
    m.more_chunks = k + 1 < sizes.size();
    const bool first_chunk = k == 0;
    auto report = [&](const std::string& name, double t0, double flops, const Activation<>* out, int frames, int row0,
                      const ConvKernel& kernel) {
      exec.fence();
      double dt = MPI_Wtime() - t0, slowest = 0, total = 0;
      KHALO_MPI_CHECK(MPI_Allreduce(&dt, &slowest, 1, MPI_DOUBLE, MPI_MAX, m.comm));
      KHALO_MPI_CHECK(MPI_Allreduce(&flops, &total, 1, MPI_DOUBLE, MPI_SUM, m.comm));
      if (on_layer) on_layer(LayerEvent{name, static_cast<int>(k), slowest, total, out, frames, row0, kernel.name()});
    };
    Strided5 x = strided(input).shifted(0, 0, in_frame, 0, 0);
    for (std::size_t i = 0; i < m.blocks.size(); ++i) {
      auto& b = *m.blocks[i];
      const std::string p = "resnets." + std::to_string(i);
      const bool last = i + 1 == m.blocks.size();
      const double outputs = static_cast<double>(m.N * T * m.rows * m.W * b.cout);
      // Where this block writes: the stage output when nothing follows, else its own buffer (with ghost rows).
      const bool direct = last && m.cfg.upsample == Upsample::none;
      const Strided5 out = direct ? out_all.shifted(0, 0, out_frame, 0, 0) : strided(b.out).shifted(0, 0, 0, 1, 0);
      double t0 = MPI_Wtime();
      ConvKernel kernel = m.causal_conv(b.x1, x, b.cin, b.gamma1, b.conv1, T, strided(b.y1), Strided5{});
      report(p + ".conv1", t0, 2.0 * outputs * b.conv1.macs_per_output(), &b.y1, T, 0, kernel);
      t0 = MPI_Wtime();
      Strided5 residual = x;
      if (b.shortcut) {
        ConvLaunch l;
        l.in = x;
        l.out = strided(b.shortcut_out);
        l.n = static_cast<int>(m.N);
        l.frames = T;
        l.row_end = static_cast<int>(m.rows);
        l.out_width = l.in_width = static_cast<int>(m.W);
        l.cout_count = b.cout;
        kernel = conv(exec, l, *b.shortcut);
        residual = strided(b.shortcut_out);
        report(p + ".conv_shortcut", t0, 2.0 * outputs * b.shortcut->macs_per_output(), &b.shortcut_out, T, 0, kernel);
        t0 = MPI_Wtime();
      }
      kernel = m.causal_conv(b.x2, strided(b.y1), b.cout, b.gamma2, b.conv2, T, out, residual);
      report(p + ".conv2", t0, 2.0 * outputs * b.conv2.macs_per_output(), direct ? &output : &b.out, T, direct ? 0 : 1,
             kernel);
      x = strided(b.out).shifted(0, 0, 0, 1, 0);
    }
    if (m.cfg.upsample != Upsample::none) {
      const int C = m.cfg.out_dim;
      auto& last = *m.blocks.back();
      Activation<> conv_in = last.out;  // frames [0, T), ghost rows around
      int frames = T;
      if (m.cfg.upsample == Upsample::upsample3d && !first_chunk) {
        // time_conv: C -> 2C, causal (3,1,1); its two halves interleave into 2T frames.
        const double t0 = MPI_Wtime();
        const Strided5 xt = strided(m.xt.buffer);
        if (m.xt.cached) {
          copy_frames(exec, strided(m.xt.cache), 0, xt, 0, 2, static_cast<int>(m.N), C, static_cast<int>(m.rows),
                      static_cast<int>(m.W));
        } else {
          zero_frames(exec, xt, 0, 2, static_cast<int>(m.N), C, static_cast<int>(m.rows), static_cast<int>(m.W));
        }
        copy_frames(exec, strided(last.out).shifted(0, 0, 0, 1, 0), 0, xt, 2, T, static_cast<int>(m.N), C,
                    static_cast<int>(m.rows), static_cast<int>(m.W));
        const Strided5 up = strided(m.up_in);
        ConvKernel kernel;
        for (int half = 0; half < 2; ++half) {
          ConvLaunch l;
          l.in = xt;
          l.out = up.shifted(0, 0, half, 1, 0);
          l.out.stride[2] *= 2;  // frame t of this half is frame 2t + half
          l.n = static_cast<int>(m.N);
          l.frames = T;
          l.row_end = static_cast<int>(m.rows);
          l.out_width = l.in_width = static_cast<int>(m.W);
          l.cout_begin = half * C;
          l.cout_count = C;
          kernel = conv(exec, l, *m.time_conv);
        }
        if (m.more_chunks) {
          copy_frames(exec, xt, T, strided(m.xt.cache), 0, 2, static_cast<int>(m.N), C, static_cast<int>(m.rows),
                      static_cast<int>(m.W));
          m.xt.cached = true;
        }
        report("upsamplers.0.time_conv", t0, 2.0 * m.N * T * m.rows * m.W * 2 * C * m.time_conv->macs_per_output(),
               &m.up_in, 2 * T, 1, kernel);
        conv_in = m.up_in;
        frames = 2 * T;
      }
      // Nearest 2x in H and W fused into the per-frame 3x3 conv (C -> C/2).
      const double t0 = MPI_Wtime();
      auto view = Impl::frames_of(conv_in, 0, frames);
      Halo<Exec>& halo = m.halo_for(m.up_halos, conv_in, 0, frames, C);
      const Strided5 out = out_all.shifted(0, 0, out_frame, 0, 0);
      ConvKernel kernel;
      m.overlapped(halo, view, static_cast<int>(2 * m.rows), [&](int r0, int r1) {
        ConvLaunch l;
        l.in = strided(conv_in);
        l.out = out;
        l.n = static_cast<int>(m.N);
        l.frames = frames;
        l.row_begin = r0;
        l.row_end = r1;
        l.in_width = static_cast<int>(m.W);
        l.out_width = static_cast<int>(2 * m.W);
        l.cout_count = C / 2;
        l.up_first_row = m.first_row;
        kernel = conv(exec, l, *m.resample, true);
      });
      report("upsamplers.0.resample.1", t0,
             2.0 * m.N * frames * 4 * m.rows * m.W * (C / 2) * m.resample->macs_per_output(), &output, frames, 0,
             kernel);
      out_frame += frames;
    } else {
      out_frame += T;
    }
    in_frame += T;
  }
  exec.fence();
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
