#!/usr/bin/python3
"""PyTorch reference for khalo's whole decoder: diffusers' AutoencoderKLWan.decode (Wan 2.1).

A developer tool that writes the golden files khalo's C++ decoder is tested
against; it is not a runtime dependency. It needs Debian's python3-torch,
python3-h5py and python3-numpy (run it with /usr/bin/python3). It computes in
float64 from plain torch ops, reusing the layer functions of wan_stage.py
(causal conv, RMS norm, residual block, upsample2d/3d with the 'Rep' rule).

Followed (written anew from torch ops, not copied):
  * diffusers src/diffusers/models/autoencoders/autoencoder_kl_wan.py
    (huggingface/diffusers commit 58eb52c0803ea9af3abec60841c2a093bdf1f951):
    AutoencoderKLWan._decode / decode, WanDecoder3d, WanMidBlock,
    WanAttentionBlock, WanUpBlock, and the config defaults (latents_mean,
    latents_std); wan_stage.py's layers were read at 022e259c, and the
    decoder code between the two commits differs only in typing and in
    WanRMS_norm normalizing float16/bfloat16 inputs in float32 (no effect here);
  * src/diffusers/pipelines/wan/pipeline_wan.py (same commit): how a pipeline
    un-normalizes latents before vae.decode.

Semantics:
  * post_quant_conv: causal 1x1x1 conv (no temporal padding, no cache) applied
    once to the whole latent (N, Z, T, H, W).
  * then one decoder call per latent frame (frame 0 first), sharing one feature
    cache (CACHE_T = 2). In each call, in this order (the cache slots are taken
    in the same order):
      conv_in (causal 3x3x3, Z -> dims[0])                       slot
      mid_block.resnets.0 (conv1, conv2)                         2 slots
      mid_block.attentions.0: per frame, RMS norm over channels (gamma (C,1,1),
        no SiLU), to_qkv 1x1 conv2d -> 3C (q = channels [0,C), k = [C,2C),
        v = [2C,3C)), one head: softmax(q k^T / sqrt(C)) v over the H*W
        positions of the frame, proj 1x1 conv2d, plus the input   no slot
      mid_block.resnets.1                                        2 slots
      up_blocks.i: resnets.0..R (2 slots each; resnets.0 has a 1x1x1
        conv_shortcut when channels change, no slot), then upsamplers.0:
        upsample2d: nearest-exact 2x in H, W then resample.1 (conv2d 3x3, pad 1);
        upsample3d: time_conv (1 slot) then as upsample2d
      norm_out (RMS norm, gamma (C,1,1,1)), SiLU, conv_out (3x3x3 -> 3)    slot
  * clamp to [-1, 1] once, on the concatenated output.
  * cache of a 3x3x3 causal conv: its input's last 2 frames, or (when the input
    has 1 frame and a previous cache exists) the previous cache's last frame plus
    that frame; the cached frames replace that much of the 2 zero front frames.
    The net effect: every 3x3x3 conv is one causal conv over the whole
    concatenated frame sequence at its level.
  * upsample3d cache slot: latent frame 0 finds it empty, skips time_conv (1
    frame stays 1 frame) and stores the marker 'Rep'. Latent frame 1 finds 'Rep':
    time_conv with ZERO front padding (not frame 0's features) and caches its
    last 2 input frames, zeros in front when it had only 1. Later frames use the
    cache normally. Net effect: frame 0 of the level never enters time_conv;
    frames 1.. form one causal sequence with zero front padding; each output of
    time_conv (2C channels) is interleaved into 2 frames. Latent frame 0 gives 1
    output frame, every later latent frame 4: T latent frames give 1 + 4(T-1).
  * dims = base * [4, 4, 4, 2, 1] for dim_mult [1, 2, 4, 4]; up-block i > 0
    takes dims[i] / 2 input channels (the previous upsampler halves them);
    temperal_upsample = [False, True, True][::-1] = [True, True, False]: up
    blocks 0, 1 are upsample3d, block 2 upsample2d, block 3 none. The released
    model has base 96, z_dim 16, num_res_blocks 2. This script infers all of it
    from the keys present (whole names; encoder.* and quant_conv.* ignored).
  * diffusers' WanUpsample interpolates in float32 (x.float()) then casts back;
    nearest-exact copies values, so that only rounds float64 activations to
    float32 there; this float64 reference does not round.
  * --latents-normalized: x = latents * std + mean per channel (z_dim 16 only),
    with diffusers' Wan 2.1 defaults (LATENTS_MEAN / LATENTS_STD below),
    computed as pipeline_wan.py does: mean and std are torch.tensor(list), i.e.
    the decimals rounded to float32, then cast to the latents' dtype, and
    x = latents / (1 / std) + mean (here in float64).

Usage:
  wan_decoder.py --out DIR --name NAME --seed S --base-dim B --z-dim Z \
      --num-res-blocks R --dtypes f32|f16|bf16|mixed --shape N,Z,T,H,W [--latents-normalized]
  wan_decoder.py --decode --weights F.safetensors --input IN.h5 --output OUT.h5 [--latents-normalized]
  wan_decoder.py --all         regenerate tests/reference/golden_decoder/ and its manifest
  wan_decoder.py --self-test   consistency checks of this reference
"""

