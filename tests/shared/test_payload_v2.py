"""Payload v2 (entropy coder 2): round trips, band cuts, v1 beside it, and 10,000 corruptions.

The corruption cases are derived from a seeded generator, so a failure names a case that can
be rebuilt; each has its CRC recomputed after the damage, so the coder itself sees garbage.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from codec_images import synthetic_image
from PIL import Image

from shared.codec import (
    DecodeLimits,
    Layout,
    PayloadError,
    Profile,
    decode,
    decode_header,
    encode,
    truncate,
)

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))
LIMITS = DecodeLimits(max_width=256, max_height=256, max_pixels=1 << 16, max_payload_bytes=1 << 14)
CASES = 10_000


@pytest.mark.parametrize(
    "profile",
    [Profile.auto(75), Profile.lossless(90), Profile.lowpass(70, 10, 3), Profile.paper(50, 4)],
    ids=lambda p: p.kind.name.lower(),
)
def test_v2_carries_the_same_coefficients_as_v1_in_fewer_bytes(profile: Profile) -> None:
    with Image.open(SAMPLES[2]) as image:
        rgb = image.convert("RGB")
    first, second = encode(rgb, profile, coder=1), encode(rgb, profile, coder=2)
    assert (first[4], second[4]) == (1, 2)  # the version byte
    assert decode_header(second).coder == 2
    a, b = decode(first), decode(second)
    for x, y in zip(a.coefficients, b.coefficients, strict=True):
        assert np.array_equal(x, y)
    if profile.kind.name != "PAPER":
        assert len(second) < len(first)
    # A cut v2 stream still decodes to the first bands, like v1's.
    for bands in (1, 3):
        cut = decode(truncate(second, bands))
        assert cut.retention[0].keep == min(bands, b.retention[0].keep)
        for x, y in zip(cut.coefficients, b.coefficients, strict=True):
            assert np.array_equal(x[:, :, :bands], y[:, :, :bands])
            assert not x[:, :, bands:].any()
    partial = decode(second[: len(second) // 2], allow_partial=True)
    assert not partial.complete


def test_an_unknown_coder_is_refused_before_anything_is_coded() -> None:
    with pytest.raises(ValueError, match="unknown entropy coder 3"):
        encode(synthetic_image(8, 8, False, 0), Profile.lossless(), coder=3)


def _payloads() -> list[bytes]:
    out = []
    for seed, (height, width, colour) in enumerate([(8, 8, False), (8, 16, False), (16, 24, True)]):
        pixels = synthetic_image(height, width, colour, seed)
        layout = Layout.YCBCR420 if colour else Layout.GRAY
        for profile in (
            Profile.lowpass(75, 6, 3, layout=layout),
            Profile.lossless(90, layout=layout),
            Profile.auto(60, layout=layout),
        ):
            out.append(encode(pixels, profile, coder=2))
    return out


def _reseal(body: bytearray) -> bytes:
    return bytes(body) + zlib.crc32(body).to_bytes(4, "big")


def test_ten_thousand_corrupted_v2_payloads_raise_payload_error_or_decode() -> None:
    rng = np.random.default_rng(20261205)
    valid = _payloads()
    refused = 0
    for case in range(CASES):
        payload = valid[case % len(valid)]
        body = bytearray(payload[:-4])
        how = int(rng.integers(0, 4))
        if how == 0:  # flip bits in the body
            for _ in range(int(rng.integers(1, 4))):
                spot = int(rng.integers(0, len(body)))
                body[spot] ^= 1 << int(rng.integers(0, 8))
        elif how == 1:  # overwrite a run with random bytes
            start = int(rng.integers(0, len(body)))
            length = int(rng.integers(1, 16))
            body[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
        elif how == 2:  # cut the payload short
            body = body[: int(rng.integers(1, len(body)))]
        else:  # insert garbage
            spot = int(rng.integers(0, len(body)))
            body[spot:spot] = rng.integers(
                0, 256, int(rng.integers(1, 8)), dtype=np.uint8
            ).tobytes()
        try:
            decode(_reseal(body), limits=LIMITS)
        except PayloadError:
            refused += 1
        except Exception as error:  # pragma: no cover - the failure message is the point
            pytest.fail(f"case {case}: {type(error).__name__}: {error}")
    assert refused > CASES // 2
