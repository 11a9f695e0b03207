#!/usr/bin/python3
"""The whole Wan 2.1 VAE decoder in PyTorch, float32, timed beside khalo-decode.

The decoder is tests/reference/wan_decoder.py's (plain torch ops: decode, i.e.
post_quant_conv, then decoder_call latent frame by latent frame with FeatCache),
run in float32 instead of float64, with random weights of the real size (base
dim 96, z_dim 16, num_res_blocks 2 by default; wan_decoder.random_model) and
random_input's latent. Per thread count: seconds per decode (the warm-up runs
timed too, apart), seconds per output frame, GFLOP/s, the attention block's
seconds (wan_decoder.attention wrapped), each block's seconds, the memory format
each convolution's input had, and the process's peak RSS (ru_maxrss, which
includes the warm-up and earlier thread counts of the same process: run one
thread count per process for a per-count figure, as perf/decoder_model.sh does).

FLOPs, counted as khalo counts them (LayerEvent::flops): 2 x MACs of every
convolution (conv3d, conv2d: output elements x input channels per group x
kernel taps) and of the attention's two matmuls (output elements x inner
dimension); norms, SiLU, softmax, padding and copies are not counted. The
count is taken from the shapes of the calls actually made (flops_of below).

    perf/torch_decoder.py [--shape N,Z,T,H,W] [--threads K ...] [--warmup W] [--reps R]
                          [--layout channels_last_3d|contiguous] [--json FILE] [--quick]
"""
import argparse
import json
import math
import os
import resource
import sys
import time

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    print("torch_decoder.py: python3-torch is not installed (apt-get install python3-torch); skipped")
    sys.exit(77)  # ctest's "skipped"

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import wan_decoder as wd  # noqa: E402  (after the path)


def flops_of(op, out, a, b):
    """2 x MACs of one call: conv (a = input, b = weight) or matmul (a, b operands)."""
    if op == "matmul":
        return 2.0 * out.numel() * a.shape[-1]
    return 2.0 * out.numel() * math.prod(b.shape[1:])


class Counters:
    """Wraps the torch functions and the reference's blocks that one decode calls."""

    def __init__(self):
        self.flops = 0.0
        self.formats = {}  # memory format of every conv3d input: count
        self.blocks = {}   # block name: seconds
        self.attention_s = 0.0
        self._block = ""

    def reset(self):
        self.__init__()

    def install(self):
        conv3d, conv2d, matmul = F.conv3d, F.conv2d, torch.matmul

        def counted(op, fn):
            def wrapper(a, b, *args, **kw):
                out = fn(a, b, *args, **kw)
                self.flops += flops_of(op, out, a, b)
                if op == "conv3d":
                    fmt = ("channels_last_3d" if a.is_contiguous(memory_format=torch.channels_last_3d)
                           and not a.is_contiguous() else "contiguous" if a.is_contiguous() else "strided")
                    self.formats[fmt] = self.formats.get(fmt, 0) + 1
                return out
            return wrapper

        F.conv3d, F.conv2d, torch.matmul = counted("conv3d", conv3d), counted("conv2d", conv2d), counted(
            "matmul", matmul)

        def timed(fn, name_of):
            def wrapper(*args, **kw):
                name = name_of(*args)
                t0 = time.perf_counter()
                out = fn(*args, **kw)
                dt = time.perf_counter() - t0
                self.blocks[name] = self.blocks.get(name, 0.0) + dt
                if name == "decoder.mid_block.attentions.0":
                    self.attention_s += dt
                return out
            return wrapper

        def resnet_name(x, params, prefix, cache):
            self._block = prefix.rstrip(".")
            return self._block

        def upsampler_name(x, sub, mode, cache):  # the up-block of the last residual block
            return self._block.rsplit(".resnets.", 1)[0] + ".upsamplers.0"

        # decoder_call looks these up in wan_decoder's namespace at each call
        wd.attention = timed(wd.attention, lambda x, params, prefix: prefix.rstrip("."))
        wd.residual_block = timed(wd.residual_block, resnet_name)
        wd.resample_up = timed(wd.resample_up, upsampler_name)
        wd.cached_conv3d = timed(wd.cached_conv3d, lambda x, params, name, cache: name)


