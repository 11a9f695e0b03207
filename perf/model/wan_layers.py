"""The Wan 2.1 decoder as the halo model sees it (halo_model.py): its layers for one latent
frame, and their FLOPs."""


def wan21_layers(base=96, z_dim=16, num_res_blocks=2):
    """Every layer of the Wan 2.1 decoder for one latent frame, as src/nn/model.cpp runs them
    (DecoderConfig::wan21; docs/decoder.md §5), at latent resolution scale s (rows and columns
    x s), with `frames(first)` input frames. Each entry: name, kind, cin, cout, s, f0, f (the
    frames for latent frame 0 and for every later one), and whether it exchanges a halo
    (3x3 / 3x3x3 convolutions: one ghost row of its input per neighbour; 1x1x1 and time_conv
    (3,1,1) none). The attention's Allgatherv is kind 'attention'."""
    dims = [4 * base, 4 * base, 4 * base, 2 * base, base]
    modes = ["upsample3d", "upsample3d", "upsample2d", "none"]
    L = []

    def conv(name, cin, cout, s, f0, f, k=27):
        L.append(dict(name=name, kind="conv", cin=cin, cout=cout, s=s, f0=f0, f=f, taps=k, halo=k > 1))

    # post_quant_conv runs once over the whole latent (1x1x1, no halo): left out per frame.
    conv("conv_in", z_dim, dims[0], 1, 1, 1)
    mid = dims[0]
    for b in ("mid.resnets.0", None, "mid.resnets.1"):
        if b is None:
            L.append(dict(name="mid.attention", kind="attention", cin=mid, cout=mid, s=1, f0=1, f=1, halo=False))
            continue
        conv(b + ".conv1", mid, mid, 1, 1, 1)
        conv(b + ".conv2", mid, mid, 1, 1, 1)
    s, f0, f, c = 1, 1, 1, mid
    for i in range(4):
        cin = dims[0] if i == 0 else dims[i] // 2
        cout = dims[i + 1]
        for j in range(num_res_blocks + 1):
            ci = cin if j == 0 else cout
            p = f"up{i}.resnets.{j}"
            conv(p + ".conv1", ci, cout, s, f0, f)
            if ci != cout:
                conv(p + ".conv_shortcut", ci, cout, s, f0, f, k=1)
            conv(p + ".conv2", cout, cout, s, f0, f)
        if modes[i] == "upsample3d":
            # time_conv (3,1,1) C -> 2C, skipped on the first latent frame; no halo
            L.append(dict(name=f"up{i}.time_conv", kind="conv", cin=cout, cout=2 * cout, s=s, f0=0, f=f, taps=3,
                          halo=False))
            f = 2 * f
        if modes[i] != "none":
            # nearest 2x fused into a 3x3 conv C -> C/2: the halo is exchanged at the input's
            # resolution (s), the output is at 2s (4 outputs per input pixel)
            L.append(dict(name=f"up{i}.resample", kind="upconv", cin=cout, cout=cout // 2, s=s, f0=f0, f=f, taps=9,
                          halo=True))
            s *= 2
        c = cout // 2 if modes[i] != "none" else cout
    conv("conv_out", c, 3, s, f0, f)
    return L


def layer_flops(l, rows, cols, first):
    """FLOPs of a layer on a tile of rows x cols latent pixels (x s at its level)."""
    fr = l["f0"] if first else l["f"]
    pix = rows * l["s"] * cols * l["s"]
    if l["kind"] == "conv":
        return 2.0 * fr * pix * l["cin"] * l["cout"] * l["taps"]
    if l["kind"] == "upconv":
        return 2.0 * fr * 4 * pix * l["cin"] * l["cout"] * l["taps"]
    return None


def attention_flops(C, tile_pixels, all_pixels):
    # to_qkv (3 C^2) and proj (C^2) per own pixel; Q K^T and softmax(.) V: 4 G C per own pixel
    return tile_pixels * (2.0 * 4 * C * C + 4.0 * all_pixels * C)
