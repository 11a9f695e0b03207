"""perf/model's link on one node: a single copy whose bytes past a knee, counted over all of a
rank's messages in a phase, move slower (they leave the cores' caches). These check the knee's
fit and its price on made-up measurements, so that a change to either cannot go unnoticed; the
fits to the machines are in perf/model/README.md."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "perf", "model"))
import exchange  # noqa: E402
import fitting  # noqa: E402

KNEE = dict(alpha_s=2.5e-6, beta_Bps=17e9, knee_bytes=512 * 1024, beta_beyond_Bps=7.7e9)
SIZES = [4096 << k for k in range(12)]  # 4 KiB .. 8 MiB, in powers of 2 as pingpong.c measures


def test_the_knee_fit_finds_the_knee_and_both_bandwidths():
    pts = [(n, fitting.entry_time(KNEE, n)) for n in SIZES]
    got = fitting.fit_knee(pts, exchange.EAGER)
    assert got["knee_bytes"] == KNEE["knee_bytes"]
    for k in ("alpha_s", "beta_Bps", "beta_beyond_Bps"):
        assert got[k] == pytest.approx(KNEE[k], rel=1e-6), k


def test_a_link_charges_a_ranks_bytes_past_the_knee_all_messages_together():
    link = fitting.link_of("smp", KNEE, exchange.EAGER, dict(alpha_s=0.5e-6, beta_Bps=2e9))
    mib = 1 << 20
    # Two messages of 1 MiB, one rank's phase: 512 KiB at beta, the 1.5 MiB past the knee slower.
    want = 2 * KNEE["alpha_s"] + KNEE["knee_bytes"] / KNEE["beta_Bps"] + (2 * mib - KNEE["knee_bytes"]) / KNEE[
        "beta_beyond_Bps"]
    assert link.time(2, 2 * mib) == pytest.approx(want)
    # Under the knee the line alone; under the eager limit the eager pair alone.
    assert link.time(4, 4 * 65536) == pytest.approx(4 * KNEE["alpha_s"] + 4 * 65536 / KNEE["beta_Bps"])
    assert link.time(1, 512) == pytest.approx(0.5e-6 + 512 / 2e9)
