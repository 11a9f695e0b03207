#!/usr/bin/python3
"""PyTorch reference for khalo's decoder stage: one Wan 2.1 VAE decoder up-block.

A developer tool that writes the golden HDF5 files khalo's C++ decoder is tested
against; it is not a runtime dependency. It needs Debian's python3-torch,
python3-h5py and python3-numpy (run it with /usr/bin/python3).

Followed, line by line (written anew from torch ops, not copied):
  * diffusers src/diffusers/models/autoencoders/autoencoder_kl_wan.py
    (huggingface/diffusers commit 022e259c82d219b981738a267dea7e6eaf3b5bf7):
    WanCausalConv3d, WanRMS_norm, WanUpsample, WanResample, WanResidualBlock,
    WanUpBlock, and the feat_cache / feat_idx protocol of WanDecoder3d;
  * cross-checked against Wan2.1 wan/modules/vae.py
    (Wan-Video/Wan2.1 commit f1f7c882d6c8f5c710ac0511856492f4e9eec39e):
    CausalConv3d, RMS_norm, Resample, ResidualBlock; same arithmetic.
State-dict keys are diffusers' WanUpBlock keys (docs/weights.md §1).

Semantics (docs/decoder.md §1):
  * causal conv, padding p: F.pad(x, (pW, pW, pH, pH, 2*pT, 0)); a cache of
    previous frames is concatenated in front and replaces that much of the front
    padding; then conv3d without padding.
  * RMS norm: F.normalize(x, dim=1) * sqrt(C) * gamma   (eps 1e-12).
  * residual block: h = shortcut(x); x = conv2(silu(norm2(conv1(silu(norm1(x))))));
    return x + h.  The 1x1x1 shortcut has no temporal padding, hence no cache.
  * each 3x3x3 causal conv caches the last CACHE_T = 2 frames of its input; when
    a chunk has fewer than 2 frames, the last frame of the previous cache goes in
    front of it (if there is a previous cache).
  * upsample3d: the first chunk skips time_conv and marks its cache 'Rep'; the
    next chunk applies time_conv with zero front padding (not the previous
    chunk's frames) and caches its last 2 input frames (zeros in front when it
    has only 1); later chunks apply time_conv with that cache.
  * whole-clip decoding is one chunk without cache, i.e. first-chunk rules:
    upsample3d then never applies time_conv (T frames stay T frames). Chunked
    upsample3d output therefore differs from whole-clip output, by design of
    the reference VAE (which decodes one latent frame per chunk).

Usage:
  wan_stage.py --out DIR --seed S --in-dim C --out-dim C2 --num-res-blocks R \
      --upsample none|upsample2d|upsample3d --shape N,C,T,H,W [--chunks K] --name NAME
  wan_stage.py --all         regenerate tests/reference/golden/ and its manifest
  wan_stage.py --self-test   consistency checks of this reference
"""

import argparse
import json
import math
import os
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

CACHE_T = 2
REP = "Rep"  # the reference's marker: upsample3d's time_conv saw a first chunk only
UPSAMPLE_MODES = ("none", "upsample2d", "upsample3d")
HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, "golden")


# ----------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------

def causal_conv3d(x, weight, bias, padding, cache_x=None):
    """WanCausalConv3d.forward: padding = (pT, pH, pW) as given to nn.Conv3d."""
    p_t, p_h, p_w = padding
    pad = [p_w, p_w, p_h, p_h, 2 * p_t, 0]
    if cache_x is not None and pad[4] > 0:
        x = torch.cat([cache_x, x], dim=2)
        pad[4] -= cache_x.shape[2]
    x = F.pad(x, pad)
    return F.conv3d(x, weight, bias)


def rms_norm(x, gamma):
    """WanRMS_norm(dim, images=False): gamma has shape (C, 1, 1, 1)."""
    return F.normalize(x, dim=1) * (x.shape[1] ** 0.5) * gamma


def next_cache(x, old_cache):
    """The frames a causal conv keeps for the next chunk (its input is x)."""
    cache_x = x[:, :, -CACHE_T:, :, :].clone()
    if cache_x.shape[2] < 2 and old_cache is not None:
        # "cache last frame of last two chunk"
        cache_x = torch.cat([old_cache[:, :, -1, :, :].unsqueeze(2), cache_x], dim=2)
    return cache_x


class FeatCache:
    """The reference's feat_cache list and feat_idx counter, as one object.

    cache=None means decoding without cache (whole clip): every causal conv
    sees zero front padding and upsample3d skips time_conv.
    """

    def __init__(self, num_slots):
        self.slots = [None] * num_slots
        self.idx = 0

    def start_chunk(self):
        self.idx = 0