def parse_shape(text):
    dims = tuple(int(v) for v in text.split(","))
    if len(dims) != 5 or min(dims) < 1:
        raise argparse.ArgumentTypeError("shape must be N,Z,T,H,W")
    return dims


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--shape", type=parse_shape, default=(1, 16, 2, 30, 52), help="latent N,Z,T,H,W")
    p.add_argument("--base-dim", type=int, default=96)
    p.add_argument("--num-res-blocks", type=int, default=2)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--threads", type=int, nargs="+", default=[1])
    p.add_argument("--warmup", type=int, default=1, help="untimed-in-the-median decodes first (default 1)")
    p.add_argument("--reps", type=int, default=1, help="timed decodes; the median is reported (default 1)")
    p.add_argument("--layout", choices=("channels_last_3d", "contiguous"), default="channels_last_3d")
    p.add_argument("--quick", action="store_true", help="a tiny model and latent (base 8, (1,16,2,4,6))")
    p.add_argument("--json")
    a = p.parse_args()
    if a.quick:
        a.shape, a.base_dim = (1, 16, 2, 4, 6), 8
    torch.set_num_threads(a.threads[0])  # it defaults to 1 here; say so explicitly

    model = wd.random_model(a.seed, a.base_dim, a.shape[1], a.num_res_blocks, "f32")
    params = {k: t for k, t, _ in model}
    z = wd.random_input(a.seed, a.shape)
    if a.layout == "channels_last_3d":
        z = z.contiguous(memory_format=torch.channels_last_3d)
        params = {k: v.contiguous(memory_format=torch.channels_last_3d) if v.dim() == 5 else v
                  for k, v in params.items()}
    arch = wd.Arch(wd.decoder_keys(params))
    out_shape = arch.output_shape(a.shape)
    counters = Counters()
    counters.install()

    results = []
    for threads in a.threads:
        torch.set_num_threads(threads)
        runs = []
        for r in range(a.warmup + a.reps):
            counters.reset()
            t0 = time.perf_counter()
            y = wd.decode(z, params, dtype=torch.float32)
            dt = time.perf_counter() - t0
            runs.append({"seconds": dt, "attention_s": counters.attention_s, "flops": counters.flops,
                         "blocks": dict(counters.blocks), "conv3d_input_formats": dict(counters.formats),
                         "warmup": r < a.warmup})
            print(f"torch_decoder: {threads} thread(s), {'warm-up' if r < a.warmup else 'timed'} decode "
                  f"{dt:.3f} s, {counters.flops / dt * 1e-9:.2f} GFLOP/s, attention {counters.attention_s:.3f} s",
                  file=sys.stderr, flush=True)
        assert tuple(y.shape) == out_shape and torch.isfinite(y).all()
        timed = sorted((r for r in runs if not r["warmup"]), key=lambda r: r["seconds"])
        med = timed[len(timed) // 2]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0  # KiB on Linux
        res = {"bench": "torch_decoder", "torch": torch.__version__, "threads": threads, "layout": a.layout,
               "shape": list(a.shape), "output_shape": list(out_shape), "base_dim": a.base_dim,
               "num_res_blocks": a.num_res_blocks, "dtype": "float32",
               "seconds": med["seconds"], "seconds_per_frame": med["seconds"] / out_shape[2],
               "flops": med["flops"], "gflops": med["flops"] / med["seconds"] * 1e-9,
               "attention_s": med["attention_s"], "attention_share": med["attention_s"] / med["seconds"],
               "peak_rss_bytes": rss, "conv3d_input_formats": med["conv3d_input_formats"],
               "blocks": med["blocks"], "runs": [{k: r[k] for k in ("seconds", "attention_s", "warmup")}
                                                 for r in runs]}
        print(f"torch_decoder: torch {torch.__version__}, {threads} thread(s), {a.layout}, latent {list(a.shape)} "
              f"-> {list(out_shape)}, {res['seconds']:.3f} s per decode, {res['seconds_per_frame']:.3f} s per frame, "
              f"{res['gflops']:.2f} GFLOP/s ({res['flops'] * 1e-12:.3f} TFLOP), attention {res['attention_s']:.3f} s "
              f"({100 * res['attention_share']:.1f}%), peak RSS {rss / 1048576:.0f} MiB, conv3d inputs "
              f"{res['conv3d_input_formats']}")
        results.append(res)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
