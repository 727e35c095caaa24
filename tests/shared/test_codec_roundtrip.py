"""Encode then decode: what the receiver gets is exactly what the sender quantised."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from PIL import Image

from shared.codec import (
    DcMode,
    Decoded,
    Layout,
    Profile,
    ProfileKind,
    Retention,
    decode,
    encode,
    truncate,
)
from shared.codec.auto import COARSEST_SCALE, candidate, choose_auto, coefficient_image
from shared.codec.coefficients import CoefficientImage, plane_blocks
from shared.codec.frontend import analyse, channel_tables, transform
from shared.codec.payload import decode_header, encode_coefficients
from shared.codec.reference import reference_jpeg_bytes
from shared.metrics import psnr

REPO = Path(__file__).resolve().parents[2]
SAMPLES = sorted((REPO / "samples").glob("*.png"))
GOLDEN = REPO / "tests" / "expected" / "codec_quality.json"

ALL_LAYOUTS = (None, Layout.GRAY, Layout.YCBCR420, Layout.YCBCR444)
ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))
SMALL_SIDE = st.integers(1, 40)
#: Both entropy coders: payload v1 (coder 1) and v2 (coder 2) must carry the same coefficients.
CODERS = st.sampled_from([1, 2])
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def synthetic_image(height: int, width: int, colour: bool, seed: int) -> npt.NDArray[np.uint8]:
    """Smooth gradients plus noise: realistic coefficients with some large high bands."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    planes = []
    for _ in range(3 if colour else 1):
        fx, fy, phase = rng.uniform(0.02, 0.6, size=3)
        wave = 100 * np.sin(fx * x + phase) * np.cos(fy * y)
        noise = rng.normal(0, rng.uniform(0, 40), size=(height, width))
        planes.append(np.clip(128 + wave + noise, 0, 255).astype(np.uint8))
    return np.stack(planes, axis=2) if colour else planes[0]


def coded_layout(profile: Profile, pixels: npt.NDArray[np.uint8]) -> Layout:
    if profile.layout is not None:
        return profile.layout
    return Layout.GRAY if pixels.ndim == 2 else Layout.YCBCR420


def expected_retention(profile: Profile, layout: Layout) -> tuple[Retention, ...]:
    """docs/architecture.md section 2, per channel."""
    if profile.kind is ProfileKind.PAPER:
        return (Retention(64, DcMode.ANCHORS, profile.anchor_every),) * layout.channels
    luma, chroma = Retention(profile.luma_keep), Retention(profile.chroma_keep)
    return (luma,) if layout is Layout.GRAY else (luma, chroma, chroma)


def sender_coefficients(pixels: npt.NDArray[np.uint8], profile: Profile) -> CoefficientImage:
    """The quantised coefficients the sender computes for this profile."""
    layout = coded_layout(profile, pixels)
    tables = channel_tables(layout, *profile.quantisation_tables())
    return analyse(pixels, layout, tables, expected_retention(profile, layout))


def assert_same_coefficients(decoded: Decoded, expected: CoefficientImage) -> None:
    assert len(decoded.coefficients) == len(expected.channels)
    for got, want in zip(decoded.coefficients, expected.channels, strict=True):
        assert got.dtype == np.int32
        assert got.shape == want.shape
        assert np.array_equal(got, want)
    for got_table, want_table in zip(decoded.tables, expected.tables, strict=True):
        assert np.array_equal(got_table, want_table)


def coarsest_bytes(pixels: npt.NDArray[np.uint8], layout: Layout) -> int:
    """Size of the coarsest payload the adaptive search can fall back to."""
    image = transform(pixels, layout)
    return len(_seal(coefficient_image(image, candidate(image, COARSEST_SCALE)), "local"))


def _seal(coefficients: CoefficientImage, device_id: str) -> bytes:
    return encode_coefficients(
        coefficients,
        ProfileKind.ADAPTIVE,
        quality=0,
        explicit_tables=True,
        device_id=device_id,
        image_id=uuid.UUID(int=0),
        captured_at_us=0,
    )


def assert_reencodes_to(payload: bytes, decoded: Decoded) -> None:
    """Coding the decoded coefficients again, with the entropy coder the payload names, gives
    the payload byte for byte."""
    again = encode_coefficients(
        decoded.coefficient_image,
        decoded.profile,
        quality=decoded.quality or 0,
        explicit_tables=True,
        device_id=decoded.device_id,
        image_id=decoded.image_id,
        captured_at_us=(decoded.captured_at - EPOCH) // timedelta(microseconds=1),
        reference_jpeg_bytes=decoded.reference_jpeg_bytes,
        coder=decode_header(payload).coder,
    )
    assert again == payload