def cached_conv3d(x, params, name, cache):
    """A 3x3x3 causal conv (padding 1) with the reference's cache protocol."""
    w, b = params[name + ".weight"], params[name + ".bias"]
    if cache is None:
        return causal_conv3d(x, w, b, (1, 1, 1))
    old = cache.slots[cache.idx]
    new = next_cache(x, old)
    out = causal_conv3d(x, w, b, (1, 1, 1), old)
    cache.slots[cache.idx] = new
    cache.idx += 1
    return out


def residual_block(x, params, prefix, cache):
    """WanResidualBlock.forward (dropout 0)."""
    if prefix + "conv_shortcut.weight" in params:
        h = causal_conv3d(x, params[prefix + "conv_shortcut.weight"],
                          params[prefix + "conv_shortcut.bias"], (0, 0, 0))
    else:
        h = x
    x = F.silu(rms_norm(x, params[prefix + "norm1.gamma"]))
    x = cached_conv3d(x, params, prefix + "conv1", cache)
    x = F.silu(rms_norm(x, params[prefix + "norm2.gamma"]))
    x = cached_conv3d(x, params, prefix + "conv2", cache)
    return x + h


def resample_up(x, params, mode, cache):
    """WanResample.forward for upsample2d / upsample3d."""
    b, c, t, h, w = x.shape
    if mode == "upsample3d" and cache is not None:
        tw, tb = params["upsamplers.0.time_conv.weight"], params["upsamplers.0.time_conv.bias"]
        old = cache.slots[cache.idx]
        if old is None:
            # first chunk: no time_conv, one frame stays one frame
            cache.slots[cache.idx] = REP
            cache.idx += 1
        else:
            cache_x = x[:, :, -CACHE_T:, :, :].clone()
            if cache_x.shape[2] < 2 and old is not REP:
                cache_x = torch.cat([old[:, :, -1, :, :].unsqueeze(2), cache_x], dim=2)
            if cache_x.shape[2] < 2 and old is REP:
                cache_x = torch.cat([torch.zeros_like(cache_x), cache_x], dim=2)
            if old is REP:
                x = causal_conv3d(x, tw, tb, (1, 0, 0))  # zero front padding
            else:
                x = causal_conv3d(x, tw, tb, (1, 0, 0), old)
            cache.slots[cache.idx] = cache_x
            cache.idx += 1
            # (b, 2c, t, h, w) -> (b, 2, c, t, h, w) -> frames interleaved: 2t
            x = x.reshape(b, 2, c, t, h, w)
            x = torch.stack((x[:, 0], x[:, 1]), 3)
            x = x.reshape(b, c, t * 2, h, w)
    t = x.shape[2]
    x = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    x = F.interpolate(x, scale_factor=(2.0, 2.0), mode="nearest-exact")
    x = F.conv2d(x, params["upsamplers.0.resample.1.weight"],
                 params["upsamplers.0.resample.1.bias"], padding=1)
    x = x.view(b, t, x.shape[1], x.shape[2], x.shape[3]).permute(0, 2, 1, 3, 4)
    return x


# ----------------------------------------------------------------------------
# The stage (WanUpBlock)
# ----------------------------------------------------------------------------

def num_resnets(params):
    return 1 + max(int(k.split(".")[1]) for k in params if k.startswith("resnets."))


def stage_mode(params):
    if "upsamplers.0.time_conv.weight" in params:
        return "upsample3d"
    if "upsamplers.0.resample.1.weight" in params:
        return "upsample2d"
    return "none"


def stage_forward(x, params, cache):
    """WanUpBlock.forward for one chunk (cache=None: whole clip, no cache)."""
    if cache is not None:
        cache.start_chunk()
    for i in range(num_resnets(params)):
        x = residual_block(x, params, "resnets.%d." % i, cache)
    mode = stage_mode(params)
    if mode != "none":
        x = resample_up(x, params, mode, cache)
    return x


def chunk_sizes(t, chunks):
    """numpy.array_split sizes: the first t % chunks chunks one frame longer."""
    return [len(a) for a in np.array_split(np.arange(t), chunks)]


def decode(x, params, chunks=None):
    """Whole clip (chunks None) or chunked decoding with the cache carried."""
    with torch.no_grad():
        if chunks is None:
            return stage_forward(x, params, None).contiguous()
        if not 1 <= chunks <= x.shape[2]:
            raise ValueError("--chunks %d must be in [1, T=%d]" % (chunks, x.shape[2]))
        slots = 2 * num_resnets(params) + (1 if stage_mode(params) == "upsample3d" else 0)
        cache = FeatCache(slots)
        outs, t0 = [], 0
        for n in chunk_sizes(x.shape[2], chunks):
            outs.append(stage_forward(x[:, :, t0:t0 + n], params, cache))
            t0 += n
        assert cache.idx == slots
        return torch.cat(outs, dim=2).contiguous()


