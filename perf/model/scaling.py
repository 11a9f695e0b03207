"""The cluster side of the halo model (halo_model.py predict): the machines of the what-ifs
(this one's fit, published fabric figures, assumptions), process grids and node blocks, the
time of one phase and of the attention's Allgatherv, and the decoder's per-layer costs on P
ranks. Every time is seconds; every size bytes."""
import math

from exchange import F32, Copy, Link, phase_work
from wan_layers import attention_flops, layer_flops


# Machines for the what-ifs. 'published' figures are NVIDIA's (README.md, Sources); the rest
# are measured here (the 'smp' link and CPU copy are this machine's fit) or assumed.
def scenarios(fit_link, fit_copy, cpu_gflops, gpu_launch=5e-6, fit_datatype=None):
    ib = Link("InfiniBand NDR (published 400 Gb/s; ~1 us assumed)", 1.0e-6, 50e9)
    nvl = Link("NVLink 4 (published 900 GB/s bidirectional; 2 us assumed)", 2.0e-6, 450e9)
    # assumed: a GPU pack / unpack / fill kernel at half of H200's published 4.8 TB/s HBM, the
    # runs copied in parallel (no per-run cost), ~5 us per kernel launch ('launch', per face)
    gpu_copy = Copy(0.0, 2.4e12)
    return {
        "cpu-1core-per-rank": dict(intra=fit_link, inter=ib, copy=fit_copy, datatype=fit_datatype,
                                   flops=cpu_gflops * 1e9, per_node=8,
                                   nic_shared=True, launch=0.0,
                                   note=f"one core per rank at {cpu_gflops:g} GFLOP/s (measured here, RESULTS.md); "
                                        "8 ranks per node over shared memory (fitted here), nodes over one NDR "
                                        "port shared by the node's ranks"),
        "gpu-50TF": dict(intra=nvl, inter=ib, copy=gpu_copy, datatype=None, flops=50e12, per_node=8, nic_shared=False,
                         launch=gpu_launch,
                         note="8 GPUs per node on NVLink 4, one NDR port per GPU (DGX/HGX H100 layout), "
                              "GPU-aware MPI, 50 TFLOP/s fp32 implicit GEMM (assumed)"),
        "gpu-200TF": dict(intra=nvl, inter=ib, copy=gpu_copy, datatype=None, flops=200e12, per_node=8, nic_shared=False,
                          launch=gpu_launch, note="as gpu-50TF at 200 TFLOP/s (tensor-core class, assumed)"),
    }


