"""What the Python tests compare against: the single-rank global array, and numpy.pad.

Every value is a function of its global index (small integers, exact in float32), and a rank's
expected array, ghost layers included, is a slice of the global array padded by numpy.pad with
the mode of each split dimension's boundary policy, dimension after dimension in the order of the
decomposition's split dimensions (docs/halo.md §2-3): independent of khalo's own code.
"""

import numpy as np

import khalo

SENTINEL = -7  # what ghost cells hold before an exchange; no global value is negative

PAD_MODE = {
    khalo.Boundary.zero: dict(mode="constant", constant_values=0),
    khalo.Boundary.replicate: dict(mode="edge"),
    khalo.Boundary.reflect: dict(mode="reflect"),
    khalo.Boundary.periodic: dict(mode="wrap"),
    khalo.Boundary.none: dict(mode="constant", constant_values=SENTINEL),
}


def global_array(shape, dtype):
    """Values 1, 2, 3, ... in C order of the global index: every cell tells where it came from."""
    return (np.arange(int(np.prod(shape)), dtype=np.int64) + 1).reshape(shape).astype(dtype)


def empty_in_order(shape, dtype, order):
    """An uninitialised array of `shape` whose dimensions are stored in `order` (slowest first)."""
    if order == "C":
        return np.empty(shape, dtype=dtype, order="C")
    if order == "F":
        return np.empty(shape, dtype=dtype, order="F")
    if order == "strided":  # not dense: every other element of a wider array
        wide = list(shape)
        wide[-1] *= 2
        return np.empty(wide, dtype=dtype)[..., ::2]
    base = np.empty([shape[d] for d in order], dtype=dtype)
    return base.transpose(np.argsort(order))


def widths(spec, dim):
    low, high, boundary = spec.of(dim)
    return low, high, boundary


def local_band(dec, spec, glob, order):
    """This rank's array: ghost layers (SENTINEL) around its owned block of `glob`, stored in `order`."""
    shape = list(glob.shape)
    owned = []
    for d in range(len(shape)):
        b, e = dec.owned(d)
        low, high = (widths(spec, d)[:2]) if dec.is_split(d) else (0, 0)
        shape[d] = e - b + low + high
        owned.append(slice(low, low + e - b))
    arr = empty_in_order(shape, glob.dtype, order)
    arr[...] = SENTINEL
    arr[tuple(owned)] = glob[tuple(slice(*dec.owned(d)) for d in range(len(shape)))]
    return arr


def expected_band(dec, spec, glob):
    """The oracle: what every cell of this rank's array holds after an exchange."""
    padded = glob
    for d in dec.split_dims:
        low, high, boundary = widths(spec, d)
        pad = [(0, 0)] * glob.ndim
        pad[d] = (low, high)
        padded = np.pad(padded, pad, **PAD_MODE[boundary])
    index = []
    for d in range(glob.ndim):
        b, e = dec.owned(d)
        if dec.is_split(d):
            low, high, _ = widths(spec, d)
            index.append(slice(b, e + low + high))  # padded index p is global index p - low
        else:
            index.append(slice(b, e))
    return padded[tuple(index)]


def assert_all(comm, ok, what):
    """Asserts `ok` on every rank together, so that a failure on one rank fails them all (no hang)."""
    oks = comm.allgather(bool(ok))
    bad = [r for r, o in enumerate(oks) if not o]
    assert not bad, f"{what}: failed on rank(s) {bad}"


def same_error_everywhere(comm, error):
    """Every rank's (type name, message): the same on every rank, or the assertion says which differ."""
    mine = (type(error).__name__, str(error)) if error is not None else None
    everyone = comm.allgather(mine)
    assert all(e is not None for e in everyone), f"some rank raised nothing: {everyone}"
    assert all(e == everyone[0] for e in everyone), f"ranks raised different errors: {everyone}"
    return everyone[0]