def assert_reconstruction_shape(decoded: Decoded) -> None:
    image = decoded.to_rgb()
    assert image.dtype == np.uint8
    if decoded.layout is Layout.GRAY:
        assert image.shape == (decoded.height, decoded.width)
    else:
        assert image.shape == (decoded.height, decoded.width, 3)


def without_bands_from(channels: tuple[Any, ...], band: int) -> list[npt.NDArray[np.int32]]:
    out = []
    for channel in channels:
        coarse = channel.copy()
        coarse[:, :, band:] = 0
        out.append(coarse)
    return out


@st.composite
def profiles(draw: st.DrawFn, layout: Layout | None) -> Profile:
    kind = draw(st.sampled_from([ProfileKind.LOWPASS, ProfileKind.PAPER, ProfileKind.LOSSLESS]))
    quality = draw(st.integers(1, 100))
    if kind is ProfileKind.LOWPASS:
        luma_keep, chroma_keep = draw(st.integers(1, 64)), draw(st.integers(1, 64))
        return Profile.lowpass(quality, luma_keep, chroma_keep, layout=layout)
    if kind is ProfileKind.PAPER:
        return Profile.paper(quality, draw(st.integers(1, 255)), layout=layout)
    return Profile.lossless(quality, layout=layout)


metadata = st.fixed_dictionaries(
    {
        "image_id": st.uuids(),
        "device_id": st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 255),
        "captured_at": st.datetimes(
            min_value=datetime(1900, 1, 1),
            max_value=datetime(2200, 1, 1),
            timezones=st.sampled_from(ZONES),
        ),
    }
)

FIXED_META: dict[str, Any] = {
    "image_id": uuid.UUID("0190f0e2-7b3c-7def-8abc-0123456789ab"),
    "device_id": "cam-01",
    "captured_at": datetime(2024, 7, 15, 12, 34, 56, 789012, tzinfo=UTC),
}


def fixed(
    height: int, width: int, *, colour: bool, layout: Layout | None, seed: int, coder: int
) -> example:
    """An explicit example of the exact round trip: default profile, fixed metadata."""
    return example(
        height=height,
        width=width,
        colour_input=colour,
        layout=layout,
        seed=seed,
        data=None,
        meta=FIXED_META,
        coder=coder,
    )