def grid_options(P, H, W):
    """(pr, pc) grids of P ranks with at least one latent row and column per rank."""
    return [(pr, P // pr) for pr in range(1, P + 1) if P % pr == 0 and pr <= H and P // pr <= W]


def node_block(pr, pc, per_node):
    """A node holds an (nr x nc) block of the grid, nr * nc = per_node, as square as fits
    (fewest ranks on the node's edges). Where pr or pc is not a multiple of the block (60 ranks
    in rows of 8), the last node along it is part-filled; for powers of two every block fits."""
    best = None
    for nr in range(1, per_node + 1):
        if per_node % nr or nr > pr or per_node // nr > pc:
            continue
        nc = per_node // nr
        key = abs(nr - nc)
        if best is None or key < best[0]:
            best = (key, nr, nc)
    return (best[1], best[2]) if best else (1, min(per_node, pc))


def phase_time(m, layout, C, D, rows, cols, along, P_along, block_along, launch):
    """The slowest rank's time in one phase: an inner rank (2 neighbours), one of them off
    the node when the node's block does not hold the whole dimension. The two neighbours'
    messages fly at once, each over its own link; the rank's copies (pack, unpack, fill) add.
    A face the plan sends as a derived datatype (host memory only: m["datatype"] set) pays
    MPI's copies of its runs (m["datatype"]) on top of the link's latency and, off the node,
    its transfer."""
    if P_along == 1:  # both sides open: the fill only
        w = phase_work(layout, C, D, rows, cols, along, 0)
        return m["copy"].time(w["copy_runs"], w["copy_bytes"]) + (launch if w["copy_bytes"] else 0)
    k = 2 if P_along > 2 else 1
    w = phase_work(layout, C, D, rows, cols, along, k, datatypes=m.get("datatype") is not None)
    msgs, b = w["messages"] / k, w["bytes"] / k  # per neighbour
    t_dt = m["datatype"].time(w["datatype_runs"] / k, b) if w["transport"] == "datatype" else 0.0
    t_intra = msgs * m["intra"].alpha + t_dt if t_dt else m["intra"].time(msgs, b)
    # Every neighbour on the node: the rank's whole phase (a knee counts all its bytes).
    t_all = k * t_intra if t_dt else m["intra"].time(k * msgs, k * b)
    if block_along < P_along:
        beta = m["inter"].beta
        if m["nic_shared"]:  # the ranks on both edges of the node's block share its port
            beta /= 2 * (m["per_node"] // block_along)
        t_inter = msgs * m["inter"].alpha + b / beta + t_dt
        if m["intra"].name.startswith("smp"):  # shared memory: the receiving CPU copies
            t_net = max(t_inter, t_intra * (k - 1))
        else:
            t_net = max(t_inter, t_intra)
    else:
        t_net = t_all if m["intra"].name.startswith("smp") else t_intra
    t = t_net + m["copy"].time(w["copy_runs"], w["copy_bytes"]) + (launch * 2 * k if w["copy_bytes"] else 0)
    return t


def allgather_time(m, P, total_bytes, per_node):
    """A ring: P - 1 steps, each rank moving 1 / P of the bytes a step, at the slower of the
    node's link and (past one node) the fabric."""
    if P == 1:
        return 0.0
    moved = (P - 1) / P * total_bytes
    t = m["intra"].bytes_time(moved)
    if P > per_node:
        return (P - 1) * m["inter"].alpha + max(moved / m["inter"].beta, t)
    return (P - 1) * m["intra"].alpha + t


def decoder_costs(m, P, pr, pc, H, W, layout, layers, first):
    rows = math.ceil(H / pr)
    cols = math.ceil(W / pc)
    nr, nc = node_block(pr, pc, m["per_node"]) if P > m["per_node"] else (pr, pc)
    out = {"halo_s": 0.0, "allgather_s": 0.0, "compute_s": 0.0, "interior_s": 0.0, "exchanges": 0, "per_layer": []}
    for l in layers:
        fr = l["f0"] if first else l["f"]
        if fr == 0:
            continue
        s = l["s"]
        if l["kind"] == "attention":
            C = l["cin"]
            tb = 2 * C * H * W * F32  # K and V of every rank
            t_ag = allgather_time(m, P, tb, m["per_node"])
            fl = attention_flops(C, rows * cols, H * W)
            out["allgather_s"] += t_ag
            out["compute_s"] += fl / m["flops"]
            out["per_layer"].append(dict(name=l["name"], allgather_s=t_ag, bytes=tb, compute_s=fl / m["flops"]))
            continue
        fl = layer_flops(l, rows, cols, first)
        tc = fl / m["flops"]
        out["compute_s"] += tc
        th = 0.0
        if l["halo"]:
            R, Cc = rows * s, cols * s
            th = phase_time(m, layout, l["cin"], fr, R, Cc, "h", pr, nr, m["launch"])
            if pc > 1:  # second phase: columns, spanning the ghost rows the first filled
                th += phase_time(m, layout, l["cin"], fr, R + 2, Cc, "w", pc, nc, m["launch"])
            out["exchanges"] += 1
            # khalo overlaps the exchange with the rows that need no ghost row
            inner = max(0, R - 2) * max(0, Cc - 2 * (pc > 1)) / (R * Cc)
            out["interior_s"] += tc * inner
            out["per_layer"].append(dict(name=l["name"], halo_s=th, compute_s=tc))
        out["halo_s"] += th
    return out


# The predictions (halo_model.py predict): one scenario m, P ranks, 'row' (P x 1) or 'rowcol'.
STAGE = dict(C=96, D=4, R=60, W=104, exchanges=6)  # one up-block at C = 96, a band per rank


def stage_prediction(m, P, split, layout="channels_last_3d"):
    """The stage: one up-block at C = 96, a (1, 96, 4, 60, 104) band per rank (weak scaling, as
    bench_decoder's stage), 3 residual blocks = 6 exchanges of the 96-channel input. 'rowcol' is
    a near-square grid with the same tile per rank (it only adds the column faces)."""
    C, D, R, Wd, n = STAGE["C"], STAGE["D"], STAGE["R"], STAGE["W"], STAGE["exchanges"]
    if split == "row":
        pr, pc = P, 1
    else:
        pr = 2 ** (int(math.log2(P)) // 2)
        pc = P // pr
    nr, nc = node_block(pr, pc, m["per_node"]) if P > m["per_node"] else (pr, pc)
    th = phase_time(m, layout, C, D, R, Wd, "h", pr, nr, m["launch"])
    if pc > 1:
        th += phase_time(m, layout, C, D, R + 2, Wd, "w", pc, nc, m["launch"])
    th *= n
    tc = n * 2.0 * D * R * Wd * C * C * 27 / m["flops"]
    inner = (R - 2) * (Wd - 2 * (pc > 1)) / (R * Wd)
    exposed = max(0.0, th - tc * inner)
    return dict(ranks=P, grid=[pr, pc], halo_s=th, compute_s=tc,
                share=th / (th + tc), share_overlapped=exposed / (exposed + tc))


def decoder_prediction(m, P, split, H, W, T, layout, layers):
    """The whole decoder, strong scaling (the same latent (1, 16, T, H, W) over P ranks): 'row'
    is P x 1 (impossible past H ranks: bands thinner than one latent row); 'rowcol' the grid
    with more than one column that gives the shortest total time. None of the fields is
    overlapped but comm_share_overlapped (khalo's overlap of the interior; never the
    Allgatherv)."""
    if split == "row":
        if P > H:
            return dict(ranks=P, split="row", grid=[P, 1], feasible=False,
                        why=f"{H} latent rows < {P} ranks: bands thinner than one row")
        grids = [(P, 1)]
    else:
        grids = [g for g in grid_options(P, H, W) if g[1] > 1]
    best = None
    for pr, pc in grids:
        c0 = decoder_costs(m, P, pr, pc, H, W, layout, layers, True)
        c1 = decoder_costs(m, P, pr, pc, H, W, layout, layers, False)
        tot = {k: c0[k] + (T - 1) * c1[k] for k in ("halo_s", "allgather_s", "compute_s", "interior_s")}
        comm = tot["halo_s"] + tot["allgather_s"]
        exposed = max(0.0, tot["halo_s"] - tot["interior_s"]) + tot["allgather_s"]
        rec = dict(ranks=P, split=split, grid=[pr, pc], feasible=True,
                   rows_per_rank=math.ceil(H / pr), cols_per_rank=math.ceil(W / pc),
                   exchanges_per_frame=c1["exchanges"], halo_s=tot["halo_s"],
                   allgather_s=tot["allgather_s"], compute_s=tot["compute_s"],
                   halo_share=tot["halo_s"] / (comm + tot["compute_s"]),
                   comm_share=comm / (comm + tot["compute_s"]),
                   comm_share_overlapped=exposed / (exposed + tot["compute_s"]),
                   per_frame=c1)
        if best is None or comm + tot["compute_s"] < best["halo_s"] + best["allgather_s"] + best["compute_s"]:
            best = rec
    return best
