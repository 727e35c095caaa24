"""Each kind of PayloadError is raised for a payload of that kind, at the field it names."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from shared.codec import DecodeLimits, PayloadError, PayloadErrorKind, Profile, decode, encode, wire

Kind = PayloadErrorKind


@pytest.fixture(scope="module")
def payload() -> bytes:
    pixels = np.random.default_rng(3).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return encode(pixels, Profile.lowpass(), device_id="cam")


def _kind(data: bytes, **options: object) -> PayloadError:
    with pytest.raises(PayloadError) as caught:
        decode(data, **options)  # type: ignore[arg-type]
    return caught.value


def _resealed(payload: bytes, at: int, value: int) -> bytes:
    """The payload with one byte changed and a checksum that matches again."""
    data = bytearray(payload[: -wire.CRC_SIZE])
    data[at] = value
    return wire.seal(bytes(data))


def test_truncated(payload: bytes) -> None:
    assert _kind(payload[:4]).kind is Kind.TRUNCATED
    cut = _kind(wire.seal(payload[:20]))  # checksum fine, header cut inside the fixed part
    assert (cut.kind, cut.offset) == (Kind.TRUNCATED, 0)
    assert _kind(payload[:20], allow_partial=True).kind is Kind.TRUNCATED


def test_bad_magic(payload: bytes) -> None:
    error = _kind(b"JFIF" + payload[4:])
    assert (error.kind, error.offset) == (Kind.BAD_MAGIC, wire.OFFSET.magic)


def test_bad_version(payload: bytes) -> None:
    error = _kind(_resealed(payload, wire.OFFSET.version, 3))
    assert (error.kind, error.offset) == (Kind.BAD_VERSION, wire.OFFSET.version)


def test_crc_mismatch(payload: bytes) -> None:
    data = bytearray(payload)
    data[len(data) // 2] ^= 0xFF
    error = _kind(bytes(data))
    assert (error.kind, error.offset) == (Kind.CRC, len(data) - wire.CRC_SIZE)


def test_over_limits(payload: bytes) -> None:
    assert _kind(payload, limits=DecodeLimits(max_payload_bytes=10)).kind is Kind.LIMIT
    error = _kind(payload, limits=DecodeLimits(max_width=16))
    assert (error.kind, error.offset) == (Kind.LIMIT, wire.OFFSET.width)


def test_corrupt_body(payload: bytes) -> None:
    body = bytearray(payload[: -wire.CRC_SIZE])
    start = wire.unpack_header(memoryview(bytes(body))).body_offset
    body[start:] = b"\xff" * (len(body) - start)
    assert _kind(wire.seal(bytes(body))).kind is Kind.INVALID


def test_invalid_header_fields_name_their_offset(payload: bytes) -> None:
    quality = _kind(_resealed(payload, wire.OFFSET.quality, 0))
    assert (quality.kind, quality.offset) == (Kind.INVALID, wire.OFFSET.quality)
    coder = _kind(_resealed(payload, wire.OFFSET.coder, 9))
    assert (coder.kind, coder.offset) == (Kind.INVALID, wire.OFFSET.coder)


def test_offsets_follow_the_struct_layout() -> None:
    assert wire.OFFSET._fields[-1] == "device_len"
    assert len(wire.OFFSET) == len(wire.FixedOffsets._fields)
    assert wire.OFFSET.version == len(wire.MAGIC)
    assert (wire.OFFSET.coder, wire.OFFSET.captured_at, wire.OFFSET.width) == (7, 24, 32)
    assert (wire.OFFSET.quality, wire.OFFSET.flags, wire.OFFSET.device_len) == (36, 37, 38)
    header = wire.pack_header(
        wire.unpack_header(
            memoryview(encode(np.zeros((8, 8), np.uint8), Profile.lowpass()))
        ).header,
        [1],
    )
    assert struct.unpack_from(">H", header, wire.OFFSET.width) == (8,)


def test_kind_is_required() -> None:
    with pytest.raises(TypeError):
        PayloadError(reason="a reason alone", offset=3)  # type: ignore[call-arg]
