"""JFIF colour conversion and 4:2:0 chroma resampling, done by Pillow's C code.

Pillow implements libjpeg's own fixed-point JFIF transforms, 2x2 box downsampling and
triangle ("fancy") upsampling, with 8-bit rounding between steps as libjpeg has, several
times faster than the same arithmetic in numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.codec.profiles import Layout

Pixels = npt.NDArray[np.uint8]


def to_planes(pixels: Pixels, layout: Layout) -> list[Pixels]:
    """uint8 planes of an image whose sides are multiples of the layout's MCU size."""
    image = Image.fromarray(pixels)
    if layout is Layout.GRAY:
        return [np.asarray(image if pixels.ndim == 2 else image.convert("L"))]
    y, cb, cr = image.convert("RGB").convert("YCbCr").split()
    if layout is Layout.YCBCR420:
        cb, cr = cb.reduce(2), cr.reduce(2)
    return [np.asarray(y), np.asarray(cb), np.asarray(cr)]


def to_pixels(planes: list[Pixels], width: int, height: int, layout: Layout) -> Pixels:
    """Inverse of :func:`to_planes`, cropped to ``width`` x ``height``."""
    if layout is Layout.GRAY:
        return np.ascontiguousarray(planes[0][:height, :width])
    y, cb, cr = (Image.fromarray(p) for p in planes)
    if layout is Layout.YCBCR420:
        # Bilinear at exactly twice the size puts each output sample a quarter of an input
        # sample from the nearest centre: libjpeg's 3/4, 1/4 triangle filter.
        cb, cr = (c.resize(y.size, Image.Resampling.BILINEAR) for c in (cb, cr))
    rgb = Image.merge("YCbCr", (y, cb, cr)).convert("RGB")
    return np.ascontiguousarray(np.asarray(rgb)[:height, :width])


def round_to_uint8(plane: npt.NDArray[np.float32]) -> Pixels:
    """A level-shifted float plane back to 8-bit samples."""
    rounded: Pixels = np.clip(np.rint(plane + np.float32(128.0)), 0, 255).astype(np.uint8)
    return rounded
