"""The exchange side of the halo model (halo_model.py): links, copies, the face of a tile,
what one rank does in one phase, and a row-split exchange on one shared-memory node.
Every time is seconds; every size bytes."""

import json
import os
import re

F32 = 4
EAGER = 4096  # Open MPI 4.1 vader BTL: eager limit 4 KiB, larger messages single-copy (CMA)
HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = os.path.join(HERE, "..", "..", "include", "khalo", "halo_spec.hpp")
TRANSPORT_HEADER = os.path.join(HERE, "..", "..", "include", "khalo", "detail", "halo", "transport.hpp")


def header_constant(name, path):
    """An integer constant `name` = expression; of a header of the tree (digits, *, +, <<, parentheses)."""
    with open(path) as f:
        m = re.search(name + r"\s*=\s*([0-9 *+<()]+);", f.read())
    if not m:
        raise RuntimeError(f"{name} not found in {path}")
    return int(eval(m.group(1), {"__builtins__": {}}))


def header_in_place_run(path=HEADER):
    """khalo's in-place threshold, kDefaultInPlaceMinRunBytes, as the source tree defines it: a face
    whose runs are all >= this many bytes goes to MPI in place, one message per run; otherwise
    khalo packs it into one message."""
    return header_constant("kDefaultInPlaceMinRunBytes", path)


def data_in_place_run(bench_paths):
    """The threshold of the khalo that produced these bench_halo records: measure.sh writes it
    to khalo.json beside them. None when not recorded."""
    found = set()
    for b in bench_paths:
        meta = os.path.join(os.path.dirname(os.path.abspath(b)), "khalo.json")
        if os.path.exists(meta):
            with open(meta) as f:
                found.add(int(json.load(f)["in_place_run_bytes"]))
    if len(found) > 1:
        raise RuntimeError(f"bench files measured with different in-place thresholds: {sorted(found)}")
    return found.pop() if found else None


# THE in-place threshold of the model (bytes per run), one parameter: khalo's
# kDefaultInPlaceMinRunBytes read from the tree; halo_model.py sets it per command
# (--in-place-run-bytes, or the value recorded with the measured data for fit and validate).
IN_PLACE_RUN = header_in_place_run()


def set_in_place_run(nbytes):
    global IN_PLACE_RUN
    IN_PLACE_RUN = int(nbytes)


class TransportCost:
    """khalo's own rule for a face that cannot go in place: a derived datatype where its cost
    model says a datatype beats a pack (struct TransportCost in detail/halo/transport.hpp, whose
    constants are read from the tree, so that the model follows the plan's choice)."""

    def __init__(self, path=TRANSPORT_HEADER):
        with open(path) as f:
            m = re.search(r"struct TransportCost \{(.*?)\n\s*double pack\(", f.read(), re.S)
        if not m:
            raise RuntimeError(f"struct TransportCost not found in {path}")
        self.c = {k: float(eval(v, {"__builtins__": {}}))  # digits, ., e, *, + only
                  for k, v in re.findall(r"double (\w+) = ([0-9.e+* -]+);", m.group(1))}
        for k in ("eager_bytes", "rendezvous", "per_run", "pack_per_byte", "datatype_per_byte",
                  "datatype_pipeline_bytes", "datatype_per_byte_beyond"):
            if k not in self.c:
                raise RuntimeError(f"TransportCost::{k} not found in {path}")

    def pack(self, runs, nbytes):
        c = self.c
        return (c["rendezvous"] if nbytes > c["eager_bytes"] else 0.0) + c["per_run"] * runs + c["pack_per_byte"] * nbytes

    def datatype(self, runs, nbytes):
        c = self.c
        beyond = max(0.0, nbytes - c["datatype_pipeline_bytes"])
        return c["per_run"] * runs + c["datatype_per_byte"] * (nbytes - beyond) + c["datatype_per_byte_beyond"] * beyond


TRANSPORT_COST = TransportCost()


