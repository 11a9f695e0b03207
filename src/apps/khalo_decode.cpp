// khalo-decode: the Wan 2.1 VAE decoder (the whole model, or one up-block), distributed by
// bands of rows. See the README (Usage) and docs/cli.md for the command line.
#include <khalo/detail/strides.hpp>
#include <khalo/io/frames.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <khalo/nn/model.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <CLI/CLI.hpp>

#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

namespace {

using khalo::detail::shape_text;

std::vector<std::int64_t> parse_shape(const std::string& text) {
  std::vector<std::int64_t> s;
  std::stringstream in(text);
  std::string part;
  while (std::getline(in, part, ',')) {
    std::size_t used = 0;
    long long v = -1;
    try {
      v = std::stoll(part, &used);
    } catch (...) {
    }
    if (used != part.size() || v < 1)
      throw std::invalid_argument("--random-input: '" + text + "' is not N,C,D,H,W of positive integers");
    s.push_back(v);
  }
  if (s.size() != 5) throw std::invalid_argument("--random-input: '" + text + "' needs five extents N,C,D,H,W");
  return s;
}

// The owned rows and first frames of a layer's band, in C order, written at its global place.
void write_band(khalo::io::SnapshotWriter& w, const std::string& name, const khalo::nn::LayerEvent& e,
                const std::string& format) {
  const auto& band = *e.output;
  const int row0 = e.output_row_offset;
  auto part = Kokkos::subview(band, Kokkos::ALL, Kokkos::ALL, std::make_pair(0, e.output_frames),
                              std::make_pair(row0, static_cast<int>(row0 + e.rows)), Kokkos::ALL);
  const auto host = khalo::io::SnapshotWriter::to_host_c_order(part);
  std::vector<std::int64_t> global{static_cast<std::int64_t>(band.extent(0)), static_cast<std::int64_t>(band.extent(1)),
                                   e.output_frames, e.global_rows, static_cast<std::int64_t>(band.extent(4))};
  khalo::io::Hyperslab slab{{0, 0, 0, e.first_row, 0}, {global[0], global[1], e.output_frames, e.rows, global[4]}};
  w.write_raw(name, global, slab, host.data(), khalo::io::DType::float32, format, std::nullopt);
}

// This process's peak resident memory (VmHWM), in bytes; 0 where /proc cannot tell.
double peak_memory() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) * 1024.0;
  }
  return 0.0;
}

