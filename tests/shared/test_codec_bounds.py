"""What the encoder writes, the decoder reads: both sides refuse the same things.

DC mode 1 ("dropped") is reserved: no profile produces it, the encoder refuses it and the
decoder names it. Coefficients are bounded by one constant, ``entropy.MAX_COEFFICIENT``:
at the bound a payload round-trips, past it the encoder refuses before writing a byte.
"""

from __future__ import annotations

import struct
import uuid
import zlib

import numpy as np
import numpy.typing as npt
import pytest

from shared.codec import (
    DcMode,
    Layout,
    PayloadError,
    Profile,
    ProfileKind,
    Retention,
    decode,
    decode_header,
    encode,
    entropy,
)
from shared.codec.coefficients import CoefficientImage
from shared.codec.entropy import MAX_COEFFICIENT
from shared.codec.payload import encode_coefficients
from shared.codec.quantisation import standard_tables

DEVICE = "cam-01"
RETENTION_AT = 39 + len(DEVICE)  # fixed header, then the device id (see wire.py)
CRC_SIZE = 4
# Big enough that a band of the largest tokens needs many plane words: the decoder's
# decompression bound is per token, so a handful of blocks would not test it.
BLOCKS = (48, 64)


def _seal(
    channels: list[npt.NDArray[np.int32]],
    retention: tuple[Retention, ...],
    layout: Layout = Layout.GRAY,
) -> bytes:
    blocks_y, blocks_x = channels[0].shape[:2]
    luma, chroma = standard_tables(90)
    tables = (luma,) if layout is Layout.GRAY else (luma, chroma, chroma)
    image = CoefficientImage(blocks_x * 8, blocks_y * 8, layout, tuple(channels), tables, retention)
    return encode_coefficients(
        image,
        ProfileKind.LOSSLESS,
        quality=90,
        explicit_tables=False,
        device_id=DEVICE,
        image_id=uuid.UUID(int=7),
        captured_at_us=0,
    )


def _gray_payload() -> bytes:
    pixels = (np.arange(256, dtype=np.uint8).reshape(16, 16) * 7) % 251
    return encode(pixels.astype(np.uint8), Profile.lossless(90), device_id=DEVICE)


def _with_dc_mode(payload: bytes, mode: int) -> bytes:
    body = bytearray(payload[:-CRC_SIZE])
    body[RETENTION_AT + 1] = mode
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


def _checkerboard(value: int) -> npt.NDArray[np.int32]:
    """Every coefficient at +-value, alternating block by block and band by band, so that
    each DC differs from its neighbours by twice the bound (the largest DC residual)."""
    y, x, k = np.indices((*BLOCKS, 64))
    sign = np.where((y + x + k) % 2 == 0, 1, -1)
    return (sign * value).astype(np.int32)


class TestDroppedDcIsReserved:
    def test_the_encoder_refuses_a_dropped_dc_before_writing_anything(self) -> None:
        channel = np.zeros((*BLOCKS, 64), dtype=np.int32)
        channel[..., 1] = 3
        with pytest.raises(ValueError, match=r"DC mode 1 \(dropped\) is reserved"):
            _seal([channel], (Retention(64, DcMode.DROPPED),))

    def test_the_encoder_refuses_it_on_any_channel(self) -> None:
        luma = np.zeros((2, 2, 64), dtype=np.int32)
        chroma = np.zeros((1, 1, 64), dtype=np.int32)
        retention = (Retention(15), Retention(6, DcMode.DROPPED), Retention(6))
        with pytest.raises(ValueError, match="reserved"):
            _seal([luma, chroma, chroma], retention, Layout.YCBCR420)

    @pytest.mark.parametrize("partial", [False, True])
    def test_a_payload_saying_dc_mode_1_is_refused_with_its_reason(self, partial: bool) -> None:
        forged = _with_dc_mode(_gray_payload(), DcMode.DROPPED)
        with pytest.raises(PayloadError, match=r"DC mode 1 \(dropped\) is reserved") as caught:
            decode(forged, allow_partial=partial)
        assert caught.value.offset == RETENTION_AT + 1

    def test_reading_only_the_header_refuses_it_too(self) -> None:
        with pytest.raises(PayloadError, match="reserved"):
            decode_header(_with_dc_mode(_gray_payload(), DcMode.DROPPED))

    @pytest.mark.parametrize(
        "profile",
        [
            Profile.lowpass(75, 15, 6),
            Profile.paper(50, 4),
            Profile.lossless(90),
            Profile.adaptive(4000),
            Profile.auto(75),
        ],
        ids=lambda p: p.kind.name.lower(),
    )
    def test_no_profile_produces_it(self, profile: Profile) -> None:
        rng = np.random.default_rng(3)
        pixels = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
        decoded = decode(encode(pixels, profile, device_id=DEVICE))
        assert {k.dc_mode for k in decoded.retention} <= {DcMode.ALL, DcMode.ANCHORS}


