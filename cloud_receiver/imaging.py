"""Image encodings the API serves, and the equivalent-JPEG estimate; pure (bytes in, bytes out).

The equivalent-JPEG estimate (``jpeg_bytes`` in image metadata) is the size of the JPEG that
libjpeg (through Pillow) writes for the best available stage at the payload's quality with 4:2:0
chroma (4:4:4 does not apply to gray): what sending a plain JPEG of the same picture would have
cost, so ``payload_bytes / jpeg_bytes`` is the saving. It is an estimate: the camera's own JPEG
encoder and settings may differ.
"""

from __future__ import annotations

import io
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

Format = Literal["png", "jpeg", "webp"]
MEDIA_TYPES: dict[Format, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
#: Quality of JPEG/WebP conversions served by the API (not the estimate, which uses the payload's).
SERVE_QUALITY = 90
#: The estimate's quality when a payload carries its own tables instead of a quality factor.
DEFAULT_QUALITY = 90


def png_bytes(pixels: npt.NDArray[np.uint8]) -> bytes:
    """Lossless PNG of an HxWx3 or HxW uint8 array (compress_level 1: fast, still lossless)."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def convert(png: bytes, fmt: Format) -> bytes:
    """A stored PNG in the asked format; PNG passes through untouched."""
    if fmt == "png":
        return png
    with Image.open(io.BytesIO(png)) as image:
        buffer = io.BytesIO()
        if fmt == "jpeg":
            image.save(buffer, "JPEG", quality=SERVE_QUALITY)
        else:
            image.save(buffer, "WEBP", quality=SERVE_QUALITY)
        return buffer.getvalue()


def equivalent_jpeg_bytes(pixels: npt.NDArray[np.uint8], quality: int | None) -> int:
    """Size of a libjpeg JPEG of ``pixels`` at ``quality`` with 4:2:0 chroma subsampling."""
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(
        buffer, "JPEG", quality=quality or DEFAULT_QUALITY, subsampling=2, optimize=False
    )
    return buffer.tell()


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
