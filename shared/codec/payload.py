"""``encode`` and ``decode``: images to payload v1 bytes and back."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.codec import entropy, entropy2, wire
from shared.codec.auto import choose_auto, choose_budget
from shared.codec.coefficients import (
    CoefficientImage,
    Int32Array,
    Retention,
    TableArray,
    plane_blocks,
)
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.frontend import (
    analyse,
    as_pixels,
    channel_tables,
    transform,
    zero_filled_pixels,
)
from shared.codec.image_id import new_image_id
from shared.codec.profiles import DcMode, Layout, Profile, ProfileKind
from shared.codec.quantisation import nearest_quality
from shared.codec.reference import reference_jpeg_bytes
from shared.timestamps import from_micros, to_micros

MAX_DIMENSION = 65535  # the header holds width and height as u16


@dataclass(frozen=True)
class DecodeLimits:
    """Bounds checked from the header before decoding allocates anything.

    ``max_pixels_per_byte`` ties what a payload may claim to what it carries: the decoder
    allocates 4 to 12 bytes per pixel whatever the body holds, so without it 76 bytes could
    claim 33 M pixels. The bound must pass honest flat frames, the most compressible images
    there are: an all-black 4096x3072 ``auto`` payload is 222 bytes in colour (56,680 pixels
    per byte) and 151 in gray (83,331), so 131,072 (2,048 blocks per byte). It stops the
    almost empty payload; the receiver's memory and time estimates bound the rest.
    """

    max_width: int = 8192
    max_height: int = 8192
    max_pixels: int = 4096 * 3072
    max_payload_bytes: int = 16 * 1024 * 1024
    max_pixels_per_byte: int = 131072

    def check(self, header: wire.Header, payload_bytes: int) -> None:
        """Raise :class:`PayloadError` when the header claims more than these limits allow."""
        if payload_bytes > self.max_payload_bytes:
            raise PayloadError(
                PayloadErrorKind.LIMIT,
                f"payload of {payload_bytes} bytes exceeds the limit of {self.max_payload_bytes}",
            )
        pixels = header.width * header.height
        if (
            header.width > self.max_width
            or header.height > self.max_height
            or pixels > self.max_pixels
        ):
            raise PayloadError(
                PayloadErrorKind.LIMIT,
                f"image {header.width}x{header.height} exceeds the decoder's limits "
                f"({self.max_width}x{self.max_height}, {self.max_pixels} pixels)",
                wire.OFFSET.width,
            )
        if pixels > self.max_pixels_per_byte * payload_bytes:
            raise PayloadError(
                PayloadErrorKind.LIMIT,
                f"image {header.width}x{header.height} from a {payload_bytes}-byte payload"
                f" exceeds the limit of {self.max_pixels_per_byte} pixels per payload byte",
                wire.OFFSET.width,
            )


@dataclass(frozen=True, kw_only=True)
class Decoded:
    """A decoded payload: header fields and the quantised coefficients it carried.

    ``coefficients[c]``: int32 ``[blocks_y, blocks_x, 64]`` in zigzag order, zero where
    nothing was received. ``tables[c]``: uint16 ``[8, 8]`` steps in natural order.
    ``retention[c]``: the bands and DCs that actually arrived (fewer than were kept when
    the stream was cut). ``complete`` is False when ``allow_partial`` decoded a cut stream.
    ``quality`` is the libjpeg quality of the tables, or for ``auto`` the quality promised;
    None for custom tables. ``reference_jpeg_bytes``: for ``auto``, the size of libjpeg's
    JPEG of the same image at ``quality``, as the sender measured it (else None).
    """

    image_id: uuid.UUID
    device_id: str
    captured_at: datetime
    width: int
    height: int
    profile: ProfileKind
    layout: Layout
    quality: int | None
    coefficients: tuple[Int32Array, ...]
    tables: tuple[TableArray, ...]
    retention: tuple[Retention, ...]
    payload_bytes: int
    complete: bool = True
    band_offsets: tuple[int, ...] = field(default=())
    reference_jpeg_bytes: int | None = None

    @property
    def coefficient_image(self) -> CoefficientImage:
        return CoefficientImage(
            self.width, self.height, self.layout, self.coefficients, self.tables, self.retention
        )

    @property
    def tables_quality(self) -> int:
        """The libjpeg quality nearest the luma table: what custom tables amount to."""
        return nearest_quality(self.tables[0])

    def to_rgb(self) -> npt.NDArray[np.uint8]:
        """Zero-filled reconstruction: HxWx3 uint8, or HxW for gray payloads."""
        return zero_filled_pixels(self.coefficient_image)


def _retention(profile: Profile, layout: Layout) -> tuple[Retention, ...]:
    if profile.kind is ProfileKind.PAPER:
        anchored = Retention(64, DcMode.ANCHORS, profile.anchor_every)
        return (anchored,) * layout.channels
    luma = Retention(profile.luma_keep)
    return (
        (luma,)
        if layout is Layout.GRAY
        else (luma, Retention(profile.chroma_keep), Retention(profile.chroma_keep))
    )


def _captured_us(captured_at: datetime | None) -> int:
    moment = captured_at or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("captured_at must be timezone-aware")
    return to_micros(moment)


#: Entropy coders by id; a coder's id fixes the payload version it travels in (wire.py).
_CODERS = {entropy.CODER_ID: entropy, entropy2.CODER_ID: entropy2}


def encode_coefficients(
    coefficients: CoefficientImage,
    profile: ProfileKind,
    *,
    quality: int,
    explicit_tables: bool,
    device_id: str,
    image_id: uuid.UUID,
    captured_at_us: int,
    reference_jpeg_bytes: int | None = None,
    coder: int = entropy.CODER_ID,
) -> bytes:
    """Entropy-code already quantised coefficients into a sealed payload.

    ``quality`` 0 with ``explicit_tables`` says the tables promise no libjpeg quality.
    Raises ValueError, before coding anything, for what the decoder would refuse: a reserved
    DC mode, or a coefficient past ``entropy.MAX_COEFFICIENT``.
    """
    wire.check_retention(coefficients.retention)
    if coder not in _CODERS:
        raise ValueError(f"unknown entropy coder {coder}; coders are {sorted(_CODERS)}")
    segments = _CODERS[coder].encode_bands(coefficients.channels, coefficients.retention)
    distinct = coefficients.tables[: 1 if coefficients.layout is Layout.GRAY else 2]
    header = wire.Header(
        profile=profile,
        layout=coefficients.layout,
        coder=coder,
        image_id=image_id,
        captured_at_us=captured_at_us,
        width=coefficients.width,
        height=coefficients.height,
        quality=quality,
        device_id=device_id,
        retention=coefficients.retention,
        tables=distinct,
        explicit_tables=explicit_tables,
        reference_jpeg_bytes=reference_jpeg_bytes,
    )
    return wire.seal(wire.pack_header(header, [len(s) for s in segments]) + b"".join(segments))


def encode(
    image: Image.Image | npt.NDArray[Any],
    profile: Profile,
    *,
    device_id: str = "local",
    image_id: uuid.UUID | str | None = None,
    captured_at: datetime | None = None,
    coder: int = entropy.CODER_ID,
) -> bytes:
    """Encode an image (PIL, or HxW / HxWx3 uint8 array) into a payload.

    ``coder`` 1 (the default) writes payload v1; 2 writes v2 with entropy coder 2, about 6 %
    smaller on Kodak for several times the entropy-coding time (``bench.entropy_coders``).
    """
    pixels = as_pixels(image)
    height, width = pixels.shape[:2]
    if width > MAX_DIMENSION or height > MAX_DIMENSION:
        raise ValueError(f"image {width}x{height} exceeds {MAX_DIMENSION} pixels per side")
    layout = profile.layout
    if layout is None:
        layout = Layout.GRAY if pixels.ndim == 2 else Layout.YCBCR420
    seal = partial(
        encode_coefficients,
        coder=coder,
        device_id=device_id,
        image_id=uuid.UUID(str(image_id)) if image_id is not None else new_image_id(),
        captured_at_us=_captured_us(captured_at),
    )
    if profile.kind is ProfileKind.AUTO:
        return seal(
            choose_auto(transform(pixels, layout), profile.quality),
            ProfileKind.AUTO,
            quality=profile.quality,
            explicit_tables=True,
            reference_jpeg_bytes=reference_jpeg_bytes(pixels, profile.quality),
        )
    if profile.kind is ProfileKind.ADAPTIVE:
        assert profile.max_bytes is not None
        budget_seal = partial(seal, profile=ProfileKind.ADAPTIVE, quality=0, explicit_tables=True)
        return choose_budget(transform(pixels, layout), profile.max_bytes, budget_seal)
    tables = channel_tables(layout, *profile.quantisation_tables())
    coefficients = analyse(pixels, layout, tables, _retention(profile, layout))
    explicit = profile.tables is not None
    return seal(
        coefficients,
        profile.kind,
        quality=0 if explicit else profile.quality,
        explicit_tables=explicit,
    )


def _split(data: memoryview, allow_partial: bool) -> tuple[wire.ParsedHeader, int, bool]:
    """Parse the header; returns it, the number of complete bands and whether CRC held."""
    wire.check_magic(data)
    try:
        wire.check_crc(data)
    except PayloadError:
        if not allow_partial:
            raise
        parsed = wire.unpack_header(data)
        available = len(data) - parsed.body_offset
        bands = int(np.searchsorted(np.cumsum(parsed.band_sizes), available, side="right"))
        if bands == 0:
            raise PayloadError(
                PayloadErrorKind.INVALID, "cut stream holds no complete band", parsed.body_offset
            ) from None
        return parsed, bands, False
    parsed = wire.unpack_header(data[: len(data) - wire.CRC_SIZE])
    body = len(data) - wire.CRC_SIZE - parsed.body_offset
    if sum(parsed.band_sizes) != body:
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"band lengths add up to {sum(parsed.band_sizes)} bytes, the body has {body}",
            parsed.body_offset,
        )
    return parsed, len(parsed.band_sizes), True


def decode(
    payload: bytes | bytearray | memoryview,
    *,
    limits: DecodeLimits | None = None,
    allow_partial: bool = False,
) -> Decoded:
    """Decode a payload (v1 or v2); raises :class:`PayloadError` on anything malformed.

    ``allow_partial`` accepts a stream cut after any band (no checksum then) and decodes the
    complete bands it holds.
    """
    limits = limits or DecodeLimits()
    data = memoryview(bytes(payload))
    if len(data) > limits.max_payload_bytes:
        raise PayloadError(
            PayloadErrorKind.LIMIT,
            f"payload of {len(data)} bytes exceeds the limit of {limits.max_payload_bytes}",
        )
    parsed, bands, complete = _split(data, allow_partial)
    header = parsed.header
    coder = _CODERS.get(header.coder)
    if coder is None:  # unpack_header already ties each coder to its version
        raise PayloadError(
            PayloadErrorKind.INVALID, f"unknown entropy coder {header.coder}", wire.OFFSET.coder
        )
    limits.check(header, len(data))
    retention = tuple(replace(k, keep=min(k.keep, bands)) for k in header.retention)
    offsets = [
        parsed.body_offset + int(s)
        for s in np.concatenate([[0], np.cumsum(parsed.band_sizes[:bands])])
    ]
    segments = [data[a:b] for a, b in itertools.pairwise(offsets)]
    # Coder 2's counts and contexts depend on the bands each channel keeps, not on how many
    # arrived: it takes the header's retention and decodes the bands present.
    channels = coder.decode_bands(
        segments,
        offsets[:-1],
        plane_blocks(header.width, header.height, header.layout),
        header.retention if coder is entropy2 else retention,
    )
    try:
        captured = from_micros(header.captured_at_us)
    except (OverflowError, ValueError, OSError) as exc:
        raise PayloadError(
            PayloadErrorKind.INVALID, "capture time is out of range", wire.OFFSET.captured_at
        ) from exc
    return Decoded(
        image_id=header.image_id,
        device_id=header.device_id,
        captured_at=captured,
        width=header.width,
        height=header.height,
        profile=header.profile,
        layout=header.layout,
        quality=header.quality or None,
        coefficients=tuple(channels),
        tables=header.channel_tables(),
        retention=retention,
        payload_bytes=len(data),
        complete=complete,
        band_offsets=tuple(offsets),
        reference_jpeg_bytes=header.reference_jpeg_bytes,
    )


def decode_header(payload: bytes | bytearray | memoryview) -> wire.Header:
    """The header of a complete payload (checksum verified), without decoding its bands:
    cheap enough for a sender to read back what it just wrote."""
    return _split(memoryview(payload), allow_partial=False)[0].header


def truncate(payload: bytes, bands: int) -> bytes:
    """The same payload with only its first ``bands`` bands, re-sealed: a coarser image."""
    data = memoryview(payload)
    parsed, present, _ = _split(data, allow_partial=False)
    if not 1 <= bands <= present:
        raise ValueError(f"bands must be in 1..{present}, got {bands}")
    header = parsed.header
    if header.coder == entropy.CODER_ID:  # coder 2 needs the kept bands as they were coded
        header = replace(
            header, retention=tuple(replace(k, keep=min(k.keep, bands)) for k in header.retention)
        )
    end = parsed.body_offset + sum(parsed.band_sizes[:bands])
    return wire.seal(
        wire.pack_header(header, parsed.band_sizes[:bands]) + bytes(data[parsed.body_offset : end])
    )
