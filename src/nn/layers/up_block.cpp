#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/layers/up_block.hpp>

namespace khalo::nn {

std::vector<KeyShape> StageConfig::keys() const {
  std::vector<KeyShape> k;
  for (int i = 0; i <= num_res_blocks; ++i) {
    const std::string p = "resnets." + std::to_string(i) + ".";
    for (auto& [key, shape] : ResidualBlock::keys(i == 0 ? in_dim : out_dim, out_dim)) k.push_back({p + key, shape});
  }
  for (auto& [key, shape] : Resample::keys(upsample, out_dim)) k.push_back({"upsamplers.0." + key, shape});
  return k;
}

StageConfig StageConfig::infer(const io::TensorSource& file) {
  StageConfig c;
  const std::string where = "khalo::nn::StageConfig: '" + file.path() + "'" +
                            (file.prefix().empty() ? "" : " (prefix '" + file.prefix() + "')") + ": ";
  int blocks = 0;
  while (file.has("resnets." + std::to_string(blocks) + ".conv1.weight")) ++blocks;
  if (blocks == 0) throw io::Error(where + "missing key 'resnets.0.conv1.weight' (no residual block found)");
  const auto first = file.shape("resnets.0.conv1.weight");
  if (first.size() != 5) throw io::Error(where + "key 'resnets.0.conv1.weight' is not a 5-D convolution weight");
  c.in_dim = static_cast<int>(first[1]);
  c.out_dim = static_cast<int>(first[0]);
  c.num_res_blocks = blocks - 1;
  const bool resample = file.has("upsamplers.0.resample.1.weight");
  const bool time_conv = file.has("upsamplers.0.time_conv.weight");
  if (time_conv && !resample) throw io::Error(where + "missing key 'upsamplers.0.resample.1.weight'");
  c.upsample = time_conv ? Upsample::upsample3d : resample ? Upsample::upsample2d : Upsample::none;
  if (c.upsample != Upsample::none && c.out_dim % 2 != 0) {
    throw io::Error(where + "the upsampler halves " + std::to_string(c.out_dim) + " channels (not even)");
  }
  return c;
}

UpBlock::UpBlock(const RowBands& bands, const WeightMap& weights, const std::string& prefix, const StageConfig& config,
                 int max_frames)
    : bands_(bands), config_(config) {
  for (int i = 0; i <= config.num_res_blocks; ++i) {
    const std::string p = prefix + "resnets." + std::to_string(i) + ".";
    blocks_.push_back(std::make_unique<ResidualBlock>(bands, weights, p, max_frames));
  }
  // Block i writes outs_[i % 2] and reads the other: two buffers serve any number of blocks.
  // The last block writes the stage's output itself when no resampler follows. Ghost rows
  // for the resampler after the last block; the others are read without.
  const std::size_t kept = blocks_.size() - (config.upsample == Upsample::none ? 1 : 0);
  for (std::size_t i = 0; i < kept && i < 2; ++i) {
    outs_.push_back(bands.allocate(prefix + "out." + std::to_string(i), config.out_dim, max_frames, 1));
  }
  if (config.upsample != Upsample::none) {
    resample_ = std::make_unique<Resample>(bands, weights, prefix + "upsamplers.0.", config.upsample, max_frames);
  }
}

void UpBlock::run(const Strided5& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
                  const Activation<>* out_view) {
  Strided5 in = x;
  for (std::size_t i = 0; i < blocks_.size(); ++i) {
    // The stage's output when nothing follows, else the block's own buffer (with ghost rows).
    const bool direct = i + 1 == blocks_.size() && !resample_;
    const Activation<>* own = direct ? nullptr : &outs_[i % 2];
    const Strided5 o = direct ? out : strided(*own).shifted(0, 0, 0, 1, 0);
    blocks_[i]->run(in, frames, o, keep_cache, log.under("resnets." + std::to_string(i) + "."), direct ? out_view : own,
                    direct ? 0 : 1);
    in = o;
  }
  if (resample_) {
    resample_->run(outs_[(blocks_.size() - 1) % 2], frames, out, keep_cache, log.under("upsamplers.0."), out_view);
  }
}

void UpBlock::reset() {
  for (auto& b : blocks_) b->reset();
  if (resample_) resample_->reset();
}

HaloStats UpBlock::halo_stats() const {
  HaloStats s;
  for (const auto& b : blocks_) s += b->halo_stats();
  if (resample_) s += resample_->halo_stats();
  return s;
}

}  // namespace khalo::nn
