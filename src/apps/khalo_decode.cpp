// khalo-decode: the Wan 2.1 VAE decoder up-block, distributed by bands of rows.
// See the README (Usage) and docs/cli.md for the command line.
#include <khalo/detail/strides.hpp>
#include <khalo/io/snapshot.hpp>
#include <khalo/io/tensor_source.hpp>
#include <khalo/nn/decoder_stage.hpp>
#include <khalo/runtime.hpp>

#include <mpi.h>
#include <CLI/CLI.hpp>

#include <cstdio>
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
void write_band(khalo::io::SnapshotWriter& w, const std::string& name, const khalo::nn::Activation<>& band, int frames,
                int row0, std::int64_t rows, std::int64_t first_row, std::int64_t global_rows,
                const std::string& format) {
  auto part = Kokkos::subview(band, Kokkos::ALL, Kokkos::ALL, std::make_pair(0, frames),
                              std::make_pair(row0, static_cast<int>(row0 + rows)), Kokkos::ALL);
  const auto host = khalo::io::SnapshotWriter::to_host_c_order(part);
  std::vector<std::int64_t> global{static_cast<std::int64_t>(band.extent(0)), static_cast<std::int64_t>(band.extent(1)),
                                   frames, global_rows, static_cast<std::int64_t>(band.extent(4))};
  khalo::io::Hyperslab slab{{0, 0, 0, first_row, 0}, {global[0], global[1], frames, rows, global[4]}};
  w.write_raw(name, global, slab, host.data(), khalo::io::DType::float32, format, std::nullopt);
}

}  // namespace

