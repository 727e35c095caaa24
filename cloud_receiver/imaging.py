"""Image encodings the API serves, and the JPEG a payload is compared with; pure (bytes in,
bytes out).

``jpeg_bytes`` in image metadata is the size of that JPEG, and ``jpeg_bytes_basis`` says which
JPEG it is (:func:`equivalent_jpeg`). An auto payload carries the sender's own measurement:
libjpeg's JPEG of the original at the promised quality, which the received picture matches
or beats, so ``jpeg_bytes / payload_bytes`` is the saving at equal quality. Other payloads
promise no picture quality, so the receiver estimates: the JPEG libjpeg (through Pillow)
writes for the best available stage at the payload's table quality (90 for tables that name
none) with 4:2:0 chroma (4:4:4 does not apply to gray). That compares settings, not pictures:
a lowpass payload at quality 75 looks worse than the JPEG at 75 it is compared with.

Stage PNGs are working files written for every image, so :func:`png_bytes` trades a little size
for speed: every row "Up"-filtered in one numpy step, then zlib level 1. On the bench's 768x512
Kodak stages that is about 2x faster than Pillow's PNG writer at ``compress_level=1`` for 5%
more bytes (603 kB against 572 kB a picture; Pillow's level 6 gives 537 kB at 3-5x the time of
its level 1). numpy and zlib release the GIL, so ingest workers encode in parallel.
"""

from __future__ import annotations

import io
import struct
import zlib
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from cloud_receiver.store.base import JpegBasis

Format = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[Format, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
#: Quality of JPEG/WebP conversions served by the API (not the estimate, which uses the payload's).
SERVE_QUALITY = 90
#: The estimate's quality when a payload carries its own tables instead of a quality factor
#: (the "assumed_quality_90" basis names it).
DEFAULT_QUALITY = 90


#: zlib level of stage PNGs (1: fastest that still compresses; they are lossless whatever it is).
PNG_LEVEL = 1
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_UP = 2  # filter type: each byte minus the one above it


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """length, type, data, CRC-32 of type and data (PNG section 5.3)."""
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    """Lossless 8-bit PNG of an HxWx3 (RGB) or HxW (gray) uint8 array."""
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise ValueError(f"expected HxW or HxWx3 uint8 pixels, got {pixels.dtype} {pixels.shape}")
    height, width = pixels.shape[:2]
    rows = pixels.reshape(height, -1)
    filtered = np.empty((height, rows.shape[1] + 1), dtype=np.uint8)
    filtered[:, 0] = _PNG_UP
    filtered[0, 1:] = rows[0]  # the row above the first is taken as zeros
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8 wraps modulo 256, as PNG does
    colour_type = 2 if pixels.ndim == 3 else 0
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return b"".join(
        (
            _PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(filtered.data, PNG_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


def convert(png: bytes, fmt: Format, box: tuple[int | None, int | None] = (None, None)) -> bytes:
    """A stored PNG in the asked format, scaled down to fit ``box`` (width, height; None: any)
    with its aspect ratio kept and never scaled up; an unscaled PNG passes through untouched."""
    width, height = box
    if fmt == "png" and width is None and height is None:
        return png
    with Image.open(io.BytesIO(png)) as image:
        image.load()
        if width is not None or height is not None:
            limit = (width or image.width, height or image.height)
            image.thumbnail(limit, Image.Resampling.LANCZOS)  # in place; keeps the aspect
        buffer = io.BytesIO()
        if fmt == "jpeg":
            image.save(buffer, "JPEG", quality=SERVE_QUALITY)
        elif fmt == "webp":
            image.save(buffer, "WEBP", quality=SERVE_QUALITY)
        else:
            image.save(buffer, "PNG", compress_level=PNG_LEVEL)
        return buffer.getvalue()


def equivalent_jpeg_bytes(pixels: npt.NDArray[np.uint8], quality: int | None) -> int:
    """Size of a libjpeg JPEG of ``pixels`` at ``quality`` with 4:2:0 chroma subsampling."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buffer, "JPEG", quality=quality or DEFAULT_QUALITY, subsampling=2, optimize=False
    )
    return buffer.tell()


def equivalent_jpeg(
    best: npt.NDArray[np.uint8], quality: int | None, reference_jpeg_bytes: int | None
) -> tuple[int, JpegBasis]:
    """``jpeg_bytes`` and its basis for a payload of ``quality`` whose best stage is ``best``.

    ``reference_jpeg_bytes`` is the sender's measurement (auto payloads); when it is there
    nothing is estimated here.
    """
    if reference_jpeg_bytes is not None:
        return reference_jpeg_bytes, "equal_quality"
    if quality is not None:
        return equivalent_jpeg_bytes(best, quality), "same_quality_setting"
    return equivalent_jpeg_bytes(best, DEFAULT_QUALITY), "assumed_quality_90"


def negotiate(accept: str | None) -> Format | None:
    """The first of png/jpeg/webp that an Accept header asks for (by q order); None if none."""
    if not accept:
        return None
    wanted: list[tuple[float, int, str]] = []
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q > 0:
            wanted.append((-q, position, media.lower()))
    for _, _, media in sorted(wanted):
        if media in ("image/*", "*/*"):
            return "png"
        for fmt, media_type in MEDIA_TYPES.items():
            if media == media_type:
                return fmt
    return None
