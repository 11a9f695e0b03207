#include <khalo/detail/comm.hpp>
#include <khalo/detail/math.hpp>
#include <khalo/detail/mpi_error.hpp>
#include <khalo/detail/staging.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/conv.hpp>
#include <khalo/nn/detail/attention_kernel.hpp>
#include <khalo/nn/layers/attention.hpp>
#include <khalo/nn/pointwise.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <Kokkos_Core.hpp>

#include <climits>
#include <cmath>
#include <random>
#include <stdexcept>

namespace khalo::nn {

namespace {

using Exec = Kokkos::DefaultExecutionSpace;
using Mem = Exec::memory_space;
using Buffer = Kokkos::View<float*, Mem>;

std::int64_t round_up(std::int64_t n, std::int64_t m) { return (n + m - 1) / m * m; }

std::string shape_text(const std::vector<std::int64_t>& s) {
  std::string t = "(";
  for (std::size_t i = 0; i < s.size(); ++i) t += (i ? ", " : "") + std::to_string(s[i]);
  return t + ")";
}

}  // namespace

// ------------------------------------------------------------------ weights

std::vector<std::pair<std::string, std::vector<std::int64_t>>> AttentionWeights::expected_keys(int channels) {
  const std::int64_t c = channels;
  return {{"norm.gamma", {c, 1, 1}},
          {"to_qkv.weight", {3 * c, c, 1, 1}},
          {"to_qkv.bias", {3 * c}},
          {"proj.weight", {c, c, 1, 1}},
          {"proj.bias", {c}}};
}

AttentionWeights AttentionWeights::load(const io::TensorSource& file, const std::string& prefix) {
  const std::string where = "khalo::nn::AttentionWeights: '" + file.path() + "'" +
                            (file.prefix().empty() ? "" : " (prefix '" + file.prefix() + "')") + ": ";
  const std::string qkv = prefix + "to_qkv.weight";
  if (!file.has(qkv)) throw io::Error(where + "missing key '" + qkv + "'");
  const auto shape = file.shape(qkv);
  if (shape.size() != 4 || shape[0] < 3 || shape[0] % 3 != 0 || shape[0] != 3 * shape[1] || shape[2] != 1 ||
      shape[3] != 1) {
    throw io::Error(where + "key '" + qkv + "' has shape " + shape_text(shape) + ", expected (3C, C, 1, 1)");
  }
  AttentionWeights w;
  w.channels = static_cast<int>(shape[1]);
  std::vector<float>* into[] = {&w.gamma, &w.qkv_weight, &w.qkv_bias, &w.proj_weight, &w.proj_bias};
  const auto keys = expected_keys(w.channels);
  for (std::size_t i = 0; i < keys.size(); ++i) *into[i] = file.load(prefix + keys[i].first, keys[i].second);
  return w;
}

AttentionWeights AttentionWeights::random(int channels, std::uint64_t seed) {
  if (channels < 1) throw std::invalid_argument("khalo::nn::AttentionWeights::random: channels must be >= 1");
  AttentionWeights w;
  w.channels = channels;
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> weight(0.0, 1.0 / std::sqrt(static_cast<double>(channels)));
  std::normal_distribution<double> bias(0.0, 0.1);
  std::uniform_real_distribution<double> gamma(0.5, 1.5);
  const auto c = static_cast<std::size_t>(channels);
  auto fill = [&](std::vector<float>& v, std::size_t n, auto& dist) {
    v.resize(n);
    for (auto& x : v) x = static_cast<float>(dist(rng));
  };
  fill(w.gamma, c, gamma);
  fill(w.qkv_weight, 3 * c * c, weight);
  fill(w.qkv_bias, 3 * c, bias);
  fill(w.proj_weight, c * c, weight);
  fill(w.proj_bias, c, bias);
  return w;
}

// ------------------------------------------------------------------ the layer

struct SpatialAttention::Impl {
  MPI_Comm comm = MPI_COMM_NULL;
  int ranks = 1;
  int max_frames = 0;
  std::int64_t N = 0, C = 0, H = 0, W = 0;
  std::int64_t rows = 0, first_row = 0;
  std::int64_t P = 0;                               // this rank's positions per frame (rows * W)
  std::int64_t G = 0;                               // global positions per frame (H * W)
  std::int64_t Cp = 0;                              // channels padded to kLanes
  std::int64_t Pq = 0;                              // this rank's positions padded to kQueryBlock
  std::int64_t Gk = 0;                              // global positions padded to kKeyBlock
  std::vector<std::int64_t> band_begin, band_rows;  // per rank, in rows