// The largest and smallest of a value over ranks.
std::pair<double, double> max_min(double v) {
  double hi = 0, lo = 0;
  KHALO_MPI_CHECK(MPI_Allreduce(&v, &hi, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD));
  KHALO_MPI_CHECK(MPI_Allreduce(&v, &lo, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD));
  return {hi, lo};
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  const bool root = runtime.world_rank() == 0;
  CLI::App app{
      "Decode Wan 2.1 VAE latents (the whole decoder, or one up-block), distributed over MPI ranks by bands of "
      "rows"};
  std::string input, random_input, weights, prefix, layout = "channels_last_3d", output, dump, upsample = "upsample3d";
  std::uint64_t seed = 0;
  bool random_weights = false, info = false, quiet = false, normalized = false;
  int in_dim = 0, out_dim = 0, num_res_blocks = -1, chunks = 0, base_dim = 0;
  khalo::io::FrameOutput frames_out;
  auto* in_opt = app.add_option("--input", input, "input snapshot FILE[:DATASET] (default dataset /data)");
  auto* rin_opt = app.add_option("--random-input", random_input, "generate the input: N,C,D,H,W");
  in_opt->excludes(rin_opt);
  app.add_option("--seed", seed, "seed of generated input and weights");
  auto* w_opt = app.add_option("--weights", weights,
                               "weights: a safetensors checkpoint (the whole decoder when it holds "
                               "decoder.conv_in.weight) or an HDF5 weights file (docs/weights.md)");
  app.add_option("--prefix", prefix, "key prefix of one up-block in the weights file, e.g. decoder.up_blocks.1.");
  auto* rw_opt = app.add_flag("--random-weights", random_weights,
                              "generate weights: the whole decoder with --base-dim, else one up-block");
  w_opt->excludes(rw_opt);
  app.add_option("--base-dim", base_dim, "random weights: the whole Wan 2.1 decoder of this base width (96 released)")
      ->check(CLI::PositiveNumber);
  app.add_option("--in-dim", in_dim, "random up-block: input channels (default: the input's)");
  app.add_option("--out-dim", out_dim, "random up-block: output channels of the residual blocks (default: in-dim)");
  app.add_option("--num-res-blocks", num_res_blocks,
                 "random weights: residual blocks per up-block minus one (default: 2 for the decoder, 1 for an "
                 "up-block)")
      ->check(CLI::Range(0, 64));
  app.add_option("--upsample", upsample, "random up-block: none, upsample2d or upsample3d")
      ->check(CLI::IsMember({"none", "upsample2d", "upsample3d"}));
  app.add_option("--layout", layout, "memory format of the activations")
      ->check(CLI::IsMember({"contiguous", "channels_last_3d"}));
  app.add_option("--chunks", chunks, "up-block: decode the frames in this many causal chunks (default: whole clip)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--latents-normalized", normalized,
               "decoder: the latent is normalized as Wan pipelines keep it; apply Wan 2.1's mean/std first");
  app.add_option("--output", output, "output snapshot FILE[:DATASET]");
  app.add_option("--frames", frames_out.frames_dir, "decoder: write one PNG per output frame into this directory");
  app.add_option("--video", frames_out.video_path, "decoder: encode the frames with ffmpeg into this file (.mp4, ...)");
  app.add_option("--fps", frames_out.fps, "frame rate of --video")->check(CLI::PositiveNumber);
  app.add_option("--dump-layers", dump, "write every layer's output to this file, a dataset per layer");
  app.add_flag("--info,--version", info, "print the versions of khalo, Kokkos, MPI and HDF5, and exit");
  app.add_flag("--quiet", quiet, "no per-layer progress");
  try {
    app.parse(argc, argv);
    if (!info && input.empty() && random_input.empty()) throw CLI::ValidationError("give --input or --random-input");
    if (!info && weights.empty() && !random_weights) throw CLI::ValidationError("give --weights or --random-weights");
    if (!info && output.empty() && frames_out.frames_dir.empty() && frames_out.video_path.empty())
      throw CLI::ValidationError("give --output, --frames or --video");
  } catch (const CLI::ParseError& e) {
    if (root) app.exit(e);
    return e.get_exit_code() == 0 ? 0 : 2;
  }
  if (info) {
    const std::string text = khalo::build_info();  // collective-free, but every rank may ask
    if (root) std::printf("%s\n", text.c_str());
    return 0;
  }
  // Errors every rank sees end the run with one message and exit 2; an error one rank meets
  // alone (out of memory, MPI, HDF5) ends the whole job (khalo::Runtime::guard).
  return runtime.guard("khalo-decode", [&] {
    const double t_start = MPI_Wtime();
    const auto format = khalo::memory_format_from_string(layout);
    // The input's shape.
    std::vector<std::int64_t> shape;
    khalo::io::PathSpec in_spec;
    if (!input.empty()) {
      in_spec = khalo::io::parse_path_spec(input);
      khalo::io::SnapshotReader reader(MPI_COMM_WORLD, in_spec.file);
      const auto di = reader.info(in_spec.dataset);
      if (di.shape.size() != 5 || di.dtype != khalo::io::DType::float32) {
        throw khalo::io::Error("khalo-decode: input '" + input + "' must be a float32 (N, C, T, H, W) dataset, it is " +
                               khalo::io::to_string(di.dtype) + " " + shape_text(di.shape));
      }
      shape = di.shape;
    } else {
      shape = parse_shape(random_input);
    }
    auto read_input = [&](const khalo::Decomposition& dec) {
      auto band = khalo::nn::make_activation("input", dec.local_extents(), format);
      if (!input.empty()) {
        khalo::io::SnapshotReader reader(MPI_COMM_WORLD, in_spec.file);
        reader.read(in_spec.dataset, dec, band);
      } else {
        khalo::nn::fill_random_input(band, dec, seed);
      }
      return band;
    };
    // The whole decoder or one up-block: what the weights hold.
    std::unique_ptr<khalo::io::TensorSource> file;
    if (!weights.empty()) file = khalo::io::open_tensor_source(MPI_COMM_WORLD, weights, prefix);
    const bool whole = file ? file->has("decoder.conv_in.weight") : base_dim > 0;
    std::string misuse;
    if (whole && chunks > 0) misuse = "--chunks is for one up-block; the decoder goes latent frame by latent frame";
    if (!whole && (normalized || !frames_out.frames_dir.empty() || !frames_out.video_path.empty()))
      misuse = "--latents-normalized, --frames and --video need the whole decoder (weights with decoder.conv_in.*)";
    if (misuse.empty() && !whole && output.empty()) misuse = "give --output";
    if (!misuse.empty()) throw std::invalid_argument(misuse);

    std::optional<khalo::io::SnapshotWriter> dumper;
    if (!dump.empty()) dumper.emplace(MPI_COMM_WORLD, dump);
    // Per-layer times cost a fence and a reduction after every layer: only when someone looks.
    const bool timed = !quiet || dumper.has_value();
    double flops = 0.0;  // all ranks' when timed, else this rank's (summed at the end)
    auto on_layer = [&](const khalo::nn::LayerEvent& e) {
      flops += e.flops;
      if (root && !quiet) {
        std::fprintf(stderr, "  %-44s chunk %d  %9.3f ms  %8.2f GFLOP/s  %s\n", e.name.c_str(), e.chunk,
                     e.seconds * 1e3, e.seconds > 0 ? e.flops / e.seconds * 1e-9 : 0.0, e.kernel.c_str());
      }
      if (dumper && e.output != nullptr) {
        const bool chunked = whole ? shape[2] > 1 : chunks > 0;
        write_band(*dumper, (chunked ? "/chunk" + std::to_string(e.chunk) + "/" : "/") + e.name, e, layout);
      }
    };

    khalo::nn::Activation<> result;
    std::vector<std::int64_t> out_shape;
    khalo::Range rows;
    long long halo_bytes = 0, gathered = 0;
    double seconds = 0.0, attention_seconds = 0.0;
    if (whole) {
      std::optional<khalo::nn::Decoder> built;
      {
        // The host copy of the weights goes once the layers hold them packed: the decode's peak
        // memory is then the packed weights and the activations only.
        khalo::nn::DecoderWeights dw;
        if (file) {
          dw = khalo::nn::DecoderWeights::load(*file);
        } else {
          dw = khalo::nn::DecoderWeights::random(
              khalo::nn::DecoderConfig::wan21(base_dim, static_cast<int>(shape[1]),
                                              num_res_blocks < 0 ? 2 : num_res_blocks),
              seed);
        }
        built.emplace(MPI_COMM_WORLD, dw, format, shape);
      }
      khalo::nn::Decoder& model = *built;
      auto band = read_input(model.latent_decomposition());
      out_shape = model.output_shape();
      rows = model.output_rows();
      std::optional<khalo::io::FrameSink> sink;
      if (!frames_out.frames_dir.empty() || !frames_out.video_path.empty())
        sink.emplace(MPI_COMM_WORLD, frames_out, out_shape[0], out_shape[3], out_shape[4], rows.begin, rows.end);
      const auto& cfg = model.config();
      if (root && !quiet) {
        std::fprintf(stderr, "khalo-decode: %d ranks, %s, decoder z_dim %d, width %d, %zu up-blocks, %s -> %s\n",
                     runtime.world_size(), layout.c_str(), cfg.z_dim, cfg.mid_dim, cfg.up_blocks.size(),
                     shape_text(shape).c_str(), shape_text(out_shape).c_str());
      }
      const double t_decode = MPI_Wtime();
      result = model.run(
          band, normalized,
          [&](const khalo::nn::DecodedFrames& f) {
            if (sink) {
              auto fresh =
                  Kokkos::subview(*f.band, Kokkos::ALL, Kokkos::ALL,
                                  std::make_pair(f.first_frame, f.first_frame + f.frames), Kokkos::ALL, Kokkos::ALL);
              sink->append(fresh, f.frames);
            }
            if (quiet) return;  // the same on every rank: no reduction either
            const auto mem = max_min(peak_memory());
            if (root) {
              std::fprintf(stderr,
                           "khalo-decode: latent frame %d/%lld -> %d frame(s), %.2f s, peak memory per rank %.0f MiB"
                           " (smallest %.0f MiB)\n",
                           f.latent_frame + 1, static_cast<long long>(shape[2]), f.frames, MPI_Wtime() - t_decode,
                           mem.first / 1048576.0, mem.second / 1048576.0);
            }
          },
          on_layer, timed);
      seconds = MPI_Wtime() - t_decode;
      if (sink) sink->finish();
      const auto st = model.stats();
      halo_bytes = st.halo.bytes_sent;
      gathered = st.attention.bytes_gathered;
      attention_seconds = st.attention.gather_seconds;
      if (root && sink) {
        if (!frames_out.frames_dir.empty())
          std::fprintf(stderr, "khalo-decode: %lld frame(s) in %s\n", static_cast<long long>(sink->frames_written()),
                       frames_out.frames_dir.c_str());
        if (!frames_out.video_path.empty())
          std::fprintf(stderr, "khalo-decode: video %s\n", frames_out.video_path.c_str());
      }
    } else {
      khalo::nn::StageWeights sw;
      if (file) {
        sw = khalo::nn::StageWeights::load(*file);
      } else {
        khalo::nn::StageConfig c;
        c.in_dim = in_dim > 0 ? in_dim : static_cast<int>(shape[1]);
        c.out_dim = out_dim > 0 ? out_dim : c.in_dim;
        c.num_res_blocks = num_res_blocks < 0 ? 1 : num_res_blocks;
        c.upsample = khalo::nn::upsample_from_string(upsample);
        sw = khalo::nn::StageWeights::random(c, seed);
      }
      khalo::nn::DecoderStage stage(MPI_COMM_WORLD, sw, format, shape);
      auto band = read_input(stage.input_decomposition());
      out_shape = stage.output_shape(chunks);
      rows = stage.output_rows();
      const auto& cfg = stage.config();
      if (root && !quiet) {
        std::fprintf(stderr, "khalo-decode: %d ranks, %s, stage %d->%d channels, %d residual blocks, %s, %s\n",
                     runtime.world_size(), layout.c_str(), cfg.in_dim, cfg.out_dim, cfg.num_res_blocks + 1,
                     khalo::nn::to_string(cfg.upsample).c_str(),
                     chunks > 0 ? ("chunks " + std::to_string(chunks)).c_str() : "whole clip");
      }
      const double t_decode = MPI_Wtime();
      result = stage.run(band, chunks, on_layer, timed);
      seconds = MPI_Wtime() - t_decode;
      halo_bytes = stage.halo_stats().bytes_sent;
    }
    if (dumper) dumper->commit();
    if (!output.empty()) {
      const auto out_spec = khalo::io::parse_path_spec(output);
      khalo::io::SnapshotWriter writer(MPI_COMM_WORLD, out_spec.file);
      const auto host = khalo::io::SnapshotWriter::to_host_c_order(result);
      khalo::io::Hyperslab slab{{0, 0, 0, rows.begin, 0},
                                {out_shape[0], out_shape[1], out_shape[2], rows.size(), out_shape[4]}};
      writer.write_raw(out_spec.dataset, out_shape, slab, host.data(), khalo::io::DType::float32, layout, std::nullopt);
      writer.commit();
    }
    if (!timed) {
      double mine = flops;
      KHALO_MPI_CHECK(MPI_Allreduce(&mine, &flops, 1, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD));
    }
    long long halo_total = 0, gathered_total = 0;
    KHALO_MPI_CHECK(MPI_Allreduce(&halo_bytes, &halo_total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
    KHALO_MPI_CHECK(MPI_Allreduce(&gathered, &gathered_total, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD));
    const auto mem = max_min(peak_memory());
    const auto gather_time = max_min(attention_seconds);
    if (root) {
      std::fprintf(stderr,
                   "khalo-decode: %d ranks, %s, %s -> %s, %.3f s decode (%.3f s total), %.2f GFLOP/s, halo %.3f MB "
                   "sent, attention gather %.3f MB in %.3f s, peak memory per rank %.0f MiB (smallest %.0f MiB), "
                   "output %s\n",
                   runtime.world_size(), layout.c_str(), shape_text(shape).c_str(), shape_text(out_shape).c_str(),
                   seconds, MPI_Wtime() - t_start, seconds > 0 ? flops / seconds * 1e-9 : 0.0, halo_total * 1e-6,
                   gathered_total * 1e-6, gather_time.first, mem.first / 1048576.0, mem.second / 1048576.0,
                   output.empty() ? "(none)" : output.c_str());
    }
    return 0;
  });
}
