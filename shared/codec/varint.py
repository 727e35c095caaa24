"""LEB128 unsigned varints, as the wire format uses for lengths."""

from __future__ import annotations

from shared.codec.errors import PayloadError, PayloadErrorKind

_MAX_VARINT_BYTES = 5  # lengths are below 2**35, far past any payload limit


def write_varint(value: int) -> bytes:
    if not 0 <= value < 1 << (7 * _MAX_VARINT_BYTES):
        raise ValueError(f"varint {value} is outside 0..2**35-1")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_varint(data: memoryview, pos: int, base: int = 0) -> tuple[int, int]:
    """(value, position after it); ``base`` is added to offsets in error messages."""
    value = 0
    for i in range(_MAX_VARINT_BYTES):
        if pos + i >= len(data):
            raise PayloadError(
                PayloadErrorKind.TRUNCATED, "payload ends inside a length field", base + pos + i
            )
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            return value, pos + i + 1
    raise PayloadError(PayloadErrorKind.INVALID, "length field is longer than 5 bytes", base + pos)
