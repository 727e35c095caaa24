"""Payloads v1 and v2: the bytes on the wire.

The two versions share this header; they differ in the entropy coder of the body, which the
version fixes: v1 is coder 1 (``entropy.py``), v2 coder 2 (``entropy2.py``, context-modelled
rANS with the committed priors ``coder2-priors-v1``). A decoder refuses any other pairing.

All integers are big-endian. ``varint`` is unsigned LEB128.

=======  ===========  ==========================================================
bytes    type         field
=======  ===========  ==========================================================
4        ``b"DCTL"``  magic
1        u8           version (1 or 2); checked before anything else is read
1        u8           profile kind (0 lowpass, 1 paper, 2 adaptive, 3 lossless, 4 auto)
1        u8           layout (0 gray, 1 YCbCr 4:2:0, 2 YCbCr 4:4:4)
1        u8           entropy coder id (1: context-sorted tokens + brotli, with v1;
                      2: context-modelled rANS, with v2)
16       bytes        image id (UUID or ULID, 128 bits)
8        i64          capture time, microseconds since the Unix epoch, UTC
2        u16          width in pixels
2        u16          height in pixels
1        u8           quality 1..100: the quality the Annex K tables were scaled for, or
                      with explicit tables the libjpeg quality the encoder promised to
                      match (auto); 0 for custom tables that promise nothing
1        u8           flags: bit 0 set when explicit tables follow, bit 1 set when the
                      reference JPEG size follows
1        u8           device id length n (1..255)
n        UTF-8        device id
3 per    u8 x 3       per channel: bands kept (1..64), DC mode (0 all, 2 anchors; 1 is
channel               reserved, see below), anchor spacing in blocks (1..255 with anchors,
                      else 0)
[1+]     u8, tables   if flag 0: table count t (1 or 2), then per table a precision
                      byte and the table: 0: 64 x u8 steps, 1: 64 x u16 steps, both
                      in natural order; 2 (v2 only, what v2 encoders write): the
                      first step in zigzag order as a varint, then 63 zigzag-order
                      differences in Exp-Golomb codes, padded to a byte (tablecode.py)
[varint]  varint      if flag 1: bytes of the libjpeg JPEG (Pillow, optimised Huffman,
                      4:2:0) of the same image at ``quality``, measured by the sender
1        u8           bands present B (1..64; fewer than kept when the stream was cut)
...      varint x B   byte length of each band's segment in the body
...      bytes        body: band 0 of every channel, then band 1, ... (see entropy.py)
4        u32          CRC-32 (zlib) of every byte before it
=======  ===========  ==========================================================

Channel c uses table 0 when c is 0 and the last table otherwise.

DC mode 1 (``DcMode.DROPPED``, no DC at all) is reserved: the encoder refuses it and the
decoder refuses a payload that says it. No profile sends it, and the receiver could not
recover it well: block boundaries give the differences between DCs, but without one DC
that travelled, nothing gives a channel's overall level.
"""

from __future__ import annotations

import struct
import uuid
import zlib
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from shared.codec.coefficients import Retention, TableArray
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.profiles import DcMode, Layout, ProfileKind
from shared.codec.quantisation import standard_tables
from shared.codec.tablecode import pack_table, unpack_table
from shared.codec.varint import read_varint, write_varint

MAGIC = b"DCTL"
VERSION = 1
#: The payload version each entropy coder travels in.
VERSION_OF_CODER = {1: 1, 2: 2}
VERSIONS = frozenset(VERSION_OF_CODER.values())


class FixedOffsets(NamedTuple):
    """Byte offset of each field of the fixed header (the first rows of the table above)."""

    magic: int
    version: int
    profile: int
    layout: int
    coder: int
    image_id: int
    captured_at: int
    width: int
    height: int
    quality: int
    flags: int
    device_len: int


# The fixed header's struct codes, field by field: the one place its layout is written down.
_FIXED_CODES = ("4s", "B", "B", "B", "B", "16s", "q", "H", "H", "B", "B", "B")
_FIXED = struct.Struct(">" + "".join(_FIXED_CODES))
OFFSET = FixedOffsets(
    *(struct.calcsize(">" + "".join(_FIXED_CODES[:i])) for i in range(len(_FIXED_CODES)))
)
"""Where each fixed-header field starts, derived from ``_FIXED``; error offsets use these."""
_CRC = struct.Struct(">I")
_FLAG_REFERENCE = 2
#: Table precision bytes: plain u8, plain u16, and (payload v2 only) Exp-Golomb deltas.
_TABLE_U8, _TABLE_U16, _TABLE_DELTAS = 0, 1, 2


