"""Pillow and libjpeg baselines the benchmarks compare payloads with."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import jpeglib
import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.codec import Decoded, Layout
from shared.codec.zigzag import INVERSE_ZIGZAG

Pixels = npt.NDArray[np.uint8]

_SUBSAMPLING = {Layout.YCBCR420: 2, Layout.YCBCR444: 0}


def pillow_jpeg(
    pixels: Pixels, quality: int, *, optimize: bool = True, layout: Layout = Layout.YCBCR420
) -> bytes:
    """A baseline JPEG: gray for HxW pixels, else YCbCr with ``layout``'s chroma subsampling."""
    buffer = io.BytesIO()
    image = Image.fromarray(pixels)
    if pixels.ndim == 2:
        image.save(buffer, format="JPEG", quality=quality, optimize=optimize)
    else:
        image.save(
            buffer,
            format="JPEG",
            quality=quality,
            optimize=optimize,
            subsampling=_SUBSAMPLING[layout],
        )
    return buffer.getvalue()


def decode_jpeg(data: bytes) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)))


def equal_bytes_jpeg(pixels: Pixels, budget: int) -> tuple[int, bytes] | None:
    """The highest quality (1..100) whose optimised JPEG fits ``budget`` bytes, or None.

    Binary search: JPEG size grows with quality (bar rare one-byte wobbles, which at worst
    cost the baseline one quality step).
    """
    best: tuple[int, bytes] | None = None
    low, high = 1, 100
    while low <= high:
        quality = (low + high) // 2
        data = pillow_jpeg(pixels, quality)
        if len(data) <= budget:
            best = (quality, data)
            low = quality + 1
        else:
            high = quality - 1
    return best


def _fit(blocks: npt.NDArray[np.int16], shape: tuple[int, ...]) -> npt.NDArray[np.int16]:
    """Crop or zero-pad a block grid to libjpeg's, which is not padded to the codec's MCU."""
    cropped = blocks[: shape[0], : shape[1]]
    pad = ((0, shape[0] - cropped.shape[0]), (0, shape[1] - cropped.shape[1]), (0, 0), (0, 0))
    return np.pad(cropped, pad)


def truncated_jpeg_bytes(
    decoded: Decoded, workdir: Path, *, optimize: bool = True, name: str = "truncated"
) -> int:
    """Size of a baseline JPEG holding exactly ``decoded``'s coefficients and tables.

    The entropy-coding target: what libjpeg's Huffman coder (with per-image optimised tables
    when ``optimize``) spends on the same coefficients the payload carries.
    """
    if decoded.layout not in (Layout.GRAY, Layout.YCBCR420, Layout.YCBCR444):
        raise ValueError(f"no JPEG equivalent for layout {decoded.layout!r}")
    # The template only fixes the geometry and sampling; every coefficient is replaced.
    shape = (decoded.height, decoded.width)
    blank = np.zeros(shape if decoded.layout is Layout.GRAY else (*shape, 3), dtype=np.uint8)
    template = workdir / f"{name}-template.jpg"
    template.write_bytes(pillow_jpeg(blank, 90, optimize=False, layout=decoded.layout))
    jpeg: Any = jpeglib.read_dct(str(template))
    natural = [
        channel[:, :, INVERSE_ZIGZAG].reshape(*channel.shape[:2], 8, 8).astype(np.int16)
        for channel in decoded.coefficients
    ]
    jpeg.Y = _fit(natural[0], jpeg.Y.shape)
    if decoded.layout is Layout.GRAY:
        jpeg.qt = np.stack([decoded.tables[0]]).astype(np.uint16)
    else:
        jpeg.Cb = _fit(natural[1], jpeg.Cb.shape)
        jpeg.Cr = _fit(natural[2], jpeg.Cr.shape)
        jpeg.qt = np.stack([decoded.tables[0], decoded.tables[1]]).astype(np.uint16)
    target = workdir / f"{name}.jpg"
    jpeg.write_dct(str(target), flags=["+OPTIMIZE_CODING" if optimize else "-OPTIMIZE_CODING"])
    return target.stat().st_size