  Kokkos::View<float*, Mem> gamma;
  ConvWeights<Mem> qkv, proj;
  // Per frame f = n * frames + t (see run): positions p = h * W + w.
  Buffer normed;  // (F, P, Cp): the normed input
  Buffer q;       // (F, Pq, Cp): queries, later the output of proj
  Buffer acc;     // (F, Pq, Cp): the attention output
  Buffer send;    // k (F, P, C), then v (F, P, C)
  Buffer recv;    // every rank's send buffer, in rank order
  // Keys and values in global position order, in panels of kLanes that the register tiles
  // stream through: keys (F, Gk / kLanes, C, kLanes), kLanes positions per panel, channel by
  // channel; values (F, Cp / kLanes, G, kLanes), kLanes channels per panel, position by position.
  Buffer keys_t;
  Buffer values;
  Kokkos::View<int*, Mem> band_of_row;                                     // (H): the rank band holding a global row
  Kokkos::View<std::int64_t*, Mem> band_first, band_len;                   // per band: first row, rows
  Kokkos::View<float*, khalo::detail::StagingSpace> send_host, recv_host;  // staging when MPI cannot read device memory
  bool stage = false;
  AttentionStats stats;
};

SpatialAttention::SpatialAttention(const Decomposition& rows, const AttentionWeights& w, int max_frames)
    : impl_(std::make_unique<Impl>()) {
  auto& m = *impl_;
  const std::string where = "khalo::nn::SpatialAttention: ";
  m.comm = rows.grid().comm();
  std::string error;
  const auto& g = rows.global_extents();
  if (rows.rank() != 5) {
    error = where + "the activation must be (N, C, T, H, W), got rank " + std::to_string(rows.rank());
  } else if (rows.grid().ndims() != 1 || rows.split_dims() != std::vector<int>{3}) {
    error = where + "the decomposition must split rows (dimension 3) over a 1-D grid";
  } else if (g[1] != w.channels) {
    error =
        where + "the activation has " + std::to_string(g[1]) + " channels, the weights " + std::to_string(w.channels);
  } else if (w.channels < 1 || w.gamma.size() != static_cast<std::size_t>(w.channels) ||
             w.qkv_weight.size() != static_cast<std::size_t>(3 * w.channels) * static_cast<std::size_t>(w.channels) ||
             w.qkv_bias.size() != static_cast<std::size_t>(3 * w.channels) ||
             w.proj_weight.size() != static_cast<std::size_t>(w.channels) * static_cast<std::size_t>(w.channels) ||
             w.proj_bias.size() != static_cast<std::size_t>(w.channels)) {
    error = where + "the weights' sizes do not match " + std::to_string(w.channels) + " channels";
  } else if (max_frames < 1) {
    error = where + "max_frames must be >= 1, got " + std::to_string(max_frames);
  } else {
    // The gather's largest count and displacement: 2 N max_frames H W C floats in all.
    const double total = 2.0 * static_cast<double>(g[0]) * max_frames * static_cast<double>(g[3]) *
                         static_cast<double>(g[4]) * static_cast<double>(g[1]);
    if (total > static_cast<double>(INT_MAX)) {
      error = where + "a gather of keys and values for " + std::to_string(g[0]) + " x " + std::to_string(max_frames) +
              " frames of " + std::to_string(g[3]) + " x " + std::to_string(g[4]) + " positions x " +
              std::to_string(g[1]) + " channels is " + std::to_string(static_cast<std::int64_t>(total)) +
              " floats, over MPI's int count limit " + std::to_string(INT_MAX) + "; lower max_frames";
    }
  }
  khalo::detail::throw_if_any(m.comm, error);

  KHALO_MPI_CHECK(MPI_Comm_size(m.comm, &m.ranks));
  m.max_frames = max_frames;
  m.N = g[0];
  m.C = g[1];
  m.H = g[3];
  m.W = g[4];
  m.rows = rows.owned(3).size();
  m.first_row = rows.owned(3).begin;
  m.P = m.rows * m.W;
  m.G = m.H * m.W;
  m.Cp = round_up(m.C, detail::kLanes);
  m.Pq = round_up(m.P, detail::kQueryBlock);
  m.Gk = round_up(m.G, detail::kKeyBlock);
  for (int c = 0; c < m.ranks; ++c) {
    m.band_begin.push_back(rows.owned_at(3, c).begin);
    m.band_rows.push_back(rows.owned_at(3, c).size());
  }
  // Allocations can fail on one rank alone: every rank learns it before the first gather.
  try {
    const std::int64_t F = m.N * max_frames;
    auto vec = [](const std::vector<float>& v, const std::string& label) {
      Buffer d(label, v.size());
      auto h = Kokkos::create_mirror_view(d);
      for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
      Kokkos::deep_copy(d, h);
      return d;
    };
    const int C = static_cast<int>(m.C);
    m.gamma = vec(w.gamma, "khalo::attention.gamma");
    m.qkv = ConvWeights<Mem>::from_torch(w.qkv_weight, w.qkv_bias, 3 * C, C, 1, 1, 1, MemoryFormat::channels_last_3d);
    m.proj = ConvWeights<Mem>::from_torch(w.proj_weight, w.proj_bias, C, C, 1, 1, 1, MemoryFormat::channels_last_3d);
    // Views are zero-initialised: the padding (channels past C, positions past P or G) stays zero.
    m.normed = Buffer("khalo::attention.normed", static_cast<std::size_t>(F * m.P * m.Cp));
    m.q = Buffer("khalo::attention.q", static_cast<std::size_t>(F * m.Pq * m.Cp));
    m.acc = Buffer("khalo::attention.out", static_cast<std::size_t>(F * m.Pq * m.Cp));
    m.send = Buffer("khalo::attention.send", static_cast<std::size_t>(2 * F * m.P * m.C));
    m.recv = Buffer("khalo::attention.recv", static_cast<std::size_t>(2 * F * m.G * m.C));
    m.keys_t = Buffer("khalo::attention.keys", static_cast<std::size_t>(F * m.C * m.Gk));
    m.values = Buffer("khalo::attention.values", static_cast<std::size_t>(F * m.G * m.Cp));
    m.band_of_row = Kokkos::View<int*, Mem>("khalo::attention.band_of_row", static_cast<std::size_t>(m.H));
    m.band_first = Kokkos::View<std::int64_t*, Mem>("khalo::attention.band_first", static_cast<std::size_t>(m.ranks));
    m.band_len = Kokkos::View<std::int64_t*, Mem>("khalo::attention.band_len", static_cast<std::size_t>(m.ranks));
    auto row_h = Kokkos::create_mirror_view(m.band_of_row);
    auto first_h = Kokkos::create_mirror_view(m.band_first);
    auto len_h = Kokkos::create_mirror_view(m.band_len);
    for (int c = 0; c < m.ranks; ++c) {
      first_h(c) = m.band_begin[static_cast<std::size_t>(c)];
      len_h(c) = m.band_rows[static_cast<std::size_t>(c)];
      for (std::int64_t h = first_h(c); h < first_h(c) + len_h(c); ++h) row_h(h) = c;
    }
    Kokkos::deep_copy(m.band_of_row, row_h);
    Kokkos::deep_copy(m.band_first, first_h);
    Kokkos::deep_copy(m.band_len, len_h);
    m.stage = !Kokkos::SpaceAccessibility<Kokkos::HostSpace, Mem>::accessible && !gpu_aware_mpi();
    if (m.stage) {
      m.send_host = decltype(m.send_host)("khalo::attention.send_host", m.send.extent(0));
      m.recv_host = decltype(m.recv_host)("khalo::attention.recv_host", m.recv.extent(0));
    }
    error.clear();
  } catch (const std::exception& e) {
    error = where + "allocating the buffers failed: " + e.what();
  }
  khalo::detail::throw_if_any<std::runtime_error>(m.comm, error);
}

SpatialAttention::~SpatialAttention() = default;

const AttentionStats& SpatialAttention::stats() const { return impl_->stats; }

void SpatialAttention::run(Strided5 x, Strided5 out, int frames) {
  auto& m = *impl_;
  const std::string where = "khalo::nn::SpatialAttention::run: ";
  std::string error;
  if (frames < 1 || frames > m.max_frames) {
    error = where + std::to_string(frames) + " frame(s); this layer takes 1.." + std::to_string(m.max_frames);
  } else if (m.P > 0 && (x.data == nullptr || out.data == nullptr)) {
    error = where + "null input or output";
  } else if (m.P > 0) {
    // out is x itself, or apart from it: the residual add reads x[i] and writes out[i] only.
    const std::int64_t first[5] = {0, 0, 0, 0, 0}, extent[5] = {m.N, m.C, frames, m.rows, m.W};
    bool same = x.data == out.data;
    for (int d = 0; d < 5; ++d) same = same && x.stride[d] == out.stride[d];
    if (!same && detail::address_range(x, first, extent).meets(detail::address_range(out, first, extent))) {
      error = where + "out overlaps x without being x (same pointer and strides); give x itself or a separate tensor";
    }
  }
  khalo::detail::throw_if_any(m.comm, error);

  Kokkos::Profiling::pushRegion("khalo::attention");
  const double t_start = MPI_Wtime();
  const Exec exec;
  const int N = static_cast<int>(m.N), C = static_cast<int>(m.C), rows = static_cast<int>(m.rows);
  const int W = static_cast<int>(m.W);
  const std::int64_t F = m.N * frames, P = m.P, G = m.G, Cp = m.Cp, Pq = m.Pq, Gk = m.Gk, Wl = m.W;

  // Position-major buffers as (n, c, t, h, w) tensors: frame f = n * frames + t.
  auto positions = [&](float* data, std::int64_t per_frame, std::int64_t channel_stride) {
    Strided5 s;
    s.data = data;
    s.stride = {frames * per_frame * channel_stride, 1, per_frame * channel_stride, Wl * channel_stride,
                channel_stride};
    return s;
  };
  const Strided5 normed = positions(m.normed.data(), P, Cp);
  const Strided5 q = positions(m.q.data(), Pq, Cp);
  const Strided5 acc = positions(m.acc.data(), Pq, Cp);
  const Strided5 k_local = positions(m.send.data(), P, C);
  const Strided5 v_local = positions(m.send.data() + F * P * C, P, C);

  // 1. norm, then q, k, v for this rank's positions.
  if (P > 0) {
    rms_norm(exec, x, normed, m.gamma.data(), N, C, frames, rows, W);
    const Strided5 outs[3] = {q, k_local, v_local};
    for (int part = 0; part < 3; ++part) {
      ConvLaunch l;
      l.in = normed;
      l.out = outs[part];
      l.n = N;
      l.frames = frames;
      l.row_end = rows;
      l.in_width = l.out_width = W;
      l.cout_begin = part * C;
      l.cout_count = C;
      conv(exec, l, m.qkv);
    }
  }
  exec.fence();

  // 2. every rank's keys and values; rank c's band starts at float 2 F C W band_begin[c].
  const double t_gather = MPI_Wtime();
  std::vector<int> counts(static_cast<std::size_t>(m.ranks)), displs(static_cast<std::size_t>(m.ranks));
  for (int c = 0; c < m.ranks; ++c) {
    counts[static_cast<std::size_t>(c)] = static_cast<int>(2 * F * C * Wl * m.band_rows[static_cast<std::size_t>(c)]);
    displs[static_cast<std::size_t>(c)] = static_cast<int>(2 * F * C * Wl * m.band_begin[static_cast<std::size_t>(c)]);
  }
  const int send_count = static_cast<int>(2 * F * P * C);
  const int recv_total = static_cast<int>(2 * F * G * C);
  if (m.stage) {
    const auto used = std::make_pair(std::size_t{0}, static_cast<std::size_t>(send_count));
    Kokkos::deep_copy(Kokkos::subview(m.send_host, used), Kokkos::subview(m.send, used));
    KHALO_MPI_CHECK(MPI_Allgatherv(m.send_host.data(), send_count, MPI_FLOAT, m.recv_host.data(), counts.data(),
                                   displs.data(), MPI_FLOAT, m.comm));
    const auto all = std::make_pair(std::size_t{0}, static_cast<std::size_t>(recv_total));
    Kokkos::deep_copy(Kokkos::subview(m.recv, all), Kokkos::subview(m.recv_host, all));
  } else {
    KHALO_MPI_CHECK(MPI_Allgatherv(m.send.data(), send_count, MPI_FLOAT, m.recv.data(), counts.data(), displs.data(),
                                   MPI_FLOAT, m.comm));
  }
  const double gather_seconds = MPI_Wtime() - t_gather;

  // 3. keys and values into their panels, in global position order.
  const detail::AttentionShape shape{F, P, G, C, Cp, Pq, Gk, Wl};
  detail::attention_panels(exec, shape, m.recv.data(), m.band_of_row, m.band_first, m.band_len, m.keys_t.data(),
                           m.values.data());

  // 4. attention for this rank's queries.
  if (P > 0) {
    detail::attention_softmax(exec, shape, m.q.data(), m.keys_t.data(), m.values.data(), m.acc.data());

    // 5. proj (into the query buffer, free now), then out = x + proj: one element read and
    // written at a time, so out may be x.
    ConvLaunch l;
    l.in = acc;
    l.out = q;
    l.n = N;
    l.frames = frames;
    l.row_end = rows;
    l.in_width = l.out_width = W;
    l.cout_count = C;
    conv(exec, l, m.proj);
    const float* pd = m.q.data();
    Kokkos::parallel_for(
        "khalo::attention::residual", Kokkos::RangePolicy<Exec>(exec, 0, F * P), KOKKOS_LAMBDA(const std::int64_t i) {
          const std::int64_t f = i / P, pos = i % P;
          const std::int64_t n = f / frames, t = f % frames, h = pos / Wl, ww = pos % Wl;
          const float* pr = pd + (f * Pq + pos) * Cp;
          const float* xi = x.data + x.offset(n, 0, t, h, ww);
          float* o = out.data + out.offset(n, 0, t, h, ww);
          for (int c = 0; c < C; ++c) o[c * out.stride[1]] = xi[c * x.stride[1]] + pr[c];
        });
  }
  exec.fence();
  Kokkos::Profiling::popRegion();

  const double total = MPI_Wtime() - t_start;
  m.stats.calls += 1;
  m.stats.bytes_gathered += static_cast<std::int64_t>(recv_total) * static_cast<std::int64_t>(sizeof(float));
  m.stats.gather_seconds += gather_seconds;
  m.stats.compute_seconds += total - gather_seconds;
  const double fp = static_cast<double>(F * P), c2 = static_cast<double>(C) * static_cast<double>(C);
  m.stats.flops += fp * (2.0 * 3.0 * c2 + 2.0 * c2 + 4.0 * static_cast<double>(G) * static_cast<double>(C));
}

}  // namespace khalo::nn