@dataclass(frozen=True, kw_only=True)
class Header:
    profile: ProfileKind
    layout: Layout
    coder: int
    image_id: uuid.UUID
    captured_at_us: int
    width: int
    height: int
    quality: int
    device_id: str
    retention: tuple[Retention, ...]
    tables: tuple[TableArray, ...]
    explicit_tables: bool
    reference_jpeg_bytes: int | None = None

    def channel_tables(self) -> tuple[TableArray, ...]:
        return tuple(self.tables[0 if c == 0 else -1] for c in range(self.layout.channels))


def _retention_fault(keep: int, dc_mode: int, anchor: int) -> tuple[str, int] | None:
    """Why a channel's retention cannot travel, and which of its three bytes says so."""
    if dc_mode == DcMode.DROPPED:
        return (
            "DC mode 1 (dropped) is reserved: a payload v1 carries every DC (mode 0) or "
            "an anchor grid of them (mode 2)",
            1,
        )
    if not 1 <= keep <= 64 or dc_mode > 2 or (dc_mode == 2) != (anchor > 0) or anchor > 255:
        return f"invalid retention keep={keep} dc={dc_mode} anchor={anchor}", 0
    return None


def check_retention(retention: tuple[Retention, ...]) -> None:
    """Raise ValueError for a retention the decoder would refuse (see the table above)."""
    for channel, kept in enumerate(retention):
        fault = _retention_fault(kept.keep, kept.dc_mode, kept.anchor_every)
        if fault is not None:
            raise ValueError(f"channel {channel}: {fault[0]}")


def pack_header(header: Header, band_sizes: list[int]) -> bytes:
    check_retention(header.retention)
    device = header.device_id.encode("utf-8")
    if not 1 <= len(device) <= 255:
        raise ValueError("device id must be 1..255 bytes of UTF-8")
    out = bytearray(
        _FIXED.pack(
            MAGIC,
            VERSION_OF_CODER[header.coder],
            header.profile,
            header.layout,
            header.coder,
            header.image_id.bytes,
            header.captured_at_us,
            header.width,
            header.height,
            header.quality,
            (1 if header.explicit_tables else 0)
            | (0 if header.reference_jpeg_bytes is None else _FLAG_REFERENCE),
            len(device),
        )
    )
    out += device
    for kept in header.retention:
        out += bytes([kept.keep, kept.dc_mode, kept.anchor_every])
    if header.explicit_tables:
        out.append(len(header.tables))
        for table in header.tables:
            if header.coder == 2:
                out.append(_TABLE_DELTAS)
                out += pack_table(table)
                continue
            wide = bool(table.max() > 255)
            out.append(_TABLE_U16 if wide else _TABLE_U8)
            out += table.astype(">u2" if wide else "u1").tobytes()
    if header.reference_jpeg_bytes is not None:
        out += write_varint(header.reference_jpeg_bytes)
    out.append(len(band_sizes))
    for size in band_sizes:
        out += write_varint(size)
    return bytes(out)


@dataclass(frozen=True)
class ParsedHeader:
    header: Header
    band_sizes: list[int]
    body_offset: int


def _need(data: memoryview, pos: int, count: int, what: str) -> None:
    if pos + count > len(data):
        raise PayloadError(PayloadErrorKind.TRUNCATED, f"payload ends inside the {what}", pos)


def check_magic(data: memoryview) -> None:
    """Magic and version come first: a payload of another kind or version is named as such."""
    if bytes(data[:4]) != MAGIC[: len(data)] or len(data) < 4:
        raise PayloadError(
            PayloadErrorKind.BAD_MAGIC, "not a DCTLink payload (bad magic)", OFFSET.magic
        )
    _need(data, 0, OFFSET.version + 1, "magic and version")
    version = data[OFFSET.version]
    if version not in VERSIONS:
        readable = " and ".join(str(v) for v in sorted(VERSIONS))
        raise PayloadError(
            PayloadErrorKind.BAD_VERSION,
            f"unsupported payload version {version}; this build reads {readable}",
            OFFSET.version,
        )


