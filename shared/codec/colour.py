"""JFIF full-range colour conversion and 4:2:0 chroma resampling."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float32]

_RGB_TO_YCBCR = np.array(
    [
        [0.299, 0.587, 0.114],
        [-0.168735892, -0.331264108, 0.5],
        [0.5, -0.418687589, -0.081312411],
    ],
    dtype=np.float32,
)
# The DCT wants samples centred on zero: luma is shifted by 128, chroma already is.
_LEVEL_SHIFT = np.array([128.0, 0.0, 0.0], dtype=np.float32)
_YCBCR_TO_RGB = np.linalg.inv(_RGB_TO_YCBCR.astype(np.float64)).astype(np.float32)


def rgb_to_ycbcr(rgb: npt.NDArray[np.uint8]) -> Float:
    """HxWx3 uint8 RGB -> HxWx3 float YCbCr with chroma centred on 0 (not 128)."""
    return rgb.astype(np.float32) @ _RGB_TO_YCBCR.T - _LEVEL_SHIFT


def ycbcr_to_rgb(ycbcr: Float) -> npt.NDArray[np.uint8]:
    """Inverse of :func:`rgb_to_ycbcr`, rounded and clipped to uint8."""
    rgb = (ycbcr + _LEVEL_SHIFT) @ _YCBCR_TO_RGB.T
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def downsample_2x2(plane: Float) -> Float:
    """Box-average 2x2 (libjpeg's h2v2 downsampling); dimensions must be even."""
    h, w = plane.shape
    return plane.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3), dtype=np.float32)


def _upsample_axis(plane: Float, axis: int) -> Float:
    # Triangle filter ("fancy upsampling" in libjpeg): each output sample sits a quarter of
    # an input sample from the nearest input centre, so it takes 3/4 of it and 1/4 of the next.
    n = plane.shape[axis]
    idx = np.arange(n)
    prev = np.take(plane, np.maximum(idx - 1, 0), axis=axis)
    nxt = np.take(plane, np.minimum(idx + 1, n - 1), axis=axis)
    even = 0.75 * plane + 0.25 * prev
    odd = 0.75 * plane + 0.25 * nxt
    out = np.stack([even, odd], axis=axis + 1)
    shape = list(plane.shape)
    shape[axis] = 2 * n
    return out.reshape(shape).astype(np.float32)


def upsample_2x2(plane: Float) -> Float:
    """Inverse of :func:`downsample_2x2` with libjpeg's triangle (fancy) upsampling."""
    return _upsample_axis(_upsample_axis(plane, 0), 1)