int main(int argc, char** argv) {
  khalo::Runtime runtime(argc, argv);
  const bool root = runtime.world_rank() == 0;
  CLI::App app{"Decode with one Wan 2.1 VAE up-block, distributed over MPI ranks by bands of rows"};
  std::string input, random_input, weights, prefix, layout = "channels_last_3d", output, dump, upsample = "upsample3d";
  std::uint64_t seed = 0;
  bool random_weights = false, info = false, quiet = false;
  int in_dim = 0, out_dim = 0, num_res_blocks = 1, chunks = 0;
  auto* in_opt = app.add_option("--input", input, "input snapshot FILE[:DATASET] (default dataset /data)");
  auto* rin_opt = app.add_option("--random-input", random_input, "generate the input: N,C,D,H,W");
  in_opt->excludes(rin_opt);
  app.add_option("--seed", seed, "seed of generated input and weights");
  auto* w_opt = app.add_option("--weights", weights,
                               "weights: an HDF5 weights file or a safetensors checkpoint (docs/weights.md)");
  app.add_option("--prefix", prefix, "key prefix of the stage in the weights file, e.g. decoder.up_blocks.1.");
  auto* rw_opt = app.add_flag("--random-weights", random_weights, "generate weights (with --in-dim, --out-dim, ...)");
  w_opt->excludes(rw_opt);
  app.add_option("--in-dim", in_dim, "random weights: input channels (default: the input's)");
  app.add_option("--out-dim", out_dim, "random weights: output channels of the residual blocks (default: in-dim)");
  app.add_option("--num-res-blocks", num_res_blocks, "random weights: the stage has this many + 1 residual blocks")
      ->check(CLI::Range(0, 64));
  app.add_option("--upsample", upsample, "random weights: none, upsample2d or upsample3d")
      ->check(CLI::IsMember({"none", "upsample2d", "upsample3d"}));
  app.add_option("--layout", layout, "memory format of the activations")
      ->check(CLI::IsMember({"contiguous", "channels_last_3d"}));
  app.add_option("--chunks", chunks, "decode the frames in this many causal chunks (default: the whole clip)")
      ->check(CLI::PositiveNumber);
  app.add_option("--output", output, "output snapshot FILE[:DATASET]");
  app.add_option("--dump-layers", dump, "write every layer's output to this file, a dataset per layer");
  app.add_flag("--info,--version", info, "print the versions of khalo, Kokkos, MPI and HDF5, and exit");
  app.add_flag("--quiet", quiet, "no per-layer progress");
  try {
    app.parse(argc, argv);
    if (!info && input.empty() && random_input.empty()) throw CLI::ValidationError("give --input or --random-input");
    if (!info && weights.empty() && !random_weights) throw CLI::ValidationError("give --weights or --random-weights");
    if (!info && output.empty()) throw CLI::ValidationError("give --output");
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
    // The stage's weights.
    khalo::nn::StageWeights sw;
    if (!weights.empty()) {
      const auto file = khalo::io::open_tensor_source(MPI_COMM_WORLD, weights, prefix);
      sw = khalo::nn::StageWeights::load(*file);
    } else {
      khalo::nn::StageConfig c;
      c.in_dim = in_dim > 0 ? in_dim : static_cast<int>(shape[1]);
      c.out_dim = out_dim > 0 ? out_dim : c.in_dim;
      c.num_res_blocks = num_res_blocks;
      c.upsample = khalo::nn::upsample_from_string(upsample);
      sw = khalo::nn::StageWeights::random(c, seed);
    }
    khalo::nn::DecoderStage stage(MPI_COMM_WORLD, sw, format, shape);
    const auto& dec = stage.input_decomposition();
    auto band = khalo::nn::make_activation("input", dec.local_extents(), format);
    if (!input.empty()) {
      khalo::io::SnapshotReader reader(MPI_COMM_WORLD, in_spec.file);
      reader.read(in_spec.dataset, dec, band);
    } else {
      khalo::nn::fill_random_input(band, dec, seed);
    }
    const auto out_shape = stage.output_shape(chunks);
    const auto& cfg = stage.config();
    if (root && !quiet) {
      std::fprintf(stderr, "khalo-decode: %d ranks, %s, stage %d->%d channels, %d residual blocks, %s, %s\n",
                   runtime.world_size(), layout.c_str(), cfg.in_dim, cfg.out_dim, cfg.num_res_blocks + 1,
                   khalo::nn::to_string(cfg.upsample).c_str(),
                   chunks > 0 ? ("chunks " + std::to_string(chunks)).c_str() : "whole clip");
    }
    std::optional<khalo::io::SnapshotWriter> dumper;
    if (!dump.empty()) dumper.emplace(MPI_COMM_WORLD, dump);
    const auto in_rows = dec.owned(3);
    double flops = 0.0;
    const double t_decode = MPI_Wtime();
    const auto result = stage.run(band, chunks, [&](const khalo::nn::LayerEvent& e) {
      flops += e.flops;
      if (root && !quiet) {
        std::fprintf(stderr, "  %-28s chunk %d  %9.3f ms  %8.2f GFLOP/s  %s\n", e.name.c_str(), e.chunk,
                     e.seconds * 1e3, e.seconds > 0 ? e.flops / e.seconds * 1e-9 : 0.0, e.kernel.c_str());
      }
      if (dumper) {
        const bool upsampled = e.name == "upsamplers.0.resample.1";
        const std::int64_t s = upsampled ? 2 : 1;
        const std::string name = (chunks > 0 ? "/chunk" + std::to_string(e.chunk) + "/" : "/") + e.name;
        write_band(*dumper, name, *e.output, e.output_frames, e.output_row_offset, in_rows.size() * s,
                   in_rows.begin * s, shape[3] * s, layout);
      }
    });
    const double seconds = MPI_Wtime() - t_decode;
    if (dumper) dumper->commit();
    const auto out_spec = khalo::io::parse_path_spec(output);
    {
      khalo::io::SnapshotWriter writer(MPI_COMM_WORLD, out_spec.file);
      const auto rows = stage.output_rows();
      const auto host = khalo::io::SnapshotWriter::to_host_c_order(result);
      khalo::io::Hyperslab slab{{0, 0, 0, rows.begin, 0},
                                {out_shape[0], out_shape[1], out_shape[2], rows.size(), out_shape[4]}};
      writer.write_raw(out_spec.dataset, out_shape, slab, host.data(), khalo::io::DType::float32, layout, std::nullopt);
      writer.commit();
    }
    const auto stats = stage.halo_stats();
    long long halo_bytes = 0;
    const long long mine = stats.bytes_sent;
    MPI_Allreduce(&mine, &halo_bytes, 1, MPI_LONG_LONG, MPI_SUM, MPI_COMM_WORLD);
    if (root) {
      std::fprintf(
          stderr,
          "khalo-decode: %d ranks, %s, %s -> %s, %.3f s decode (%.3f s total), %.2f GFLOP/s, halo %.3f MB sent, "
          "output %s\n",
          runtime.world_size(), layout.c_str(), shape_text(shape).c_str(), shape_text(out_shape).c_str(), seconds,
          MPI_Wtime() - t_start, seconds > 0 ? flops / seconds * 1e-9 : 0.0, halo_bytes * 1e-6, output.c_str());
    }
    return 0;
  });
}