# Between two ranks of one node khalo has transports of its own (docs/halo.md §5): a face in
# place on both sides is read by the receiver straight from the sender's View, in at most
# kDirectMaxRuns runs of at least kDirectMinRunBytes each, or one run (direct_read.hpp,
# direct_runs_fit); any other face in place in several runs shorter than
# kSharedInPlaceMinRunBytes, or not in place, is packed into the sender's node-shared buffer
# and unpacked from there (transport.hpp, node_shared.hpp), or, when the sender's View lies in
# a khalo::NodeSharedArena, copied by the receiver straight out of that View (mapped_reads.hpp).
DIRECT_MAX_RUNS = header_constant("kDirectMaxRuns", os.path.join(HERE, "..", "..", "include", "khalo", "detail",
                                                                  "halo", "direct_read.hpp"))
DIRECT_MIN_RUN = header_constant("kDirectMinRunBytes", os.path.join(HERE, "..", "..", "include", "khalo", "detail",
                                                                   "halo", "direct_read.hpp"))
SHARED_IN_PLACE_RUN = header_constant("kSharedInPlaceMinRunBytes", TRANSPORT_HEADER)


def transport(runs, run_bytes, nbytes, datatypes=True, on_node=False, mapped=False):
    """How khalo's plan sends one side of a face of one field (choose_transports): 'in_place'
    (one message per run: a single run, or runs of at least IN_PLACE_RUN bytes), else
    'datatype' where TransportCost prefers it and the memory allows it (host memory:
    `datatypes`), else 'packed'. `on_node`: toward a rank of this node with khalo's node-local
    transports on (its default in host memory): an in-place face is read directly ('direct',
    at most DIRECT_MAX_RUNS runs of at least DIRECT_MIN_RUN bytes, or one run), any other goes
    through the node-shared buffer ('shared') unless its runs are long enough for MPI in place;
    `mapped`: the fields lie in node-shared arenas, and such a face is copied by the receiver
    straight from the sender's View ('mapped')."""
    in_place = runs == 1 or run_bytes >= IN_PLACE_RUN
    if on_node:
        if in_place and runs <= DIRECT_MAX_RUNS and (runs == 1 or run_bytes >= DIRECT_MIN_RUN):
            return "direct"
        if in_place and (runs == 1 or run_bytes >= SHARED_IN_PLACE_RUN):
            return "in_place"
        return "mapped" if mapped else "shared"
    if in_place:
        return "in_place"
    if datatypes and TRANSPORT_COST.datatype(runs, nbytes) < TRANSPORT_COST.pack(runs, nbytes):
        return "datatype"
    return "packed"


class Link:
    """One kind of link: alpha (s per message), beta (bytes/s, one direction); optionally a
    second pair (alpha_small, beta_small) for messages under `eager` bytes (Open MPI's shared
    memory eager protocol copies small messages twice through a buffer, larger ones once
    with CMA: two regimes, each alpha-beta); and optionally a knee: of the bytes a rank moves in
    one phase, all its messages together, those past `knee` move at `beta_beyond` (on one node the
    single copy leaves the cores' caches: on the Ice Lake guest, from 512 KiB a rank's send and
    receive buffers outgrow its L2; the ping-pong's n bytes each way are such a rank's bytes)."""

    def __init__(self, name, alpha, beta, eager=0, alpha_small=None, beta_small=None, knee=None, beta_beyond=None):
        self.name, self.alpha, self.beta = name, alpha, beta
        self.eager, self.alpha_small, self.beta_small = eager, alpha_small, beta_small
        self.knee, self.beta_beyond = knee, beta_beyond

    def time(self, messages, nbytes):
        """`messages` messages of `nbytes` in all, the bytes one rank sends in one phase."""
        if messages and self.eager and nbytes / messages < self.eager:
            return messages * self.alpha_small + nbytes / self.beta_small
        return messages * self.alpha + self.bytes_time(nbytes)

    def bytes_time(self, nbytes):
        """The transfer of the nbytes one rank moves in one phase, latency aside."""
        if not self.knee:
            return nbytes / self.beta
        beyond = max(0.0, nbytes - self.knee)
        return (nbytes - beyond) / self.beta + beyond / self.beta_beyond