# ----------------------------------------------------------------------------
# Random weights and input
# ----------------------------------------------------------------------------

def stage_shapes(in_dim, out_dim, num_res_blocks, upsample):
    """State-dict keys and PyTorch shapes, in a fixed order (docs/weights.md §1)."""
    shapes = []
    cin = in_dim
    for i in range(num_res_blocks + 1):
        p = "resnets.%d." % i
        shapes += [(p + "norm1.gamma", (cin, 1, 1, 1)),
                   (p + "conv1.weight", (out_dim, cin, 3, 3, 3)),
                   (p + "conv1.bias", (out_dim,)),
                   (p + "norm2.gamma", (out_dim, 1, 1, 1)),
                   (p + "conv2.weight", (out_dim, out_dim, 3, 3, 3)),
                   (p + "conv2.bias", (out_dim,))]
        if cin != out_dim:
            shapes += [(p + "conv_shortcut.weight", (out_dim, cin, 1, 1, 1)),
                       (p + "conv_shortcut.bias", (out_dim,))]
        cin = out_dim
    if upsample != "none":
        shapes += [("upsamplers.0.resample.1.weight", (out_dim // 2, out_dim, 3, 3)),
                   ("upsamplers.0.resample.1.bias", (out_dim // 2,))]
    if upsample == "upsample3d":
        shapes += [("upsamplers.0.time_conv.weight", (2 * out_dim, out_dim, 3, 1, 1)),
                   ("upsamplers.0.time_conv.bias", (2 * out_dim,))]
    return shapes


def random_params(seed, in_dim, out_dim, num_res_blocks, upsample):
    """Weights ~ N(0, 1/fan_in), biases ~ 0.1 N(0, 1), gammas ~ U[0.5, 1.5)."""
    g = torch.Generator().manual_seed(seed)
    params = {}
    for key, shape in stage_shapes(in_dim, out_dim, num_res_blocks, upsample):
        if key.endswith(".gamma"):
            v = 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
        elif key.endswith(".bias"):
            v = 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
        else:
            fan_in = math.prod(shape[1:])
            v = torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(fan_in)
        params[key] = v
    return params


def random_input(seed, shape):
    g = torch.Generator().manual_seed(seed + 1000003)
    return torch.randn(shape, generator=g, dtype=torch.float32)


# ----------------------------------------------------------------------------
# HDF5 (docs/snapshots.md, docs/weights.md)
# ----------------------------------------------------------------------------

def _ascii_attr(obj, name, text):
    # fixed-length ASCII string attribute (easy to read from C)
    obj.attrs.create(name, np.bytes_(text), dtype=h5py.string_dtype("ascii", len(text)))


def write_snapshot(path, tensor):
    arr = np.ascontiguousarray(tensor.numpy(), dtype=np.float32)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        d = f.create_dataset("data", data=arr, track_times=False)
        d.attrs.create("khalo_format_version", 1, dtype=np.int32)
        _ascii_attr(d, "logical_dims", "NCDHW")
        _ascii_attr(d, "memory_format", "contiguous")
        d.attrs.create("ranks", 1, dtype=np.int32)
    os.replace(tmp, path)


def write_weights(path, params):
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        for key, v in params.items():
            f.create_dataset(key, data=np.ascontiguousarray(v.numpy(), dtype=np.float32),
                             track_times=False)
    os.replace(tmp, path)


def read_weights(path):
    params = {}
    with h5py.File(path, "r") as f:
        f.visititems(lambda k, o: params.__setitem__(k, torch.from_numpy(o[()]))
                     if isinstance(o, h5py.Dataset) else None)
    return params


# ----------------------------------------------------------------------------
# Configurations
# ----------------------------------------------------------------------------

def parse_shape(text):
    dims = tuple(int(v) for v in text.split(","))
    if len(dims) != 5 or min(dims) < 1:
        raise argparse.ArgumentTypeError("shape must be N,C,T,H,W with positive extents")
    return dims


def generate(out_dir, name, seed, in_dim, out_dim, num_res_blocks, upsample, shape, chunks):
    if shape[1] != in_dim:
        raise ValueError("%s: shape C=%d differs from --in-dim %d" % (name, shape[1], in_dim))
    if upsample != "none" and out_dim % 2:
        raise ValueError("%s: upsampling needs an even --out-dim" % name)
    params = random_params(seed, in_dim, out_dim, num_res_blocks, upsample)
    x = random_input(seed, shape)
    y = decode(x, params, chunks)
    os.makedirs(out_dir, exist_ok=True)
    write_weights(os.path.join(out_dir, name + ".weights.h5"), params)
    write_snapshot(os.path.join(out_dir, name + ".input.h5"), x)
    write_snapshot(os.path.join(out_dir, name + ".expected.h5"), y)
    return {"name": name, "seed": seed, "in_dim": in_dim, "out_dim": out_dim,
            "num_res_blocks": num_res_blocks, "upsample": upsample,
            "shape": list(shape), "chunks": chunks,
            "chunk_sizes": chunk_sizes(shape[2], chunks) if chunks else [shape[2]],
            "output_shape": list(y.shape)}


# The committed set. chunks None = whole clip (no --chunks; same as one chunk).
GOLDEN = [
    # name            seed  in out R  upsample      N,C,T,H,W          chunks
    ("res_same",       11,  4, 4, 1, "none",       (2, 4, 3, 5, 4),   None),
    ("res_shortcut",   12,  8, 4, 1, "none",       (1, 8, 3, 6, 5),   None),
    ("res_chunks3",    13,  4, 6, 2, "none",       (1, 4, 5, 9, 6),   3),
    ("up2d",           14,  8, 8, 1, "upsample2d", (1, 8, 3, 5, 4),   None),
    ("up2d_chunks2",   15,  6, 4, 1, "upsample2d", (1, 6, 3, 7, 5),   2),
    ("up3d_whole",     16,  8, 8, 1, "upsample3d", (1, 8, 4, 7, 4),   None),
    ("up3d_chunks3",   16,  8, 8, 1, "upsample3d", (1, 8, 4, 7, 4),   3),
    ("up3d_chunks5",   17,  4, 4, 1, "upsample3d", (1, 4, 5, 6, 4),   5),
]


def generate_all():
    manifest = []
    for name, seed, cin, cout, r, up, shape, chunks in GOLDEN:
        manifest.append(generate(GOLDEN_DIR, name, seed, cin, cout, r, up, shape, chunks))
    head = {"generator": "/usr/bin/python3 tests/reference/wan_stage.py --all",
            "torch": torch.__version__,
            "note": "chunks null = whole clip (one chunk, no cache); "
                    "files: NAME.weights.h5, NAME.input.h5, NAME.expected.h5"}
    with open(os.path.join(GOLDEN_DIR, "manifest.json"), "w") as f:
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "configs": [\n')
        f.write(",\n".join("  " + json.dumps(m) for m in manifest))
        f.write("\n ]\n}\n")
    for m in manifest:
        print("%-14s %-10s in %-18s out %s chunks %s" % (
            m["name"], m["upsample"], m["shape"], m["output_shape"], m["chunk_sizes"]))


# ----------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------

def upsample3d_closed_form(x, params, first):
    """What chunked upsample3d must give, written without the cache protocol.

    The resnets see the whole clip; the first chunk (first frames) skips
    time_conv; the remaining frames go through time_conv as one causal sequence
    with zero front padding (the 'Rep' rule), then interleave and upsample.
    """
    with torch.no_grad():
        for i in range(num_resnets(params)):
            x = residual_block(x, params, "resnets.%d." % i, None)
        head = resample_up(x[:, :, :first], params, "upsample2d", None)
        rest = x[:, :, first:]
        if rest.shape[2] == 0:
            return head
        b, c, t, h, w = rest.shape
        y = causal_conv3d(rest, params["upsamplers.0.time_conv.weight"],
                          params["upsamplers.0.time_conv.bias"], (1, 0, 0))
        y = y.reshape(b, 2, c, t, h, w)
        y = torch.stack((y[:, 0], y[:, 1]), 3).reshape(b, c, 2 * t, h, w)
        tail = resample_up(y, params, "upsample2d", None)
        return torch.cat([head, tail], dim=2)


def self_test():
    failures = 0

    def check(label, a, b, tol=1e-5):
        nonlocal failures
        err = (a - b).abs().max().item() if a.shape == b.shape else float("inf")
        ok = err <= tol * max(1.0, b.abs().max().item())
        failures += not ok
        print("%-4s %-58s max|diff| %.3g" % ("ok" if ok else "FAIL", label, err))

    # 1. chunked == whole clip without upsample3d, for every chunk count
    for up in ("none", "upsample2d"):
        for cin, cout, r in ((4, 4, 1), (6, 4, 2)):
            params = random_params(7, cin, cout, r, up)
            x = random_input(7, (1, cin, 5, 7, 5))
            whole = decode(x, params)
            for k in range(1, 6):
                check("%s %d->%d R=%d chunks=%d (%s) == whole" % (
                    up, cin, cout, r, k, chunk_sizes(5, k)), decode(x, params, k), whole)

    # 2. chunked upsample3d == its closed form; whole clip == time_conv skipped
    params = random_params(8, 4, 6, 1, "upsample3d")
    x = random_input(8, (1, 4, 5, 7, 5))
    for k in range(1, 6):
        sizes = chunk_sizes(5, k)
        y = decode(x, params, k)
        check("upsample3d chunks=%d (%s) == closed form" % (k, sizes),
              y, upsample3d_closed_form(x, params, sizes[0]))
    p2d = {k: v for k, v in params.items() if "time_conv" not in k}
    check("upsample3d whole clip == upsample2d (time_conv skipped)",
          decode(x, params), decode(x, p2d))
    check("upsample3d chunks=1 == whole clip", decode(x, params, 1), decode(x, params))

    # 3. the stage against torch.nn modules (symmetric H/W padding, explicit causal T)
    params = random_params(9, 4, 6, 1, "upsample2d")
    x = random_input(9, (1, 4, 3, 5, 4))
    with torch.no_grad():
        conv = torch.nn.Conv3d(4, 6, 3, padding=(0, 1, 1))
        conv.weight.copy_(params["resnets.0.conv1.weight"])
        conv.bias.copy_(params["resnets.0.conv1.bias"])
        ref = conv(F.pad(x, (0, 0, 0, 0, 2, 0)))
    check("causal_conv3d == nn.Conv3d(pad H,W) on 2 zero frames",
          causal_conv3d(x, params["resnets.0.conv1.weight"],
                        params["resnets.0.conv1.bias"], (1, 1, 1)), ref)
    g = params["resnets.0.norm1.gamma"]
    manual = x / x.pow(2).sum(1, keepdim=True).sqrt().clamp_min(1e-12) * 2.0 * g
    check("rms_norm == x / max(||x||, 1e-12) * sqrt(C) * gamma", rms_norm(x, g), manual)
    up = F.interpolate(x[:, :, 0], scale_factor=(2.0, 2.0), mode="nearest-exact")
    check("nearest-exact 2x == repeat_interleave 2x",
          up, x[:, :, 0].repeat_interleave(2, 2).repeat_interleave(2, 3), tol=0)

    # 4. the golden files, if present, reproduce
    man_path = os.path.join(GOLDEN_DIR, "manifest.json")
    if os.path.exists(man_path):
        with open(man_path) as f:
            manifest = json.load(f)["configs"]
        for m in manifest:
            base = os.path.join(GOLDEN_DIR, m["name"])
            params = read_weights(base + ".weights.h5")
            with h5py.File(base + ".input.h5", "r") as f:
                x = torch.from_numpy(f["data"][()])
            with h5py.File(base + ".expected.h5", "r") as f:
                y = torch.from_numpy(f["data"][()])
            check("golden %s reproduces from its files" % m["name"],
                  decode(x, params, m["chunks"]), y, tol=0)

    print("self-test: %s (%d failure%s)" % ("PASS" if not failures else "FAIL",
                                            failures, "" if failures == 1 else "s"))
    return 1 if failures else 0


# ----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="regenerate tests/reference/golden/")
    ap.add_argument("--self-test", action="store_true", help="run the consistency checks")
    ap.add_argument("--out")
    ap.add_argument("--name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--in-dim", type=int)
    ap.add_argument("--out-dim", type=int)
    ap.add_argument("--num-res-blocks", type=int, default=1)
    ap.add_argument("--upsample", choices=UPSAMPLE_MODES, default="none")
    ap.add_argument("--shape", type=parse_shape)
    ap.add_argument("--chunks", type=int, default=None)
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)

    if a.self_test:
        return self_test()
    if a.all:
        generate_all()
        return 0
    missing = [o for o in ("out", "name", "in_dim", "out_dim", "shape") if getattr(a, o) is None]
    if missing:
        ap.error("missing --" + ", --".join(m.replace("_", "-") for m in missing))
    if a.num_res_blocks < 0:
        ap.error("--num-res-blocks must be >= 0")
    try:
        m = generate(a.out, a.name, a.seed, a.in_dim, a.out_dim, a.num_res_blocks,
                     a.upsample, a.shape, a.chunks)
    except ValueError as e:
        ap.error(str(e))
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