import argparse
import json
import math
import os
import struct
import sys

import h5py
import numpy as np
import torch
import torch.nn.functional as F

from wan_stage import (CACHE_T, FeatCache, causal_conv3d, cached_conv3d, random_input,
                       resample_up, residual_block, rms_norm, write_snapshot)

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN_DIR = os.path.join(HERE, "golden_decoder")
DTYPE_MODES = ("f32", "f16", "bf16", "mixed")

# AutoencoderKLWan config defaults (Wan 2.1), diffusers 58eb52c0.
LATENTS_MEAN = [-0.7571, -0.7089, -0.9113, 0.1075, -0.1745, 0.9653, -0.1517, 1.5508,
                0.4134, -0.0715, 0.5517, -0.3632, -0.1922, -0.9497, 0.2503, -0.2921]
LATENTS_STD = [2.8184, 1.4541, 2.3275, 2.6558, 1.2196, 1.7708, 2.6052, 2.0743,
               3.2687, 2.1526, 2.8652, 1.5579, 1.6382, 1.1253, 2.8251, 1.9160]


# ----------------------------------------------------------------------------
# Architecture, from the keys
# ----------------------------------------------------------------------------

def decoder_keys(params):
    """Only the keys the decoder uses, matched as whole names."""
    return {k: v for k, v in params.items()
            if k in ("post_quant_conv.weight", "post_quant_conv.bias") or k.startswith("decoder.")}


class Arch:
    """z_dim, channels, blocks and upsample modes, read from shapes."""

    def __init__(self, params):
        def shape(k):
            if k not in params:
                raise ValueError("missing key %s" % k)
            return tuple(params[k].shape)

        self.z_dim = shape("post_quant_conv.weight")[0]
        if shape("post_quant_conv.weight") != (self.z_dim, self.z_dim, 1, 1, 1):
            raise ValueError("post_quant_conv.weight: bad shape %s" % (shape("post_quant_conv.weight"),))
        cin = shape("decoder.conv_in.weight")
        if cin[1:] != (self.z_dim, 3, 3, 3):
            raise ValueError("decoder.conv_in.weight: bad shape %s" % (cin,))
        self.mid_dim = cin[0]
        self.blocks = []  # (num_resnets, in_dim, out_dim, mode)
        i = 0
        while "decoder.up_blocks.%d.resnets.0.conv1.weight" % i in params:
            p = "decoder.up_blocks.%d." % i
            n = 0
            while p + "resnets.%d.conv1.weight" % n in params:
                n += 1
            w0 = shape(p + "resnets.0.conv1.weight")
            out_dim = shape(p + "resnets.%d.conv2.weight" % (n - 1))[0]
            if p + "upsamplers.0.time_conv.weight" in params:
                mode = "upsample3d"
            elif p + "upsamplers.0.resample.1.weight" in params:
                mode = "upsample2d"
            else:
                mode = "none"
            self.blocks.append((n, w0[1], out_dim, mode))
            i += 1
        if not self.blocks:
            raise ValueError("no decoder.up_blocks")
        self.num_res_blocks = self.blocks[0][0] - 1
        self.base_dim = self.blocks[-1][2]
        self.out_channels = shape("decoder.conv_out.weight")[0]
        self.modes = [b[3] for b in self.blocks]
        self.t_up = sum(m == "upsample3d" for m in self.modes)
        self.s_up = sum(m != "none" for m in self.modes)

    def output_shape(self, shape):
        n, _, t, h, w = shape
        return (n, self.out_channels, 1 + (2 ** self.t_up) * (t - 1),
                h * 2 ** self.s_up, w * 2 ** self.s_up)


def sub_params(params, prefix):
    return {k[len(prefix):]: v for k, v in params.items() if k.startswith(prefix)}


# ----------------------------------------------------------------------------
# The decoder
# ----------------------------------------------------------------------------

