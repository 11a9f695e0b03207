#include <khalo/nn/layers/resample.hpp>

#include <stdexcept>

namespace khalo::nn {

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

std::vector<KeyShape> Resample::keys(Upsample mode, std::int64_t d) {
  std::vector<KeyShape> k;
  if (mode == Upsample::upsample3d) {
    k.push_back({"time_conv.weight", {2 * d, d, 3, 1, 1}});
    k.push_back({"time_conv.bias", {2 * d}});
  }
  if (mode != Upsample::none) {
    k.push_back({"resample.1.weight", {d / 2, d, 3, 3}});
    k.push_back({"resample.1.bias", {d / 2}});
  }
  return k;
}

Resample::Resample(const RowBands& bands, const WeightMap& weights, const std::string& prefix, Upsample mode,
                   int max_frames)
    : bands_(bands),
      out_bands_(bands.upsampled()),
      resample_(conv_weights(weights, prefix + "resample.1", bands.format())) {
  if (mode == Upsample::none) throw std::invalid_argument("khalo::nn::Resample: no upsampler");
  x_halos_ = HaloPlans(bands, resample_.cin);
  if (mode == Upsample::upsample3d) {
    time_conv_.emplace(bands, weights, prefix + "time_conv", max_frames);
    up_in_ = bands.allocate(prefix + "resample.in", resample_.cin, 2 * max_frames, 1);
    up_halos_ = HaloPlans(bands, resample_.cin);
  }
}

void Resample::run(const Activation<>& x, int frames, const Strided5& out, bool keep_cache, const LayerLog& log,
                   const Activation<>* out_view) {
  const LayerExec exec;
  const int C = resample_.cin;
  const int N = static_cast<int>(bands_.batch()), rows = static_cast<int>(bands_.rows());
  const int W = static_cast<int>(bands_.width());
  const Activation<>* conv_in = &x;
  HaloPlans* halos = &x_halos_;
  if (time_conv_ && !first_call_) {
    // time_conv: C -> 2C, causal (3,1,1); output channel half h of frame t is frame 2t + h.
    const double t0 = log.start();
    const Strided5 in = time_conv_->prepare(strided(x).shifted(0, 0, 0, 1, 0), frames);
    const Strided5 up = strided(up_in_).shifted(0, 0, 0, 1, 0);
    ConvKernel kernel;
    for (int half = 0; half < 2; ++half) {
      ConvLaunch l;
      l.in = in;
      l.out = up.shifted(0, 0, half, 0, 0);
      l.out.stride[2] *= 2;
      l.n = N;
      l.frames = frames;
      l.row_end = rows;
      l.out_width = l.in_width = W;
      l.cout_begin = half * C;
      l.cout_count = C;
      kernel = conv(exec, l, time_conv_->weights());
    }
    time_conv_->finish(frames, keep_cache);
    log.report("time_conv", t0, 2.0 * N * frames * rows * W * 2 * C * time_conv_->macs_per_output(), &up_in_, bands_,
               2 * frames, 1, kernel.name());
    conv_in = &up_in_;
    halos = &up_halos_;
    frames *= 2;
  }
  first_call_ = false;
  // Nearest 2x in H and W fused into the per-frame 3x3 conv (C -> C/2).
  const double t0 = log.start();
  ConvKernel kernel;
  halos->overlapped(*conv_in, 0, frames, 2 * rows, [&](int r0, int r1) {
    ConvLaunch l;
    l.in = strided(*conv_in);
    l.out = out;
    l.n = N;
    l.frames = frames;
    l.row_begin = r0;
    l.row_end = r1;
    l.in_width = W;
    l.out_width = 2 * W;
    l.cout_count = resample_.cout;
    l.up_first_row = bands_.first_row();
    kernel = conv(exec, l, resample_, true);
  });
  log.report("resample.1", t0,
             2.0 * N * frames * 4.0 * rows * W * resample_.cout * static_cast<double>(resample_.macs_per_output()),
             out_view, out_bands_, frames, 0, kernel.name());
}

void Resample::reset() {
  first_call_ = true;
  if (time_conv_) time_conv_->reset();
}

HaloStats Resample::halo_stats() const {
  HaloStats s = x_halos_.stats();
  s += up_halos_.stats();
  return s;
}

}  // namespace khalo::nn