class TestCoefficientBound:
    def test_the_bound_leaves_room_for_dc_prediction(self) -> None:
        # A DC residual is the difference of two coefficients: twice the bound must still
        # be a token the decoder reads.
        assert 2 * MAX_COEFFICIENT < 1 << entropy.MAX_TOKEN

    @pytest.mark.parametrize("dc_mode", [DcMode.ALL, DcMode.ANCHORS])
    def test_coefficients_at_the_bound_round_trip(self, dc_mode: DcMode) -> None:
        channel = _checkerboard(MAX_COEFFICIENT)
        retention = Retention(64, dc_mode, 3 if dc_mode is DcMode.ANCHORS else 0)
        channel[..., 0][~retention.anchor_mask(*BLOCKS)] = 0
        decoded = decode(_seal([channel], (retention,)))
        assert np.array_equal(decoded.coefficients[0], channel)

    def test_a_band_of_the_largest_magnitudes_round_trips(self) -> None:
        channel = np.zeros((*BLOCKS, 64), dtype=np.int32)
        channel[..., 1] = -MAX_COEFFICIENT
        channel[..., 0] = MAX_COEFFICIENT
        decoded = decode(_seal([channel], (Retention(2),)))
        assert np.array_equal(decoded.coefficients[0], channel)

    @pytest.mark.parametrize("band", [0, 1, 63])
    @pytest.mark.parametrize("sign", [1, -1])
    def test_one_past_the_bound_is_refused_by_the_encoder(self, band: int, sign: int) -> None:
        channel = np.zeros((*BLOCKS, 64), dtype=np.int32)
        channel[5, 7, band] = sign * (MAX_COEFFICIENT + 1)
        with pytest.raises(ValueError, match=rf"{MAX_COEFFICIENT + 1}.*{MAX_COEFFICIENT}"):
            _seal([channel], (Retention(64),))

    def test_the_most_negative_int32_is_refused_not_wrapped(self) -> None:
        channel = np.zeros((2, 2, 64), dtype=np.int32)
        channel[1, 1, 4] = np.iinfo(np.int32).min
        with pytest.raises(ValueError, match="exceeds"):
            _seal([channel], (Retention(64),))

    def test_the_decoder_refuses_a_coefficient_past_the_bound(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # An encoder with a looser bound writes tokens the decoder still parses; the values
        # they carry are past the bound and named as such.
        channel = np.zeros((4, 4, 64), dtype=np.int32)
        channel[2, 3, 9] = MAX_COEFFICIENT + 1
        monkeypatch.setattr(entropy, "MAX_COEFFICIENT", (1 << entropy.MAX_TOKEN) - 1)
        payload = _seal([channel], (Retention(64),))
        monkeypatch.undo()
        with pytest.raises(PayloadError, match="exceeds"):
            decode(payload)

    def test_the_decoder_refuses_dcs_that_add_up_past_the_bound(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        # Each DC residual is a valid token, but their running sum leaves the bound.
        channel = np.zeros((1, 8, 64), dtype=np.int32)
        channel[0, :, 0] = np.arange(8) * 4000  # up to 28000: raw DCs still fit a token
        monkeypatch.setattr(entropy, "MAX_COEFFICIENT", (1 << entropy.MAX_TOKEN) - 1)
        payload = _seal([channel], (Retention(1),))
        monkeypatch.undo()
        with pytest.raises(PayloadError, match="exceeds"):
            decode(payload)