def unpack_header(data: memoryview) -> ParsedHeader:
    """Parse and validate the header; lengths and enums are checked, nothing is allocated."""
    check_magic(data)
    _need(data, 0, _FIXED.size, "fixed header")
    (
        _,
        _,
        kind,
        layout_id,
        coder,
        image_id,
        captured,
        width,
        height,
        quality,
        flags,
        device_len,
    ) = _FIXED.unpack_from(data, 0)
    if coder not in VERSION_OF_CODER:
        raise PayloadError(PayloadErrorKind.INVALID, f"unknown entropy coder {coder}", OFFSET.coder)
    if VERSION_OF_CODER[coder] != data[OFFSET.version]:
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"entropy coder {coder} does not travel in payload version {data[OFFSET.version]}",
            OFFSET.coder,
        )
    try:
        profile, layout = ProfileKind(kind), Layout(layout_id)
    except ValueError as exc:
        raise PayloadError(
            PayloadErrorKind.INVALID, f"unknown profile or layout ({exc})", OFFSET.profile
        ) from exc
    if width == 0 or height == 0:
        raise PayloadError(
            PayloadErrorKind.INVALID, f"image size {width}x{height} is empty", OFFSET.width
        )
    if flags & ~(1 | _FLAG_REFERENCE):
        raise PayloadError(
            PayloadErrorKind.INVALID, f"unknown header flags {flags:#x}", OFFSET.flags
        )
    explicit = bool(flags & 1)
    if not (explicit and quality == 0) and not 1 <= quality <= 100:
        raise PayloadError(
            PayloadErrorKind.INVALID, f"quality {quality} is outside 1..100", OFFSET.quality
        )
    pos = _FIXED.size
    _need(data, pos, device_len, "device id")
    try:
        device_id = bytes(data[pos : pos + device_len]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(PayloadErrorKind.INVALID, "device id is not UTF-8", pos) from exc
    if not device_id:
        raise PayloadError(PayloadErrorKind.INVALID, "device id is empty", pos)
    pos += device_len
    retention = []
    for _ in range(layout.channels):
        _need(data, pos, 3, "channel retention")
        keep, dc_mode, anchor = data[pos], data[pos + 1], data[pos + 2]
        fault = _retention_fault(keep, dc_mode, anchor)
        if fault is not None:
            raise PayloadError(PayloadErrorKind.INVALID, fault[0], pos + fault[1])
        retention.append(Retention(keep, DcMode(dc_mode), anchor))
        pos += 3
    tables: tuple[TableArray, ...]
    if explicit:
        _need(data, pos, 1, "table count")
        count = data[pos]
        pos += 1
        if count not in (1, 2):
            raise PayloadError(
                PayloadErrorKind.INVALID, f"table count {count} is not 1 or 2", pos - 1
            )
        parsed = []
        deltas_allowed = VERSION_OF_CODER[coder] == 2
        for _ in range(count):
            _need(data, pos, 1, "table precision")
            wide = data[pos]
            if wide == _TABLE_DELTAS and deltas_allowed:
                table, pos = unpack_table(data, pos + 1)
                parsed.append(table)
                continue
            if wide > _TABLE_U16:
                allowed = "0, 1 or 2" if deltas_allowed else "0 or 1"
                raise PayloadError(
                    PayloadErrorKind.INVALID, f"table precision {wide} is not {allowed}", pos
                )
            size = 128 if wide else 64
            _need(data, pos + 1, size, "quantisation table")
            table = np.frombuffer(data, ">u2" if wide else "u1", 64, pos + 1).astype(np.uint16)
            if table.min() == 0:
                raise PayloadError(
                    PayloadErrorKind.INVALID, "quantisation table holds a zero step", pos + 1
                )
            parsed.append(table.reshape(8, 8))
            pos += 1 + size
        tables = tuple(parsed)
    else:
        tables = standard_tables(quality)
    reference: int | None = None
    if flags & _FLAG_REFERENCE:
        reference, pos = read_varint(data, pos)
    _need(data, pos, 1, "band count")
    bands = data[pos]
    pos += 1
    if not 1 <= bands <= max(k.keep for k in retention):
        raise PayloadError(
            PayloadErrorKind.INVALID, f"band count {bands} does not match the retention", pos - 1
        )
    sizes = []
    for _ in range(bands):
        size, pos = read_varint(data, pos)
        sizes.append(size)
    header = Header(
        profile=profile,
        layout=layout,
        coder=coder,
        image_id=uuid.UUID(bytes=bytes(image_id)),
        captured_at_us=captured,
        width=width,
        height=height,
        quality=quality,
        device_id=device_id,
        retention=tuple(retention),
        tables=tables,
        explicit_tables=explicit,
        reference_jpeg_bytes=reference,
    )
    return ParsedHeader(header, sizes, pos)


def seal(data: bytes) -> bytes:
    """Append the CRC-32 trailer."""
    return data + _CRC.pack(zlib.crc32(data))


def check_crc(data: memoryview) -> None:
    if len(data) < _CRC.size:
        raise PayloadError(PayloadErrorKind.TRUNCATED, "payload is too short to hold a checksum", 0)
    (stored,) = _CRC.unpack_from(data, len(data) - _CRC.size)
    if zlib.crc32(data[: len(data) - _CRC.size]) != stored:
        raise PayloadError(
            PayloadErrorKind.CRC,
            "checksum mismatch: the payload is corrupted or truncated",
            len(data) - _CRC.size,
        )


CRC_SIZE = _CRC.size
