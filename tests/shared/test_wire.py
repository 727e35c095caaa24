"""Payload v1 byte by byte, as the table in ``shared/codec/wire.py`` lays it out."""

from __future__ import annotations

import struct
import uuid
import zlib
from datetime import UTC, datetime

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import Layout, PayloadError, Profile, decode, decode_header, encode, truncate
from shared.codec.coefficients import Retention
from shared.codec.frontend import analyse, channel_tables
from shared.codec.profiles import DcMode
from shared.codec.reference import reference_jpeg_bytes
from shared.codec.varint import read_varint, write_varint

IMAGE_ID = uuid.UUID("0190f0e2-7b3c-7def-8abc-0123456789ab")
IMAGE_ID_BYTES = bytes.fromhex("0190f0e27b3c7def8abc0123456789ab")
CAPTURED_AT = datetime(2024, 7, 15, 12, 34, 56, 789012, tzinfo=UTC)
CAPTURED_AT_BYTES = bytes.fromhex("00061d4874ecc614")  # 1_721_046_896_789_012 us, i64 BE
DEVICE = "cam-01"
CRC_SIZE = 4


def _gray_8x8() -> npt.NDArray[np.uint8]:
    return (np.arange(64, dtype=np.uint8) * 4).reshape(8, 8)


def _colour_16x16() -> npt.NDArray[np.uint8]:
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    return np.stack([ramp, ramp.T, 255 - ramp], axis=2)


def _encode(pixels: npt.NDArray[np.uint8], profile: Profile) -> bytes:
    return encode(pixels, profile, device_id=DEVICE, image_id=IMAGE_ID, captured_at=CAPTURED_AT)


