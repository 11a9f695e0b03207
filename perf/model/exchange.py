"""The exchange side of the halo model (halo_model.py): links, copies, the face of a tile,
what one rank does in one phase, and a row-split exchange on one shared-memory node.
Every time is seconds; every size bytes."""

F32 = 4
EAGER = 4096  # Open MPI 4.1 vader BTL: eager limit 4 KiB, larger messages single-copy (CMA)
IN_PLACE_RUN = 64 * 1024  # khalo sends a face of runs >= 64 KiB in place, one message per run


class Link:
    """One kind of link: alpha (s per message), beta (bytes/s, one direction); optionally a
    second pair (alpha_small, beta_small) for messages under `eager` bytes (Open MPI's shared
    memory eager protocol copies small messages twice through a buffer, larger ones once
    with CMA: two regimes, each alpha-beta)."""

    def __init__(self, name, alpha, beta, eager=0, alpha_small=None, beta_small=None):
        self.name, self.alpha, self.beta = name, alpha, beta
        self.eager, self.alpha_small, self.beta_small = eager, alpha_small, beta_small

    def time(self, messages, nbytes):
        if messages and self.eager and nbytes / messages < self.eager:
            return messages * self.alpha_small + nbytes / self.beta_small
        return messages * self.alpha + nbytes / self.beta


class Copy:
    """Pack / unpack / fill on the rank's own processor: delta s per contiguous run plus
    bytes / gamma."""

    def __init__(self, delta, gamma):
        self.delta, self.gamma = delta, gamma

    def time(self, runs, nbytes):
        return runs * self.delta + nbytes / self.gamma


def face(layout, C, D, rows, cols, along):
    """The face of one ghost layer of a (1, C, D, rows, cols) float32 tile, cut across `along`
    ('h': one row of cols pixels; 'w': one column of rows pixels).
    Returns (bytes, runs, run_bytes)."""
    if along == "h":
        if layout == "channels_last_3d":  # one row per frame: cols * C floats contiguous
            return C * D * cols * F32, D, cols * C * F32
        return C * D * cols * F32, C * D, cols * F32  # contiguous: cols floats per (c, d)
    if layout == "channels_last_3d":  # one pixel's C floats per (d, h)
        return C * D * rows * F32, D * rows, C * F32
    return C * D * rows * F32, C * D * rows, F32  # contiguous column: single floats


def phase_work(layout, C, D, rows, cols, along, sides_with_neighbour, scheme="khalo"):
    """What one rank does in one phase (one split dimension): messages, bytes received (=
    sent), bytes and runs copied by the rank's processor (pack + unpack + open-side fill)."""
    b, runs, run_bytes = face(layout, C, D, rows, cols, along)
    k = sides_with_neighbour
    if scheme == "raw":  # pre-packed buffers, one message per neighbour, no fill
        return dict(messages=k, bytes=k * b, copy_runs=0, copy_bytes=0)
    in_place = run_bytes >= IN_PLACE_RUN
    msgs = k * (runs if in_place else 1)
    copy_runs = 0 if in_place else 2 * k * runs  # pack on send, unpack on receive
    copy_bytes = 0 if in_place else 2 * k * b
    copy_runs += (2 - k) * runs  # the open sides' ghost layer is filled (zero)
    copy_bytes += (2 - k) * b
    return dict(messages=msgs, bytes=k * b, copy_runs=copy_runs, copy_bytes=copy_bytes)


def rank_time(work, link, copy):
    return link.time(work["messages"], work["bytes"]) + copy.time(work["copy_runs"], work["copy_bytes"])


def exchange_time_smp(layout, C, D, rows, W, ranks, cores, link, copy, scheme="khalo"):
    """A row-split exchange of a (1, C, D, rows per rank, W) band on `ranks` ranks of one
    shared-memory node with `cores` cores: the slowest rank's time, and when ranks > cores the
    CPU work of all ranks spread over the cores (CMA: the receiver copies), whichever is longer."""
    times = []
    for r in range(ranks):
        k = (r > 0) + (r < ranks - 1)
        times.append(rank_time(phase_work(layout, C, D, rows, W, "h", k, scheme), link, copy))
    return max(max(times), sum(times) / cores) if ranks > cores else max(times)
