#include <khalo/nn/layers/causal_conv3d.hpp>
#include <khalo/nn/pointwise.hpp>

#include <stdexcept>

namespace khalo::nn {

ConvWeights<LayerMem> conv_weights(const WeightMap& weights, const std::string& key, MemoryFormat format) {
  const auto& shape = weights.shape(key + ".weight");
  const int kt = shape.size() == 5 ? static_cast<int>(shape[2]) : 1;
  const int kh = static_cast<int>(shape[shape.size() - 2]);
  const int kw = static_cast<int>(shape[shape.size() - 1]);
  return ConvWeights<LayerMem>::from_torch(weights.at(key + ".weight"), weights.at(key + ".bias"),
                                           static_cast<int>(shape[0]), static_cast<int>(shape[1]), kt, kh, kw, format);
}

Kokkos::View<float*, LayerMem> device_vector(const std::vector<float>& v, const std::string& label) {
  Kokkos::View<float*, LayerMem> d(label, v.size());
  auto h = Kokkos::create_mirror_view(d);
  for (std::size_t i = 0; i < v.size(); ++i) h(i) = v[i];
  Kokkos::deep_copy(d, h);
  return d;
}

CausalConv3d::CausalConv3d(const RowBands& bands, const WeightMap& weights, const std::string& key, int max_frames,
                           Prologue prologue, const std::string& gamma_key)
    : bands_(bands), w_(conv_weights(weights, key, bands.format())), prologue_(prologue) {
  if (!((w_.kt == 1 || w_.kt == 3) && (w_.kh == 1 || w_.kh == 3) && w_.kw == w_.kh)) {
    throw std::invalid_argument("khalo::nn::CausalConv3d: '" + key + "' has an unsupported kernel " +
                                std::to_string(w_.kt) + "x" + std::to_string(w_.kh) + "x" + std::to_string(w_.kw));
  }
  if (prologue == Prologue::norm_silu) gamma_ = device_vector(weights.at(gamma_key), gamma_key);
  ghost_ = w_.kh / 2;
  direct_ = w_.kt == 1 && w_.kh == 1 && prologue == Prologue::copy;
  if (direct_) return;
  max_frames_ = max_frames;
  bands.reserve(ScratchSlot::conv_input, w_.cin, 2 + max_frames, ghost_);
  cache_ = bands.allocate(key + ".cache", w_.cin, 2, ghost_);
  if (ghost_ > 0) halos_ = HaloPlans(bands, w_.cin);
}

Strided5 CausalConv3d::prepare(const Strided5& x, int frames) {
  const LayerExec exec;
  const int N = static_cast<int>(bands_.batch()), C = w_.cin, W = static_cast<int>(bands_.width());
  const int rows = static_cast<int>(bands_.rows()), all_rows = rows + 2 * ghost_;
  buffer_ = bands_.borrow(ScratchSlot::conv_input, C, 2 + max_frames_, ghost_);
  const Strided5 buf = strided(buffer_);
  if (cached_) {
    copy_frames(exec, strided(cache_), 0, buf, 0, 2, N, C, all_rows, W);
  } else {
    zero_frames(exec, buf, 0, 2, N, C, all_rows, W);
  }
  const Strided5 owned = buf.shifted(0, 0, 0, ghost_, 0);
  if (prologue_ == Prologue::norm_silu) {
    rms_norm_silu(exec, x, owned.shifted(0, 0, 2, 0, 0), gamma_.data(), N, C, frames, rows, W);
  } else {
    copy_frames(exec, x, 0, owned, 2, frames, N, C, rows, W);
  }
  return buf;
}

void CausalConv3d::finish(int frames, bool keep_cache) {
  // The cache: the last two frames of the buffer (the cache itself in front when the call
  // had one frame), for the next call only.
  if (keep_cache) {
    const int rows = static_cast<int>(bands_.rows()) + 2 * ghost_;
    copy_frames(LayerExec(), strided(buffer_), frames, strided(cache_), 0, 2, static_cast<int>(bands_.batch()), w_.cin,
                rows, static_cast<int>(bands_.width()));
  }
  cached_ = keep_cache;
}

ConvKernel CausalConv3d::run(const Strided5& x, int frames, const Strided5& out, const Strided5& residual,
                             bool keep_cache) {
  const LayerExec exec;
  ConvLaunch l;
  l.out = out;
  l.residual = residual;
  l.n = static_cast<int>(bands_.batch());
  l.frames = frames;
  l.out_width = l.in_width = static_cast<int>(bands_.width());
  l.cout_count = w_.cout;
  const int rows = static_cast<int>(bands_.rows());
  if (direct_) {
    l.in = x;
    l.row_end = rows;
    return conv(exec, l, w_);
  }
  // The input starts at the front padding (frame 0) and the first ghost row: the first tap.
  l.in = prepare(x, frames).shifted(0, 0, w_.kt == 3 ? 0 : 2, 0, 0);
  ConvKernel kernel;
  if (ghost_ > 0) {
    halos_.overlapped(buffer_, 2, frames, rows, [&](int r0, int r1) {
      l.row_begin = r0;
      l.row_end = r1;
      kernel = conv(exec, l, w_);
    });
  } else {
    l.row_end = rows;
    kernel = conv(exec, l, w_);
  }
  finish(frames, keep_cache);
  return kernel;
}

}  // namespace khalo::nn