class TestExactRoundTrip:
    @settings(max_examples=60, deadline=None)
    @given(
        height=SMALL_SIDE,
        width=SMALL_SIDE,
        colour_input=st.booleans(),
        layout=st.sampled_from(ALL_LAYOUTS),
        seed=st.integers(0, 2**32 - 1),
        data=st.data(),
        meta=metadata,
        coder=CODERS,
    )
    @fixed(700, 1000, colour=True, layout=None, seed=1, coder=1).via("largest colour image, 4:2:0")
    @fixed(700, 1000, colour=True, layout=None, seed=1, coder=2).via(
        "largest colour image, 4:2:0, coder 2"
    )
    @fixed(699, 999, colour=False, layout=Layout.YCBCR444, seed=2, coder=2).via(
        "large odd gray as 4:4:4, coder 2"
    )
    @fixed(699, 1, colour=True, layout=Layout.GRAY, seed=3, coder=1).via(
        "colour as gray, one column"
    )
    @fixed(1, 1, colour=True, layout=None, seed=4, coder=1).via("one pixel")
    @fixed(1, 1, colour=False, layout=None, seed=4, coder=2).via("one gray pixel, coder 2")
    def test_decode_returns_exactly_the_retained_quantised_coefficients(
        self,
        *,
        height: int,
        width: int,
        colour_input: bool,
        layout: Layout | None,
        seed: int,
        data: st.DataObject | None,
        meta: dict[str, Any],
        coder: int,
    ) -> None:
        pixels = synthetic_image(height, width, colour_input, seed)
        profile = (
            data.draw(profiles(layout), label="profile")
            if data is not None
            else Profile.lossless(90, layout=layout)
        )
        image_id = meta["image_id"] if seed % 2 else str(meta["image_id"])

        payload = encode(
            pixels,
            profile,
            device_id=meta["device_id"],
            image_id=image_id,
            captured_at=meta["captured_at"],
            coder=coder,
        )
        decoded = decode(payload)

        layout_used = coded_layout(profile, pixels)
        assert decoded.image_id == meta["image_id"]
        assert decoded.device_id == meta["device_id"]
        assert decoded.captured_at == meta["captured_at"]
        assert decoded.captured_at.tzinfo is not None
        assert (decoded.width, decoded.height) == (width, height)
        assert decoded.profile is profile.kind
        assert decoded.layout is layout_used
        assert decoded.quality == profile.quality
        assert decoded.complete
        assert decode_header(payload).coder == coder
        assert decoded.payload_bytes == len(payload)
        assert decoded.retention == expected_retention(profile, layout_used)
        assert [c.shape[:2] for c in decoded.coefficients] == plane_blocks(
            width, height, layout_used
        )
        assert_same_coefficients(decoded, sender_coefficients(pixels, profile))
        for channel, kept in zip(decoded.coefficients, decoded.retention, strict=True):
            assert not channel[:, :, kept.keep :].any()
        assert_reconstruction_shape(decoded)

    @settings(max_examples=15, deadline=None)
    @given(
        height=st.integers(8, 48),
        width=st.integers(8, 48),
        colour_input=st.booleans(),
        layout=st.sampled_from(ALL_LAYOUTS),
        seed=st.integers(0, 2**32 - 1),
        slack=st.floats(1.0, 4.0),
        coder=CODERS,
    )
    @example(
        height=700, width=1000, colour_input=True, layout=None, seed=5, slack=1.5, coder=1
    ).via("largest colour image")
    def test_adaptive_fits_its_budget_and_round_trips(
        self,
        *,
        height: int,
        width: int,
        colour_input: bool,
        layout: Layout | None,
        seed: int,
        slack: float,
        coder: int,
    ) -> None:
        pixels = synthetic_image(height, width, colour_input, seed)
        layout_used = coded_layout(Profile.lossless(layout=layout), pixels)
        # The coarsest setting the rate control may choose, scaled up: a feasible budget.
        max_bytes = max(64, int(coarsest_bytes(pixels, layout_used) * slack))

        payload = encode(pixels, Profile.adaptive(max_bytes, layout=layout), coder=coder)
        decoded = decode(payload)

        assert len(payload) <= max_bytes
        assert decoded.profile is ProfileKind.ADAPTIVE
        assert decoded.layout is layout_used
        assert decoded.quality is None  # a budget promises no quality
        assert_reencodes_to(payload, decoded)

    @settings(max_examples=10, deadline=None)
    @given(
        height=st.integers(1, 48),
        width=st.integers(1, 48),
        colour_input=st.booleans(),
        layout=st.sampled_from(ALL_LAYOUTS),
        seed=st.integers(0, 2**32 - 1),
        quality=st.integers(1, 100),
        coder=CODERS,
    )
    def test_auto_sends_what_its_choice_quantised(
        self,
        *,
        height: int,
        width: int,
        colour_input: bool,
        layout: Layout | None,
        seed: int,
        quality: int,
        coder: int,
    ) -> None:
        pixels = synthetic_image(height, width, colour_input, seed)
        layout_used = coded_layout(Profile.auto(layout=layout), pixels)

        payload = encode(pixels, Profile.auto(quality, layout=layout), coder=coder)
        decoded = decode(payload)

        assert decoded.profile is ProfileKind.AUTO
        assert decoded.quality == quality
        assert decoded.reference_jpeg_bytes == reference_jpeg_bytes(pixels, quality)
        chosen = choose_auto(transform(pixels, layout_used), quality)
        assert decoded.retention == chosen.retention
        assert_same_coefficients(decoded, chosen)
        assert_reencodes_to(payload, decoded)
        assert_reconstruction_shape(decoded)

    def test_adaptive_with_an_impossible_budget_says_so(self) -> None:
        pixels = synthetic_image(256, 256, True, seed=9)
        with pytest.raises(ValueError, match=r"max_bytes=100 is too small for a 256x256 image"):
            encode(pixels, Profile.adaptive(100))

    @pytest.mark.parametrize("max_bytes", [63, 0, -5])
    def test_adaptive_budget_below_a_header_is_refused_up_front(self, max_bytes: int) -> None:
        with pytest.raises(ValueError, match="max_bytes >= 64"):
            Profile.adaptive(max_bytes)


