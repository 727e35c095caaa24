"""Entropy coder 2 (work in progress, issue 14): exact, cut-tolerant, and no larger than coder 1.

The encoder does not write coder 2 yet; these tests hold it to its contract until it does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from shared.codec import Layout, PayloadError, Profile, decode, encode, entropy, entropy2
from shared.codec.adaptive import uniform_prior
from shared.codec.coefficients import Int32Array, Retention
from shared.codec.priors import prior

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))


def _coefficients(
    image: Image.Image | npt.NDArray[np.uint8], profile: Profile
) -> tuple[list[Int32Array], list[Retention]]:
    decoded = decode(encode(image, profile))
    return list(decoded.coefficients), list(decoded.retention)


def _decode(
    segments: list[bytes], channels: list[Int32Array], retention: list[Retention]
) -> list[Int32Array]:
    return entropy2.decode_bands(
        [memoryview(s) for s in segments],
        [0] * len(segments),
        [c.shape[:2] for c in channels],
        retention,
    )


PROFILES = [
    Profile.auto(75),
    Profile.lossless(90),
    Profile.lowpass(60, 10, 3),
    Profile.paper(50, 4),
    Profile.adaptive(3000),
]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.kind.name.lower())
def test_every_profile_round_trips_and_every_band_cut_decodes(profile: Profile) -> None:
    with Image.open(SAMPLES[0]) as image:
        channels, retention = _coefficients(image.convert("RGB"), profile)
    segments = entropy2.encode_bands(channels, retention)
    for got, want in zip(_decode(segments, channels, retention), channels, strict=True):
        assert (got == want).all()
    # The retention stays the header's: the count of bands present says where the cut is.
    for bands in (1, 2, len(segments) // 2):
        decoded = _decode(segments[:bands], channels, retention)
        for got, want in zip(decoded, channels, strict=True):
            assert (got[:, :, :bands] == want[:, :, :bands]).all()
            assert not got[:, :, bands:].any()


@settings(max_examples=12, deadline=None)
@given(
    width=st.integers(1, 120),
    height=st.integers(1, 90),
    layout=st.sampled_from([Layout.GRAY, Layout.YCBCR420, Layout.YCBCR444]),
    lossless=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_any_size_and_layout_round_trips(
    width: int, height: int, layout: Layout, lossless: bool, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    shape = (height, width) if layout is Layout.GRAY else (height, width, 3)
    pixels = rng.integers(0, 256, shape, dtype=np.uint8)
    profile = Profile.lossless(90, layout=layout) if lossless else Profile.auto(60, layout=layout)
    channels, retention = _coefficients(pixels, profile)
    segments = entropy2.encode_bands(channels, retention)
    for got, want in zip(_decode(segments, channels, retention), channels, strict=True):
        assert (got == want).all()


def test_it_codes_the_samples_in_fewer_bytes_than_coder_1() -> None:
    """The point of coder 2; measured on the samples, which the priors were not fitted on."""
    totals = {1: 0, 2: 0}
    for path in SAMPLES:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
        for profile in (Profile.auto(75), Profile.lossless(75)):
            channels, retention = _coefficients(rgb, profile)
            totals[1] += sum(map(len, entropy.encode_bands(channels, retention)))
            totals[2] += sum(map(len, entropy2.encode_bands(channels, retention)))
    assert totals[2] < 0.97 * totals[1], totals


def test_every_model_has_its_committed_prior() -> None:
    """A prior of the wrong shape would silently start that model flat."""
    for name, (contexts, symbols) in entropy2.MODELS.items():
        table = prior(name, contexts, symbols)
        assert table.shape == (contexts, symbols)
        assert not (table == uniform_prior(contexts, symbols)).all(), f"{name} has no fitted prior"


def test_corrupted_segments_raise_payload_error_only() -> None:
    with Image.open(SAMPLES[1]) as image:
        channels, retention = _coefficients(image.convert("RGB").resize((96, 64)), Profile.auto(75))
    segments = entropy2.encode_bands(channels, retention)
    rng = np.random.default_rng(5)
    refused = 0
    for _ in range(300):
        broken = [bytearray(s) for s in segments]
        band = int(rng.integers(0, len(broken)))
        if broken[band]:
            spot = int(rng.integers(0, len(broken[band])))
            broken[band][spot] ^= 1 << int(rng.integers(0, 8))
        if rng.random() < 0.3:
            broken[band] = broken[band][: int(rng.integers(0, len(broken[band]) + 1))]
        try:
            _decode([bytes(b) for b in broken], channels, retention)
        except PayloadError:
            refused += 1
    assert refused > 100