def _leb128(value: int) -> bytes:
    """Reference unsigned LEB128, written independently of the codec's."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_leb128(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        shift += 7
        pos += 1
        if not byte & 0x80:
            return value, pos


def _reseal(body: bytes | bytearray) -> bytes:
    """Recompute the CRC-32 trailer over everything before it."""
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


def _forge(payload: bytes, offset: int, replacement: bytes) -> bytes:
    """The payload with bytes at ``offset`` overwritten and its checksum recomputed."""
    body = bytearray(payload[:-CRC_SIZE])
    body[offset : offset + len(replacement)] = replacement
    return _reseal(body)


def _fixed_header(
    profile: int, layout: int, width: int, height: int, *, quality: int, flags: int
) -> bytes:
    return (
        b"DCTL"  # magic
        + bytes([1])  # version
        + bytes([profile])  # 0 lowpass, 1 paper, 2 adaptive, 3 lossless
        + bytes([layout])  # 0 gray, 1 YCbCr 4:2:0, 2 YCbCr 4:4:4
        + bytes([1])  # entropy coder 1
        + IMAGE_ID_BYTES
        + CAPTURED_AT_BYTES
        + width.to_bytes(2, "big")
        + height.to_bytes(2, "big")
        + bytes([quality])
        + bytes([flags])
        + bytes([len(DEVICE)])
        + DEVICE.encode()
    )


def _split_bands(payload: bytes, at: int) -> tuple[list[int], int]:
    """Band count and varint lengths starting at ``at``; returns (lengths, body offset)."""
    count = payload[at]
    pos = at + 1
    sizes = []
    for _ in range(count):
        size, pos = _read_leb128(payload, pos)
        sizes.append(size)
    return sizes, pos


LAYOUT_CASES = [
    pytest.param(
        _gray_8x8(),
        Profile.lossless(90),
        _fixed_header(3, 0, 8, 8, quality=90, flags=0) + bytes([64, 0, 0]),
        64,
        id="gray-lossless",
    ),
    pytest.param(
        _colour_16x16(),
        Profile.lowpass(75, 15, 6),
        _fixed_header(0, 1, 16, 16, quality=75, flags=0) + bytes([15, 0, 0, 6, 0, 0, 6, 0, 0]),
        15,
        id="420-lowpass",
    ),
    pytest.param(
        _colour_16x16()[:9, :13],
        Profile.paper(50, 3, layout=Layout.YCBCR444),
        _fixed_header(1, 2, 13, 9, quality=50, flags=0) + bytes([64, 2, 3]) * 3,
        64,
        id="444-paper-odd-size",
    ),
]


class TestHeaderLayout:
    @pytest.mark.parametrize(("pixels", "profile", "expected_header", "bands"), LAYOUT_CASES)
    def test_header_bytes_follow_the_documented_layout(
        self,
        pixels: npt.NDArray[np.uint8],
        profile: Profile,
        expected_header: bytes,
        bands: int,
    ) -> None:
        payload = _encode(pixels, profile)

        assert payload[: len(expected_header)] == expected_header
        assert payload[len(expected_header)] == bands
        sizes, body_offset = _split_bands(payload, len(expected_header))
        assert len(sizes) == bands
        assert body_offset + sum(sizes) + CRC_SIZE == len(payload)

    @pytest.mark.parametrize(("pixels", "profile", "expected_header", "bands"), LAYOUT_CASES)
    def test_band_lengths_locate_each_band_of_the_body(
        self,
        pixels: npt.NDArray[np.uint8],
        profile: Profile,
        expected_header: bytes,
        bands: int,
    ) -> None:
        payload = _encode(pixels, profile)
        sizes, body_offset = _split_bands(payload, len(expected_header))

        offsets = decode(payload).band_offsets

        assert offsets == tuple(body_offset + int(s) for s in np.cumsum([0, *sizes]))

    @pytest.mark.parametrize(("pixels", "profile", "expected_header", "bands"), LAYOUT_CASES)
    def test_trailer_is_the_crc32_of_everything_before_it(
        self,
        pixels: npt.NDArray[np.uint8],
        profile: Profile,
        expected_header: bytes,
        bands: int,
    ) -> None:
        payload = _encode(pixels, profile)
        assert payload[-CRC_SIZE:] == struct.pack(">I", zlib.crc32(payload[:-CRC_SIZE]))

    def test_adaptive_payload_says_adaptive_and_carries_its_chosen_tables(self) -> None:
        pixels = _colour_16x16()
        payload = _encode(pixels, Profile.adaptive(5000))
        decoded = decode(payload)

        assert payload[5] == 2
        assert payload[36:38] == bytes([0, 1])  # no promised quality, explicit tables
        assert decoded.quality is None
        assert decoded.reference_jpeg_bytes is None

    def test_auto_payload_carries_its_promise_and_the_reference_jpeg_size(self) -> None:
        pixels = _colour_16x16()
        payload = _encode(pixels, Profile.auto(60))
        decoded = decode(payload)

        assert payload[5] == 4
        assert payload[36:38] == bytes([60, 0b11])  # quality 60, explicit tables + reference
        assert decoded.quality == 60
        assert decoded.reference_jpeg_bytes == reference_jpeg_bytes(pixels, 60)
        # The reference size is the varint right after the two 8-bit tables.
        tables_end = 39 + len(DEVICE) + 9 + 1 + 2 * 65
        assert _read_leb128(payload, tables_end)[0] == decoded.reference_jpeg_bytes

    def test_a_header_with_a_reference_size_but_custom_tables_promises_nothing(self) -> None:
        pixels = _colour_16x16()
        decoded = decode(_forge(_encode(pixels, Profile.auto(60)), 36, bytes([0])))
        assert decoded.quality is None
        assert decoded.reference_jpeg_bytes is not None

    def test_capture_times_before_the_epoch_are_negative(self) -> None:
        moment = datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
        payload = encode(_gray_8x8(), Profile.lossless(), captured_at=moment)

        assert payload[24:32] == bytes.fromhex("ffffffffffffffff")  # -1 us
        assert decode(payload).captured_at == moment

    def test_truncate_rewrites_band_count_and_retention(self) -> None:
        pixels = _colour_16x16()
        payload = _encode(pixels, Profile.lowpass(75, 15, 6))
        fixed = _fixed_header(0, 1, 16, 16, quality=75, flags=0)

        cut = truncate(payload, 4)

        assert cut[: len(fixed)] == fixed
        assert cut[len(fixed) : len(fixed) + 9] == bytes([4, 0, 0, 4, 0, 0, 4, 0, 0])
        sizes, body_offset = _split_bands(cut, len(fixed) + 9)
        full_sizes, full_body = _split_bands(payload, len(fixed) + 9)
        assert sizes == full_sizes[:4]
        assert cut[body_offset:-CRC_SIZE] == payload[full_body : full_body + sum(sizes)]
        assert cut[-CRC_SIZE:] == struct.pack(">I", zlib.crc32(cut[:-CRC_SIZE]))


def _wide_tables() -> tuple[tuple[int, ...], tuple[int, ...]]:
    luma = tuple(1 + 3 * i for i in range(64))  # 1..190: fits in u8
    chroma = tuple(200 + 37 * i for i in range(64))  # 200..2531: needs u16
    return luma, chroma


class TestExplicitTables:
    def test_tables_follow_the_retention_with_a_precision_byte_each(self) -> None:
        luma, chroma = _wide_tables()
        payload = _encode(_colour_16x16(), Profile.lowpass(tables=(luma, chroma)))

        # quality 0 and flag bit 0: explicit tables follow the retention
        fixed = _fixed_header(0, 1, 16, 16, quality=0, flags=1)
        retention = bytes([15, 0, 0, 6, 0, 0, 6, 0, 0])
        tables = (
            bytes([2])  # table count
            + bytes([0])  # u8 precision
            + bytes(luma)
            + bytes([1])  # u16 precision
            + b"".join(step.to_bytes(2, "big") for step in chroma)
        )
        expected = fixed + retention + tables + bytes([15])
        assert payload[: len(expected)] == expected

    def test_gray_payloads_carry_one_table(self) -> None:
        luma, chroma = _wide_tables()
        payload = _encode(_gray_8x8(), Profile.lossless(tables=(chroma, luma)))

        fixed = _fixed_header(3, 0, 8, 8, quality=0, flags=1)
        table = bytes([1, 1]) + b"".join(step.to_bytes(2, "big") for step in chroma)
        expected = fixed + bytes([64, 0, 0]) + table + bytes([64])
        assert payload[: len(expected)] == expected

    @pytest.mark.parametrize("layout", [Layout.GRAY, Layout.YCBCR420, Layout.YCBCR444])
    def test_custom_tables_round_trip_with_u16_precision(self, layout: Layout) -> None:
        luma, chroma = _wide_tables()
        profile = Profile.lowpass(tables=(luma, chroma), layout=layout)
        pixels = _colour_16x16()

        decoded = decode(_encode(pixels, profile))

        assert decoded.quality is None
        expected_tables = channel_tables(
            layout,
            np.array(luma, np.uint16).reshape(8, 8),
            np.array(chroma, np.uint16).reshape(8, 8),
        )
        assert len(decoded.tables) == layout.channels
        for got, want in zip(decoded.tables, expected_tables, strict=True):
            assert got.dtype == np.uint16
            assert np.array_equal(got, want)
        keeps = (15,) if layout is Layout.GRAY else (15, 6, 6)
        expected = analyse(pixels, layout, expected_tables, tuple(Retention(k) for k in keeps))
        for got_channel, want_channel in zip(decoded.coefficients, expected.channels, strict=True):
            assert np.array_equal(got_channel, want_channel)

    def test_the_largest_step_survives(self) -> None:
        tables = ((65535,) * 64, (1,) * 64)
        decoded = decode(_encode(_colour_16x16(), Profile.lossless(tables=tables)))
        assert int(decoded.tables[0].max()) == 65535
        assert int(decoded.tables[1].max()) == 1


class TestVersionAndMagic:
    def test_a_version_3_payload_names_its_version(self) -> None:
        payload = _forge(_encode(_gray_8x8(), Profile.lossless()), 4, bytes([3]))

        with pytest.raises(PayloadError, match="version 3") as caught:
            decode(payload)
        assert caught.value.offset == 4

    def test_the_version_is_checked_before_the_checksum(self) -> None:
        # A later version may lay out its body and trailer differently; this reader must say
        # "unsupported version", not "corrupted".
        payload = bytearray(_encode(_gray_8x8(), Profile.lossless()))
        payload[4] = 3

        with pytest.raises(PayloadError, match="version 3"):
            decode(bytes(payload))
        with pytest.raises(PayloadError, match="version 3"):
            decode(b"DCTL\x03" + bytes(40))

    def test_each_coder_travels_only_in_its_own_version(self) -> None:
        # Coder 1's bands under a v2 header (the CRC recomputed) are refused by name.
        payload = _forge(_encode(_gray_8x8(), Profile.lossless()), 4, bytes([2]))
        with pytest.raises(PayloadError, match="coder 1 does not travel in payload version 2"):
            decode(payload)

    def test_the_magic_is_checked_before_the_checksum(self) -> None:
        with pytest.raises(PayloadError, match="magic"):
            decode(b"\x89PNG\r\n\x1a\n" + bytes(60))

    def test_a_version_3_payload_is_refused_in_partial_mode_too(self) -> None:
        payload = _encode(_gray_8x8(), Profile.lossless())
        with pytest.raises(PayloadError, match="version 3"):
            decode(b"DCTL\x03" + payload[5:], allow_partial=True)


def _payload() -> bytes:
    return _encode(_colour_16x16(), Profile.lowpass(75, 15, 6))


# Offsets into the header of ``_payload()``: fixed part 39 bytes, device id 6 bytes.
RETENTION_AT = 39 + len(DEVICE)
BAND_COUNT_AT = RETENTION_AT + 9


class TestHeaderValidation:
    @pytest.mark.parametrize(
        ("offset", "replacement", "message"),
        [
            (5, bytes([5]), "unknown profile or layout"),
            (6, bytes([3]), "unknown profile or layout"),
            (7, bytes([9]), "unknown entropy coder 9"),
            (32, bytes([0, 0]), "is empty"),
            (34, bytes([0, 0]), "is empty"),
            (36, bytes([0]), "quality 0"),
            (36, bytes([101]), "quality 101"),
            (37, bytes([4]), "unknown header flags"),
            (38, bytes([0]), "device id is empty"),
            (39, b"\xff", "not UTF-8"),
            (RETENTION_AT, bytes([0]), "invalid retention keep=0"),
            (RETENTION_AT, bytes([65]), "invalid retention keep=65"),
            (RETENTION_AT + 1, bytes([3]), "invalid retention"),
            (RETENTION_AT + 1, bytes([2, 0]), "invalid retention"),
            (RETENTION_AT + 2, bytes([4]), "invalid retention"),
            (BAND_COUNT_AT, bytes([0]), "band count 0"),
            (BAND_COUNT_AT, bytes([16]), "band count 16"),
        ],
    )
    def test_each_malformed_field_is_named(
        self, offset: int, replacement: bytes, message: str
    ) -> None:
        with pytest.raises(PayloadError, match=message):
            decode(_forge(_payload(), offset, replacement))

    @pytest.mark.parametrize(
        ("replacement", "message"),
        [
            (bytes([3]), "table count 3"),
            (bytes([0]), "table count 0"),
            (bytes([2, 2]), "table precision 2"),
            (bytes([2, 0, 0]), "zero step"),
        ],
    )
    def test_malformed_explicit_tables_are_named(self, replacement: bytes, message: str) -> None:
        luma, chroma = _wide_tables()
        payload = _encode(_colour_16x16(), Profile.lowpass(tables=(luma, chroma)))
        with pytest.raises(PayloadError, match=message):
            decode(_forge(payload, BAND_COUNT_AT, replacement))

    def test_band_lengths_must_add_up_to_the_body(self) -> None:
        longer_body = _reseal(_payload()[:-CRC_SIZE] + b"\x00")
        with pytest.raises(PayloadError, match="band lengths add up"):
            decode(longer_body)

    def test_a_flipped_bit_fails_the_checksum(self) -> None:
        payload = bytearray(_payload())
        payload[60] ^= 0x10
        with pytest.raises(PayloadError, match="checksum mismatch"):
            decode(bytes(payload))

    def test_retention_dc_modes_decode_to_their_enum(self) -> None:
        decoded = decode(_encode(_colour_16x16(), Profile.paper(50, 4)))
        assert decoded.retention == (Retention(64, DcMode.ANCHORS, 4),) * 3


VARINT_CASES = [
    (0, b"\x00"),
    (1, b"\x01"),
    (127, b"\x7f"),
    (128, b"\x80\x01"),
    (300, b"\xac\x02"),
    (16383, b"\xff\x7f"),
    (16384, b"\x80\x80\x01"),
    (2**28 - 1, b"\xff\xff\xff\x7f"),
    (2**28, b"\x80\x80\x80\x80\x01"),
    (2**35 - 1, b"\xff\xff\xff\xff\x7f"),
]


class TestVarint:
    @pytest.mark.parametrize(("value", "encoded"), VARINT_CASES)
    def test_encoding_is_unsigned_leb128(self, value: int, encoded: bytes) -> None:
        assert write_varint(value) == encoded
        assert read_varint(memoryview(encoded), 0) == (value, len(encoded))

    @settings(max_examples=200, deadline=None)
    @given(value=st.integers(0, 2**35 - 1), prefix=st.binary(max_size=8), suffix=st.binary())
    def test_round_trip_up_to_five_bytes(self, value: int, prefix: bytes, suffix: bytes) -> None:
        encoded = write_varint(value)
        assert encoded == _leb128(value)
        assert len(encoded) <= 5
        data = memoryview(prefix + encoded + suffix)
        assert read_varint(data, len(prefix)) == (value, len(prefix) + len(encoded))

    def test_a_sixth_byte_is_refused(self) -> None:
        six = b"\x80\x80\x80\x80\x80\x01"  # 2**35, one byte past the limit
        with pytest.raises(PayloadError, match="longer than 5 bytes") as caught:
            read_varint(memoryview(six), 0, base=100)
        assert caught.value.offset == 100

    def test_a_varint_cut_short_is_refused_with_its_offset(self) -> None:
        with pytest.raises(PayloadError, match="ends inside a length field") as caught:
            read_varint(memoryview(b"\x00\x80\x80"), 1, base=10)
        assert caught.value.offset == 13

    @pytest.mark.parametrize("value", [-1, 2**35])
    def test_values_a_reader_would_refuse_cannot_be_written(self, value: int) -> None:
        with pytest.raises(ValueError, match="outside"):
            write_varint(value)


def test_decode_header_reads_the_header_without_the_bands() -> None:
    pixels = _colour_16x16()
    payload = _encode(pixels, Profile.auto(70))
    header = decode_header(payload)
    decoded = decode(payload)
    assert header.reference_jpeg_bytes == decoded.reference_jpeg_bytes
    assert header.quality == 70
    assert header.image_id == decoded.image_id
    with pytest.raises(PayloadError, match="checksum"):
        decode_header(payload[:-1] + bytes([payload[-1] ^ 1]))