def attention(x, params, prefix):
    """WanAttentionBlock.forward: one head over the H*W positions of each frame."""
    b, c, t, h, w = x.shape
    y = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w)
    y = rms_norm(y, params[prefix + "norm.gamma"])  # gamma (C, 1, 1), no SiLU
    qkv = F.conv2d(y, params[prefix + "to_qkv.weight"], params[prefix + "to_qkv.bias"])
    qkv = qkv.reshape(b * t, 3 * c, h * w).transpose(1, 2)  # (bt, hw, 3c)
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    a = torch.softmax(torch.matmul(q, k.transpose(1, 2)) / math.sqrt(c), dim=-1)
    y = torch.matmul(a, v).transpose(1, 2).reshape(b * t, c, h, w)
    y = F.conv2d(y, params[prefix + "proj.weight"], params[prefix + "proj.bias"])
    y = y.view(b, t, c, h, w).permute(0, 2, 1, 3, 4)
    return y + x


def decoder_call(x, params, arch, cache, up3d=None):
    """WanDecoder3d.forward on one chunk. cache None: no feature cache.

    up3d, for the self-test only, replaces the upsample3d resampler.
    """
    if cache is not None:
        cache.start_chunk()
    x = cached_conv3d(x, params, "decoder.conv_in", cache)
    x = residual_block(x, params, "decoder.mid_block.resnets.0.", cache)
    x = attention(x, params, "decoder.mid_block.attentions.0.")
    x = residual_block(x, params, "decoder.mid_block.resnets.1.", cache)
    for i, (n, _, _, mode) in enumerate(arch.blocks):
        p = "decoder.up_blocks.%d." % i
        for j in range(n):
            x = residual_block(x, params, p + "resnets.%d." % j, cache)
        if mode != "none":
            sub = sub_params(params, p)
            if mode == "upsample3d" and up3d is not None:
                x = up3d(x, sub)
            else:
                x = resample_up(x, sub, mode, cache)
    x = F.silu(rms_norm(x, params["decoder.norm_out.gamma"]))
    return cached_conv3d(x, params, "decoder.conv_out", cache)


def num_slots(arch):
    return 1 + 4 + sum(2 * n + (mode == "upsample3d") for n, _, _, mode in arch.blocks) + 1


def unnormalize(z):
    if z.shape[1] != 16:
        raise ValueError("--latents-normalized needs z_dim 16 (latents have %d channels)" % z.shape[1])
    # as the pipeline: torch.tensor(list) is float32, then .to(latents dtype)
    mean = torch.tensor(LATENTS_MEAN, dtype=torch.float32).to(z.dtype).view(1, 16, 1, 1, 1)
    std = torch.tensor(LATENTS_STD, dtype=torch.float32).to(z.dtype).view(1, 16, 1, 1, 1)
    return z / (1.0 / std) + mean


def decode(z, params, latents_normalized=False, clamp=True, dtype=torch.float64):
    """AutoencoderKLWan.decode in float64 (or dtype: perf/torch_decoder.py runs float32):
    frame by frame with the feature cache. .to(dtype) keeps the tensors' memory format."""
    params = {k: v.to(dtype) for k, v in decoder_keys(params).items()}
    arch = Arch(params)
    z = z.to(dtype)
    if z.shape[1] != arch.z_dim:
        raise ValueError("latent has %d channels, the model z_dim %d" % (z.shape[1], arch.z_dim))
    with torch.no_grad():
        if latents_normalized:
            z = unnormalize(z)
        x = causal_conv3d(z, params["post_quant_conv.weight"], params["post_quant_conv.bias"], (0, 0, 0))
        cache = FeatCache(num_slots(arch))
        outs = []
        for i in range(x.shape[2]):
            outs.append(decoder_call(x[:, :, i:i + 1], params, arch, cache))
            assert cache.idx == len(cache.slots)
        out = torch.cat(outs, dim=2)
        if clamp:
            out = out.clamp(-1.0, 1.0)
    assert tuple(out.shape) == arch.output_shape(z.shape)
    return out.contiguous()


# ----------------------------------------------------------------------------
# safetensors (docs/weights.md §2), written and read here without the package
# ----------------------------------------------------------------------------

ST_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}