class TestTruncation:
    @settings(max_examples=25, deadline=None)
    @given(
        height=SMALL_SIDE,
        width=SMALL_SIDE,
        colour_input=st.booleans(),
        layout=st.sampled_from(ALL_LAYOUTS),
        seed=st.integers(0, 2**32 - 1),
        data=st.data(),
        coder=CODERS,
    )
    def test_truncate_equals_the_full_decode_with_later_bands_zeroed(
        self,
        *,
        height: int,
        width: int,
        colour_input: bool,
        layout: Layout | None,
        seed: int,
        data: st.DataObject,
        coder: int,
    ) -> None:
        pixels = synthetic_image(height, width, colour_input, seed)
        profile = data.draw(profiles(layout), label="profile")
        payload = encode(pixels, profile, coder=coder)
        full = decode(payload)
        bands = max(kept.keep for kept in full.retention)
        keep = data.draw(st.integers(1, bands), label="keep")

        coarse = decode(truncate(payload, keep))

        expected = without_bands_from(full.coefficients, keep)
        for got, want in zip(coarse.coefficients, expected, strict=True):
            assert np.array_equal(got, want)
        assert coarse.retention == tuple(
            Retention(min(k.keep, keep), k.dc_mode, k.anchor_every) for k in full.retention
        )
        assert coarse.complete
        assert (coarse.image_id, coarse.width, coarse.height) == (
            full.image_id,
            full.width,
            full.height,
        )
        assert_reconstruction_shape(coarse)

    @settings(max_examples=25, deadline=None)
    @given(
        height=SMALL_SIDE,
        width=SMALL_SIDE,
        colour_input=st.booleans(),
        layout=st.sampled_from(ALL_LAYOUTS),
        seed=st.integers(0, 2**32 - 1),
        data=st.data(),
    )
    def test_a_stream_cut_at_a_band_boundary_decodes_its_complete_bands(
        self,
        *,
        height: int,
        width: int,
        colour_input: bool,
        layout: Layout | None,
        seed: int,
        data: st.DataObject,
    ) -> None:
        pixels = synthetic_image(height, width, colour_input, seed)
        profile = data.draw(profiles(layout), label="profile")
        payload = encode(pixels, profile)
        full = decode(payload)
        bands = len(full.band_offsets) - 1
        complete = data.draw(st.integers(1, bands), label="complete bands")
        extra = data.draw(st.integers(0, 3), label="bytes of the next band")
        if complete < bands:  # a few bytes into the next band, never all of it
            next_band = full.band_offsets[complete + 1] - full.band_offsets[complete]
            extra = min(extra, next_band - 1)
        else:
            extra = 0
        cut = full.band_offsets[complete] + extra

        partial = decode(payload[:cut], allow_partial=True)

        assert not partial.complete
        expected = without_bands_from(full.coefficients, complete)
        for got, want in zip(partial.coefficients, expected, strict=True):
            assert np.array_equal(got, want)
        assert tuple(k.keep for k in partial.retention) == tuple(
            min(k.keep, complete) for k in full.retention
        )
        assert partial.band_offsets == full.band_offsets[: complete + 1]
        assert_reconstruction_shape(partial)

    def test_truncate_refuses_band_counts_outside_the_payload(self) -> None:
        payload = encode(synthetic_image(16, 16, True, 1), Profile.lowpass(90, 15, 6))
        for bands in (0, 16):
            with pytest.raises(ValueError, match=r"bands must be in 1\.\.15"):
                truncate(payload, bands)


def _sample(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"))


QUALITY_PROFILES = {
    "lossless-q90": Profile.lossless(90),
    "lowpass-q90-15-6": Profile.lowpass(90, 15, 6),
}


def _golden() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(GOLDEN.read_text())
    return loaded


class TestQualityBands:
    """Zero-filled PSNR on the sample images, pinned to the golden values."""

    def test_every_sample_has_golden_values(self) -> None:
        golden = _golden()["profiles"]
        assert sorted(golden) == sorted(QUALITY_PROFILES)
        for entry in golden.values():
            assert sorted(entry["psnr_db"]) == [p.stem for p in SAMPLES]

    @pytest.mark.parametrize("name", sorted(QUALITY_PROFILES))
    def test_zero_filled_psnr_matches_the_golden_values(self, name: str) -> None:
        golden = _golden()
        entry = golden["profiles"][name]
        measured = {
            path.stem: psnr(
                _sample(path), decode(encode(_sample(path), QUALITY_PROFILES[name])).to_rgb()
            )
            for path in SAMPLES
        }

        assert float(np.mean(list(measured.values()))) > entry["mean_floor_db"]
        for stem, value in measured.items():
            assert value > entry["floor_db"], stem
            assert value == pytest.approx(entry["psnr_db"][stem], abs=golden["tolerance_db"]), stem


def test_adaptive_falls_back_to_the_coarsest_setting_when_only_it_fits() -> None:
    for seed in (1, 2, 3):
        pixels = synthetic_image(17, 22, False, seed)
        max_bytes = coarsest_bytes(pixels, Layout.GRAY)
        payload = encode(pixels, Profile.adaptive(max_bytes, layout=Layout.GRAY))
        assert len(payload) <= max_bytes


def test_adaptive_says_when_even_the_coarsest_setting_does_not_fit() -> None:
    pixels = synthetic_image(17, 22, False, 1)
    max_bytes = coarsest_bytes(pixels, Layout.GRAY) - 1
    with pytest.raises(ValueError, match="too small for a 22x17 image"):
        encode(pixels, Profile.adaptive(max_bytes, layout=Layout.GRAY))
