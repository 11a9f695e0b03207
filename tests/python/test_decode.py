"""khalo.decode (the library's Decoder, not the CLI) against the committed PyTorch reference."""

import json
import os

import numpy as np
import pytest
from mpi4py import MPI

import khalo

h5py = pytest.importorskip("h5py")
comm = MPI.COMM_WORLD
golden = os.path.join(os.path.dirname(__file__), "..", "reference", "golden_decoder")


def configs():
    with open(os.path.join(golden, "manifest.json")) as f:
        return json.load(f)["configs"]


def case(name):
    with h5py.File(os.path.join(golden, name + ".input.h5"), "r") as f:
        latent = np.ascontiguousarray(f["data"][...], dtype=np.float32)
    with h5py.File(os.path.join(golden, name + ".expected.h5"), "r") as f:
        expected = f["data"][...]
    return os.path.join(golden, name + ".safetensors"), latent, expected


@pytest.mark.parametrize("layout", ["channels_last_3d", "contiguous"])
def test_decode_equals_the_reference_and_one_rank(layout):
    for c in configs():
        if c["shape"][3] < comm.size:
            continue  # every rank needs a latent row
        weights, latent, expected = case(c["name"])
        got = khalo.decode(weights, latent, comm, layout=layout, latents_normalized=c["latents_normalized"])
        assert got.shape == expected.shape, c["name"]
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4, err_msg=c["name"])
        if comm.size > 1:
            alone = khalo.decode(weights, latent, MPI.COMM_SELF, layout=layout,
                                 latents_normalized=c["latents_normalized"])
            assert np.array_equal(got.view(np.uint32), alone.view(np.uint32)), c["name"]


def test_decode_errors_on_every_rank():
    _, latent, _ = case("dec_f32")
    with pytest.raises(khalo.IOError):
        khalo.decode(os.path.join(golden, "missing.safetensors"), latent, comm)
    weights = os.path.join(golden, "dec_f32.safetensors")
    with pytest.raises(ValueError, match="channels"):
        khalo.decode(weights, np.zeros((1, 5, 1, 5, 6), np.float32), comm)
    with pytest.raises(ValueError, match="needs Wan 2.1's 16 latent channels"):
        khalo.decode(weights, latent, comm, latents_normalized=True)