class Copy:
    """Pack / unpack / fill on the rank's own processor: delta s per contiguous run plus
    bytes / gamma, and for khalo's copies a fixed `overhead` per exchange. The same form serves a
    derived datatype's message beyond its latency (MPI's two copies through shared-memory
    fragments, per run and per byte)."""

    def __init__(self, delta, gamma, overhead=0.0):
        self.delta, self.gamma = delta, gamma
        self.overhead = overhead  # s per exchange: khalo's own calls (plan walk, requests, stats)

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


def phase_work(layout, C, D, rows, cols, along, sides_with_neighbour, scheme="khalo", fills=True, datatypes=False,
               on_node=False, mapped=False):
    """What one rank does in one phase (one split dimension): messages, bytes received (=
    sent), bytes and runs copied by the rank's processor (pack + unpack + open-side fill), and
    the runs and bytes that go as derived datatypes. `scheme`: 'khalo', 'raw' (pre-packed
    buffers) or 'datatype' (a datatype for every face, as bench_halo's mpi_datatype). `fills`: the open sides are filled in this
    exchange (false: once per plan, HaloSpec::set_zero_fill_once); `datatypes`: the plan may
    choose a datatype (host memory); `on_node`: the neighbours are on this node and khalo's
    node-local transports are on (transport()). A direct face is copied once, by the receiver
    (`read_bytes`); a shared one is packed and unpacked (copies) and moves no bytes through
    MPI; a mapped one (`mapped`: the fields lie in node-shared arenas) is copied once, by the
    receiver, and moves none either. All three wait for two empty messages per phase (`signal_waits`: "ready" or "packed", then
    "read")."""
    b, runs, run_bytes = face(layout, C, D, rows, cols, along)
    k = sides_with_neighbour
    if scheme == "raw":  # pre-packed buffers, one message per neighbour, no fill
        return dict(messages=k, bytes=k * b, copy_runs=0, copy_bytes=0, datatype_runs=0, datatype_bytes=0,
                    read_bytes=0, signal_waits=0, transport="raw")
    how = "datatype" if scheme == "datatype" else transport(runs, run_bytes, b, datatypes, on_node, mapped)
    local = how in ("direct", "shared", "mapped")
    msgs = 0 if local else k * (runs if how == "in_place" else 1)
    copies = {"packed": 2, "shared": 2, "mapped": 1}.get(how, 0)  # pack and unpack, or the receiver's copy
    copy_runs = copies * k * runs
    copy_bytes = copies * k * b
    if fills:
        copy_runs += (2 - k) * runs  # the open sides' ghost layer is filled (zero)
        copy_bytes += (2 - k) * b
    dt = how == "datatype"
    return dict(messages=msgs, bytes=0 if local else k * b, copy_runs=copy_runs, copy_bytes=copy_bytes,
                datatype_runs=k * runs if dt else 0, datatype_bytes=k * b if dt else 0,
                read_bytes=k * b if how == "direct" else 0, signal_waits=2 if local and k else 0, transport=how)


def rank_time(work, link, copy, datatype=None, local=None):
    """A rank's time in one phase. A datatype message costs the link's latency plus `datatype`
    (Copy) for its runs and bytes, in place of the link's single copy; khalo adds its fixed
    overhead (copy.overhead), raw MPI does not. A direct read copies at the link's single-copy
    bandwidth, its knee included (the same system call as Open MPI's CMA),
    and each signal wait costs one empty message. `local` (a dict) gives the copy cost (Copy) of
    the node-local faces by transport where fitted: 'shared' (fit-node; its packs stream into
    memory the peer reads next, unlike a pack toward MPI) and 'mapped' (fit-mapped); others copy
    at `copy`'s cost."""
    c = (local or {}).get(work["transport"]) or copy
    t = c.time(work["copy_runs"], work["copy_bytes"]) + (copy.overhead if work["transport"] != "raw" else 0.0)
    t += work.get("signal_waits", 0) * link.time(1, 0)
    t += link.bytes_time(work.get("read_bytes", 0))  # direct reads
    if work["datatype_bytes"]:
        return t + work["messages"] * link.alpha + datatype.time(work["datatype_runs"], work["datatype_bytes"])
    return t + link.time(work["messages"], work["bytes"])


