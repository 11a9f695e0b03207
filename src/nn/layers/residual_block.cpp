#include <khalo/nn/layers/residual_block.hpp>

namespace khalo::nn {

std::vector<KeyShape> ResidualBlock::keys(std::int64_t cin, std::int64_t cout) {
  std::vector<KeyShape> k{
      {"norm1.gamma", {cin, 1, 1, 1}},  {"conv1.weight", {cout, cin, 3, 3, 3}},  {"conv1.bias", {cout}},
      {"norm2.gamma", {cout, 1, 1, 1}}, {"conv2.weight", {cout, cout, 3, 3, 3}}, {"conv2.bias", {cout}}};
  if (cin != cout) {
    k.push_back({"conv_shortcut.weight", {cout, cin, 1, 1, 1}});
    k.push_back({"conv_shortcut.bias", {cout}});
  }
  return k;
}

ResidualBlock::ResidualBlock(const RowBands& bands, const WeightMap& weights, const std::string& prefix, int max_frames)
    : bands_(bands),
      conv1_(bands, weights, prefix + "conv1", max_frames, Prologue::norm_silu, prefix + "norm1.gamma"),
      conv2_(bands, weights, prefix + "conv2", max_frames, Prologue::norm_silu, prefix + "norm2.gamma") {
  if (conv1_.in_channels() != conv1_.out_channels()) {
    shortcut_.emplace(bands, weights, prefix + "conv_shortcut", max_frames);
    shortcut_out_ = bands.allocate(prefix + "shortcut.out", out_channels(), max_frames);
  }
  max_frames_ = max_frames;
  bands.reserve(ScratchSlot::block, out_channels(), max_frames);
}

void ResidualBlock::run(const Strided5& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
                        const Activation<>* out_view, int out_row0) {
  const double outputs = static_cast<double>(bands_.batch() * frames * bands_.rows() * bands_.width()) *
                         static_cast<double>(out_channels());
  y1_ = bands_.borrow(ScratchSlot::block, out_channels(), max_frames_);
  double t0 = log.start();
  ConvKernel kernel = conv1_.run(x, frames, strided(y1_), Strided5{}, keep_cache);
  log.report("conv1", t0, 2.0 * outputs * conv1_.macs_per_output(), &y1_, bands_, frames, 0, kernel.name());
  Strided5 residual = x;
  if (shortcut_) {
    t0 = log.start();
    kernel = shortcut_->run(x, frames, strided(shortcut_out_), Strided5{}, false);
    residual = strided(shortcut_out_);
    log.report("conv_shortcut", t0, 2.0 * outputs * shortcut_->macs_per_output(), &shortcut_out_, bands_, frames, 0,
               kernel.name());
  }
  t0 = log.start();
  kernel = conv2_.run(strided(y1_), frames, out, residual, keep_cache);
  log.report("conv2", t0, 2.0 * outputs * conv2_.macs_per_output(), out_view, bands_, frames, out_row0, kernel.name());
}

void ResidualBlock::reset() {
  conv1_.reset();
  conv2_.reset();
}

HaloStats ResidualBlock::halo_stats() const {
  HaloStats s = conv1_.halo_stats();
  s += conv2_.halo_stats();
  return s;
}

}  // namespace khalo::nn