def _to_bytes(t, dtype):
    t = t.detach().to(torch.float32).contiguous()
    if dtype == "F32":
        return t.numpy().astype("<f4").tobytes()
    if dtype == "F64":
        return t.to(torch.float64).numpy().astype("<f8").tobytes()
    if dtype == "F16":
        return t.to(torch.float16).numpy().astype("<f2").tobytes()
    if dtype == "BF16":  # round to nearest even, as torch does
        return t.to(torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    raise ValueError(dtype)


def _from_bytes(buf, dtype, shape):
    if dtype == "F32":
        a = np.frombuffer(buf, dtype="<f4").astype(np.float64)
    elif dtype == "F64":
        a = np.frombuffer(buf, dtype="<f8").astype(np.float64)
    elif dtype == "F16":
        a = np.frombuffer(buf, dtype="<f2").astype(np.float64)
    elif dtype == "BF16":
        a = (np.frombuffer(buf, dtype="<u2").astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    else:
        raise ValueError("unsupported dtype %s" % dtype)
    return torch.from_numpy(a.reshape(shape).copy())


def stored_value(t, dtype):
    """What a tensor becomes once stored as dtype, in float64."""
    return _from_bytes(_to_bytes(t, dtype), dtype, tuple(t.shape))


def write_safetensors(path, tensors):
    """tensors: list of (key, float32 tensor, dtype). Data ordered by dtype size
    (largest first), then key, as the safetensors package lays it out; header
    padded with spaces to a multiple of 8 bytes; __metadata__ {"format": "pt"}."""
    items = sorted(tensors, key=lambda e: (-ST_DTYPES[e[2]], e[0]))
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for key, t, dtype in items:
        b = _to_bytes(t, dtype)
        header[key] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode("ascii")
    h += b" " * (-len(h) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def read_safetensors(path, keep=None):
    """Every tensor (or those for which keep(key) is true) as float64, as stored."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    if n > len(data) - 8:
        raise ValueError("%s: header length %d past the file" % (path, n))
    header = json.loads(data[8:8 + n].decode("utf-8"))
    body = data[8 + n:]
    out, dtypes = {}, {}
    for key, e in header.items():
        if key == "__metadata__" or (keep is not None and not keep(key)):
            continue
        a, b = e["data_offsets"]
        count = math.prod(e["shape"])
        if not 0 <= a <= b <= len(body) or b - a != count * ST_DTYPES[e["dtype"]]:
            raise ValueError("%s: bad data_offsets for %s" % (path, key))
        out[key] = _from_bytes(body[a:b], e["dtype"], tuple(e["shape"]))
        dtypes[key] = e["dtype"]
    return out, dtypes


def read_decoder_weights(path):
    params, _ = read_safetensors(
        path, keep=lambda k: k in ("post_quant_conv.weight", "post_quant_conv.bias") or k.startswith("decoder."))
    return params


# ----------------------------------------------------------------------------
# Random models
# ----------------------------------------------------------------------------

def resnet_shapes(prefix, cin, cout):
    s = [(prefix + "norm1.gamma", (cin, 1, 1, 1)),
         (prefix + "conv1.weight", (cout, cin, 3, 3, 3)), (prefix + "conv1.bias", (cout,)),
         (prefix + "norm2.gamma", (cout, 1, 1, 1)),
         (prefix + "conv2.weight", (cout, cout, 3, 3, 3)), (prefix + "conv2.bias", (cout,))]
    if cin != cout:
        s += [(prefix + "conv_shortcut.weight", (cout, cin, 1, 1, 1)), (prefix + "conv_shortcut.bias", (cout,))]
    return s


def model_shapes(base_dim, z_dim, num_res_blocks):
    """Wan 2.1 decoder keys and shapes (dim_mult [1, 2, 4, 4], temperal_upsample
    [True, True, False]), in module order."""
    dims = [base_dim * m for m in (4, 4, 4, 2, 1)]
    modes = ["upsample3d", "upsample3d", "upsample2d", "none"]
    s = [("post_quant_conv.weight", (z_dim, z_dim, 1, 1, 1)), ("post_quant_conv.bias", (z_dim,)),
         ("decoder.conv_in.weight", (dims[0], z_dim, 3, 3, 3)), ("decoder.conv_in.bias", (dims[0],))]
    c = dims[0]
    s += resnet_shapes("decoder.mid_block.resnets.0.", c, c)
    a = "decoder.mid_block.attentions.0."
    s += [(a + "norm.gamma", (c, 1, 1)), (a + "to_qkv.weight", (3 * c, c, 1, 1)), (a + "to_qkv.bias", (3 * c,)),
          (a + "proj.weight", (c, c, 1, 1)), (a + "proj.bias", (c,))]
    s += resnet_shapes("decoder.mid_block.resnets.1.", c, c)
    for i in range(4):
        cin, cout = dims[i] // (2 if i > 0 else 1), dims[i + 1]
        p = "decoder.up_blocks.%d." % i
        for j in range(num_res_blocks + 1):
            s += resnet_shapes(p + "resnets.%d." % j, cin, cout)
            cin = cout
        if modes[i] != "none":
            u = p + "upsamplers.0."
            s += [(u + "resample.1.weight", (cout // 2, cout, 3, 3)), (u + "resample.1.bias", (cout // 2,))]
        if modes[i] == "upsample3d":
            s += [(u + "time_conv.weight", (2 * cout, cout, 3, 1, 1)), (u + "time_conv.bias", (2 * cout,))]
    s += [("decoder.norm_out.gamma", (dims[4], 1, 1, 1)),
          ("decoder.conv_out.weight", (3, dims[4], 3, 3, 3)), ("decoder.conv_out.bias", (3,))]
    return s


def decoy_shapes(base_dim, z_dim):
    """Encoder-side keys a decoder loader must ignore; names end like decoder keys,
    shapes differ."""
    return [("encoder.conv_in.weight", (base_dim, 3, 3, 3, 3)), ("encoder.conv_in.bias", (base_dim,)),
            ("encoder.conv_out.weight", (2 * z_dim, 4 * base_dim, 3, 3, 3)), ("encoder.conv_out.bias", (2 * z_dim,)),
            ("encoder.norm_out.gamma", (4 * base_dim, 1, 1, 1)),
            ("encoder.mid_block.attentions.0.proj.weight", (4 * base_dim, 4 * base_dim, 1, 1)),
            ("quant_conv.weight", (2 * z_dim, 2 * z_dim, 1, 1, 1)), ("quant_conv.bias", (2 * z_dim,))]


def tensor_dtype(key, index, mode):
    if mode == "f32":
        return "F32"
    if mode == "f16":
        return "F16"
    if mode == "bf16":
        return "BF16"
    # mixed: norms and biases F32; weights alternate F16 / BF16, a few F32
    if key.endswith(".gamma") or key.endswith(".bias"):
        return "F32"
    return ("F16", "BF16", "F16", "F32", "BF16")[index % 5]


def random_model(seed, base_dim, z_dim, num_res_blocks, dtypes):
    """[(key, float32 tensor, stored dtype)]: weights ~ N(0, 1/fan_in), biases
    ~ 0.1 N(0, 1), gammas ~ U[0.5, 1.5); then the decoys (own generator)."""
    def draw(g, key, shape):
        if key.endswith(".gamma"):
            return 0.5 + torch.rand(shape, generator=g, dtype=torch.float32)
        if key.endswith(".bias"):
            return 0.1 * torch.randn(shape, generator=g, dtype=torch.float32)
        return torch.randn(shape, generator=g, dtype=torch.float32) / math.sqrt(math.prod(shape[1:]))

    g = torch.Generator().manual_seed(seed)
    out = []
    for i, (key, shape) in enumerate(model_shapes(base_dim, z_dim, num_res_blocks)):
        out.append((key, draw(g, key, shape), tensor_dtype(key, i, dtypes)))
    g = torch.Generator().manual_seed(seed + 77)
    for i, (key, shape) in enumerate(decoy_shapes(base_dim, z_dim)):
        out.append((key, 5.0 + draw(g, key, shape), tensor_dtype(key, i, dtypes)))
    return out


def stored_params(model):
    return {k: stored_value(t, d) for k, t, d in model}


# ----------------------------------------------------------------------------
# Files and configurations
# ----------------------------------------------------------------------------

def parse_shape(text):
    dims = tuple(int(v) for v in text.split(","))
    if len(dims) != 5 or min(dims) < 1:
        raise argparse.ArgumentTypeError("shape must be N,Z,T,H,W with positive extents")
    return dims


def read_snapshot(path):
    with h5py.File(path, "r") as f:
        return torch.from_numpy(f["data"][()])


def generate(out_dir, name, seed, base_dim, z_dim, num_res_blocks, dtypes, shape, latents_normalized):
    if shape[1] != z_dim:
        raise ValueError("%s: shape Z=%d differs from --z-dim %d" % (name, shape[1], z_dim))
    if latents_normalized and z_dim != 16:
        raise ValueError("%s: --latents-normalized needs --z-dim 16" % name)
    if base_dim < 1 or num_res_blocks < 0:
        raise ValueError("%s: --base-dim >= 1 and --num-res-blocks >= 0" % name)
    model = random_model(seed, base_dim, z_dim, num_res_blocks, dtypes)
    x = random_input(seed, shape)
    raw = decode(x, stored_params(model), latents_normalized, clamp=False)
    y = raw.clamp(-1.0, 1.0)
    os.makedirs(out_dir, exist_ok=True)
    write_safetensors(os.path.join(out_dir, name + ".safetensors"), model)
    write_snapshot(os.path.join(out_dir, name + ".input.h5"), x)
    write_snapshot(os.path.join(out_dir, name + ".expected.h5"), y.to(torch.float32))
    counts = {}
    for _, _, d in model:
        counts[d] = counts.get(d, 0) + 1
    arch = Arch(decoder_keys(stored_params(model)))
    return {"name": name, "seed": seed, "base_dim": base_dim, "z_dim": z_dim,
            "num_res_blocks": num_res_blocks, "dtypes": dtypes, "dtype_counts": counts,
            "decoy_keys": [k for k, _ in decoy_shapes(base_dim, z_dim)],
            "latents_normalized": latents_normalized, "up_modes": arch.modes,
            "shape": list(shape), "output_shape": list(y.shape),
            "clamp_fraction": round(float((raw.abs() > 1.0).double().mean()), 4),
            "max_abs_unclamped": round(float(raw.abs().max()), 3)}


# The committed set.
GOLDEN = [
    # name             seed  B  Z   R  dtypes   N,Z,T,H,W          normalized
    ("dec_f32",         21,  4, 4,  2, "f32",   (1, 4, 2, 5, 6),   False),
    ("dec_f16",         22,  8, 4,  2, "f16",   (1, 4, 3, 3, 4),   False),
    ("dec_bf16",        23,  4, 4,  2, "bf16",  (2, 4, 1, 3, 5),   False),
    ("dec_mixed",       24,  8, 4,  2, "mixed", (1, 4, 3, 5, 3),   False),
    ("dec_r1",          25,  4, 4,  1, "f16",   (1, 4, 2, 3, 3),   False),
    ("dec_z16_norm",    26,  4, 16, 2, "mixed", (1, 16, 2, 3, 5),  True),
]


def generate_all():
    manifest = [generate(GOLDEN_DIR, *g) for g in GOLDEN]
    head = {"generator": "/usr/bin/python3 tests/reference/wan_decoder.py --all",
            "torch": torch.__version__,
            "note": "files: NAME.safetensors (weights, decoder + post_quant_conv + decoy encoder keys), "
                    "NAME.input.h5 (latent), NAME.expected.h5 (decoded, clamped); computed in float64 "
                    "from the stored weights; compare float32 with rtol/atol 1e-4"}
    with open(os.path.join(GOLDEN_DIR, "manifest.json"), "w") as f:
        f.write(json.dumps(head, indent=1)[:-2] + ',\n "configs": [\n')
        f.write(",\n".join("  " + json.dumps(m) for m in manifest))
        f.write("\n ]\n}\n")
    for m in manifest:
        print("%-13s B=%-2d Z=%-2d R=%d %-5s in %-18s out %-22s clamped %.4f" % (
            m["name"], m["base_dim"], m["z_dim"], m["num_res_blocks"], m["dtypes"], m["shape"],
            m["output_shape"], m["clamp_fraction"]))


# ----------------------------------------------------------------------------
# Self-test
# ----------------------------------------------------------------------------

def up3d_closed_form(x, sub):
    """upsample3d over a whole level sequence, written without the cache: frame 0
    skips time_conv; frames 1.. go through time_conv as one causal sequence with
    zero front padding; interleave; then upsample2d."""
    head = resample_up(x[:, :, :1], sub, "upsample2d", None)
    rest = x[:, :, 1:]
    if rest.shape[2] == 0:
        return head
    b, c, t, h, w = rest.shape
    y = causal_conv3d(rest, sub["upsamplers.0.time_conv.weight"], sub["upsamplers.0.time_conv.bias"], (1, 0, 0))
    y = y.reshape(b, 2, c, t, h, w)
    y = torch.stack((y[:, 0], y[:, 1]), 3).reshape(b, c, 2 * t, h, w)
    return torch.cat([head, resample_up(y, sub, "upsample2d", None)], dim=2)


def closed_form(z, params):
    """The whole latent at once, no cache: every 3x3x3 conv causal over the whole
    sequence of its level, upsample3d as up3d_closed_form."""
    params = {k: v.to(torch.float64) for k, v in decoder_keys(params).items()}
    arch = Arch(params)
    with torch.no_grad():
        x = causal_conv3d(z.to(torch.float64), params["post_quant_conv.weight"],
                          params["post_quant_conv.bias"], (0, 0, 0))
        return decoder_call(x, params, arch, None, up3d=up3d_closed_form).clamp(-1.0, 1.0)


def self_test():
    import tempfile
    failures = 0

    def check(label, a, b, tol=1e-12):
        nonlocal failures
        err = (a - b).abs().max().item() if a.shape == b.shape else float("inf")
        ok = err <= tol * max(1.0, b.abs().max().item())
        failures += not ok
        print("%-4s %-66s max|diff| %.3g" % ("ok" if ok else "FAIL", label, err))

    def expect(label, cond):
        nonlocal failures
        failures += not cond
        print("%-4s %s" % ("ok" if cond else "FAIL", label))

    model = random_model(5, 4, 4, 1, "mixed")
    params = stored_params(model)
    arch = Arch(decoder_keys(params))

    # 1. architecture inferred from the keys
    expect("arch: z 4, base 4, R 1, modes 3d 3d 2d none, mid dim 16",
           (arch.z_dim, arch.base_dim, arch.num_res_blocks, arch.modes, arch.mid_dim)
           == (4, 4, 1, ["upsample3d", "upsample3d", "upsample2d", "none"], 16))
    expect("arch: block dims (16,16) (8,16) (8,8) (4,4)",
           [(b[1], b[2]) for b in arch.blocks] == [(16, 16), (8, 16), (8, 8), (4, 4)])

    # 2. one latent frame: the cached decode == the model applied once without cache
    z1 = random_input(5, (2, 4, 1, 3, 5)).to(torch.float64)
    with torch.no_grad():
        p64 = decoder_keys(params)
        x = causal_conv3d(z1, p64["post_quant_conv.weight"], p64["post_quant_conv.bias"], (0, 0, 0))
        once = decoder_call(x, p64, arch, None).clamp(-1, 1)
    y1 = decode(z1, params)
    check("T=1: frame-by-frame decode == model once, no cache", y1, once)
    expect("T=1: output shape (2, 3, 1, 24, 40)", tuple(y1.shape) == (2, 3, 1, 24, 40))

    # 3. several frames: the cache protocol == its closed form
    for t in (2, 3, 4):
        z = random_input(6 + t, (1, 4, t, 3, 4)).to(torch.float64)
        y = decode(z, params)
        expect("T=%d: output shape (1, 3, %d, 24, 32)" % (t, 1 + 4 * (t - 1)),
               tuple(y.shape) == (1, 3, 1 + 4 * (t - 1), 24, 32))
        check("T=%d: frame-by-frame decode == closed form (whole sequence)" % t, y, closed_form(z, params))
        check("T=%d: first output frame depends on latent frame 0 only" % t, y[:, :, :1], decode(z[:, :, :1], params))
    z = random_input(11, (1, 4, 3, 3, 4)).to(torch.float64)
    y = decode(z, params)
    z2 = z.clone()
    z2[:, :, 2] += 1.0
    check("T=3: changing latent frame 2 leaves output frames 0..4 alone", decode(z2, params)[:, :, :5], y[:, :, :5])

    # 4. attention == torch.nn.MultiheadAttention (one head, scale 1/sqrt(C))
    a = "decoder.mid_block.attentions.0."
    c = arch.mid_dim
    xa = random_input(12, (2, c, 2, 3, 5)).to(torch.float64)
    mha = torch.nn.MultiheadAttention(c, 1, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(params[a + "to_qkv.weight"].reshape(3 * c, c))
        mha.in_proj_bias.copy_(params[a + "to_qkv.bias"])
        mha.out_proj.weight.copy_(params[a + "proj.weight"].reshape(c, c))
        mha.out_proj.bias.copy_(params[a + "proj.bias"])
        seq = xa.permute(0, 2, 3, 4, 1).reshape(4, 15, c)  # (b t, h w, c)
        g = params[a + "norm.gamma"].reshape(c)
        n = seq / seq.norm(dim=-1, keepdim=True).clamp_min(1e-12) * math.sqrt(c) * g
        ref = mha(n, n, n, need_weights=False)[0] + seq
        ref = ref.reshape(2, 2, 3, 5, c).permute(0, 4, 1, 2, 3)
        check("attention == nn.MultiheadAttention(1 head) + identity", attention(xa, params, a), ref)

    # 5. decoys ignored, whole-name matching, dtype rounding applied
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.safetensors")
        write_safetensors(path, model)
        loaded = read_decoder_weights(path)
        everything, dts = read_safetensors(path)
        expect("loader keeps exactly the decoder keys (%d), no decoy" % len(loaded),
               sorted(loaded) == sorted(k for k, _ in model_shapes(4, 4, 1)))
        expect("decoys present in the file (encoder.conv_out.weight, quant_conv.weight)",
               "encoder.conv_out.weight" in everything and "quant_conv.weight" in everything)
        expect("mixed file holds F32, F16 and BF16 tensors", set(dts.values()) == {"F32", "F16", "BF16"})
        expect("read-back values == stored values (rounded to each dtype)",
               all(torch.equal(loaded[k], params[k]) for k in loaded))
        k16 = [k for k in loaded if dts[k] == "F16"][0]
        kbf = [k for k in loaded if dts[k] == "BF16"][0]
        raw = {k: t for k, t, _ in model}
        expect("F16 tensor %s: == float16 rounding, != float32 value" % k16,
               torch.equal(loaded[k16], raw[k16].to(torch.float16).to(torch.float64))
               and not torch.equal(loaded[k16], raw[k16].to(torch.float64)))
        expect("BF16 tensor %s: == bfloat16 rounding, != float32 value" % kbf,
               torch.equal(loaded[kbf], raw[kbf].to(torch.bfloat16).to(torch.float64))
               and not torch.equal(loaded[kbf], raw[kbf].to(torch.float64)))
        unrounded = {k: t.to(torch.float64) for k, t, _ in model}
        zr = random_input(13, (1, 4, 2, 3, 3))
        diff = (decode(zr, unrounded) - decode(zr, loaded)).abs().max().item()
        expect("the rounding changes the output (max |diff| %.2g > 1e-6)" % diff, diff > 1e-6)
        with open(path, "rb") as f:
            data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        hdr = json.loads(data[8:8 + n])
        ends = sorted(e["data_offsets"] for k, e in hdr.items() if k != "__metadata__")
        expect("header padded to 8 bytes; data ranges contiguous and cover the data",
               n % 8 == 0 and ends[0][0] == 0 and ends[-1][1] == len(data) - 8 - n
               and all(ends[i][1] == ends[i + 1][0] for i in range(len(ends) - 1)))
        check("decode(all keys, decoys included) == decode(decoder keys)",
              decode(zr, everything), decode(zr, loaded), tol=0)

    # 6. --latents-normalized
    zn = random_input(14, (1, 16, 2, 3, 3)).to(torch.float64)
    u = unnormalize(zn)
    expect("unnormalize: channel 7 = z * 2.0743 + 1.5508 (constants rounded to float32)",
           torch.allclose(u[:, 7], zn[:, 7] * float(np.float32(2.0743)) + float(np.float32(1.5508)),
                          rtol=0, atol=1e-14)
           and not torch.allclose(u[:, 7], zn[:, 7] * 2.0743 + 1.5508, rtol=0, atol=1e-9))
    try:
        unnormalize(random_input(14, (1, 4, 1, 2, 2)))
        expect("--latents-normalized refused for z_dim 4", False)
    except ValueError:
        expect("--latents-normalized refused for z_dim 4", True)

    # 7. the golden files, if present, reproduce
    man_path = os.path.join(GOLDEN_DIR, "manifest.json")
    if os.path.exists(man_path):
        with open(man_path) as f:
            manifest = json.load(f)["configs"]
        for m in manifest:
            base = os.path.join(GOLDEN_DIR, m["name"])
            p = read_decoder_weights(base + ".safetensors")
            y = decode(read_snapshot(base + ".input.h5"), p, m["latents_normalized"]).to(torch.float32)
            check("golden %s reproduces from its files" % m["name"], y, read_snapshot(base + ".expected.h5"), tol=0)
            check("golden %s == closed form within 1e-6" % m["name"],
                  closed_form(unnormalize(read_snapshot(base + ".input.h5").double())
                              if m["latents_normalized"] else read_snapshot(base + ".input.h5"), p),
                  y.double(), tol=1e-6)

    print("self-test: %s (%d failure%s)" % ("PASS" if not failures else "FAIL",
                                            failures, "" if failures == 1 else "s"))
    return 1 if failures else 0


# ----------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--all", action="store_true", help="regenerate tests/reference/golden_decoder/")
    ap.add_argument("--self-test", action="store_true", help="run the consistency checks")
    ap.add_argument("--decode", action="store_true",
                    help="decode --input with --weights (any safetensors AutoencoderKLWan) into --output")
    ap.add_argument("--weights")
    ap.add_argument("--input")
    ap.add_argument("--output")
    ap.add_argument("--out")
    ap.add_argument("--name")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--base-dim", type=int)
    ap.add_argument("--z-dim", type=int)
    ap.add_argument("--num-res-blocks", type=int, default=2)
    ap.add_argument("--dtypes", choices=DTYPE_MODES, default="f32")
    ap.add_argument("--shape", type=parse_shape)
    ap.add_argument("--latents-normalized", action="store_true",
                    help="latents are normalized: decode latents * std + mean (z_dim 16 only)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    a = ap.parse_args(argv)

    torch.set_num_threads(a.threads)
    torch.use_deterministic_algorithms(True)

    if a.self_test:
        return self_test()
    if a.all:
        generate_all()
        return 0
    if a.decode:
        missing = [o for o in ("weights", "input", "output") if getattr(a, o) is None]
        if missing:
            ap.error("--decode needs --" + ", --".join(missing))
        try:
            y = decode(read_snapshot(a.input), read_decoder_weights(a.weights), a.latents_normalized)
        except ValueError as e:
            ap.error(str(e))
        write_snapshot(a.output, y.to(torch.float32))
        print(json.dumps({"output": a.output, "output_shape": list(y.shape)}))
        return 0
    missing = [o for o in ("out", "name", "base_dim", "z_dim", "shape") if getattr(a, o) is None]
    if missing:
        ap.error("missing --" + ", --".join(m.replace("_", "-") for m in missing))
    try:
        m = generate(a.out, a.name, a.seed, a.base_dim, a.z_dim, a.num_res_blocks, a.dtypes, a.shape,
                     a.latents_normalized)
    except ValueError as e:
        ap.error(str(e))
    print(json.dumps(m))
    return 0


if __name__ == "__main__":
    sys.exit(main())