class Sharing:
    """Ranks sharing cores (more ranks than cores on one node), as the kernel time-slices them.

    Every rank's exchange time is CPU work on its own core (the copies, and the link's part:
    with CMA the receiving rank copies). While a ranks have work left and d ranks are done
    (waiting in MPI for the others, which Open MPI does yielding the core when the node is
    oversubscribed), the c cores are shared fairly: each working rank runs at
    min(1, c / (a + y d)) of a core (generalised processor sharing). Two parameters, fitted on
    chain.c (halo_model.py fit-sharing), never on bench_halo:
      y  yield share: the part of its fair share a waiting rank still takes. 0: it gives the
         core away at once (an ideal yield, work-conserving); 1: it keeps its whole share
         (busy polling), so every rank runs at c / P until the last one is done.
      h  hand-off wait, seconds per exchange and per rank beyond the cores: a rank that was
         descheduled is switched back in before its neighbours can finish (the scheduler's
         wake-up and migration latency, not its full slice: the ranks yield long before).
    With ranks <= cores every rank has its core: the slowest rank's time, as before."""

    def __init__(self, cores, yield_share=1.0, handoff_s=0.0):
        self.cores, self.yield_share, self.handoff_s = cores, yield_share, handoff_s

    def time(self, works):
        P, c = len(works), self.cores
        if P <= c:
            return max(works)
        rem, t, done = sorted(works), 0.0, 0
        while rem:
            rate = min(1.0, c / (len(rem) + self.yield_share * done))
            step = rem[0]
            t += step / rate
            rem = [x - step for x in rem[1:]]
            done += 1
            while rem and rem[0] <= 1e-15:
                rem.pop(0)
                done += 1
        return t + (P - c) * self.handoff_s


def chain_works(ranks, b, link, copy=None):
    """Each rank's work in chain.c: k = 1 or 2 neighbours, b bytes to and from each; `copy`
    (Copy) for its packed mode, a pack and an unpack of b bytes per neighbour (one run each)."""
    out = []
    for r in range(ranks):
        k = (r > 0) + (r < ranks - 1)
        t = link.time(k, k * b)
        if copy is not None:
            t += copy.time(2 * k, 2 * k * b)
        out.append(t)
    return out


def exchange_time_smp(layout, C, D, rows, W, ranks, cores, link, copy, scheme="khalo", sharing=None, datatype=None,
                      fills=True, on_node=False, local=None, mapped=False):
    """A row-split exchange of a (1, C, D, rows per rank, W) band on `ranks` ranks of one
    shared-memory node with `cores` cores: the slowest rank's time when every rank has a core;
    with more ranks than cores, `sharing` (Sharing) time-slices the ranks' work over the cores
    (default: the ranks busy-poll, y = 1, no hand-off wait). `datatype` (Copy): the cost of a
    derived datatype's message, None where the plan may not choose one. `on_node`: khalo's
    node-local transports are on (phase_work), `local` prices their faces (rank_time); `mapped`:
    the fields lie in node-shared arenas (phase_work)."""
    times = []
    for r in range(ranks):
        k = (r > 0) + (r < ranks - 1)
        w = phase_work(layout, C, D, rows, W, "h", k, scheme, fills, datatype is not None, on_node, mapped)
        times.append(rank_time(w, link, copy, datatype, local))
    return (sharing or Sharing(cores)).time(times)


if __name__ == "__main__":
    import sys
    if sys.argv[1:] == ["--in-place-run-bytes"]:
        print(header_in_place_run())
