"""JFIF full-range colour conversion and 4:2:0 chroma resampling, in float32 numpy.

Planes are computed channel by channel with scalar multiply-adds: a (pixels, 3) x (3, 3)
matrix product is several times slower in numpy because its inner dimension is tiny.
Samples stay in float between steps (libjpeg rounds to 8 bits in between; we keep the
precision, which is worth 0.1-0.7 dB at high quality).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.codec.profiles import Layout

Float = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]

# JFIF (ITU-T T.871) full-range coefficients.
_Y = (0.299, 0.587, 0.114)
_CB = (-0.168735892, -0.331264108, 0.5)
_CR = (0.5, -0.418687589, -0.081312411)
_R_CR, _G_CB, _G_CR, _B_CB = 1.402, -0.344136286, -0.714136286, 1.772


def _mix(r: Float, g: Float, b: Float, weights: tuple[float, float, float], shift: float) -> Float:
    out = r * np.float32(weights[0])
    out += g * np.float32(weights[1])
    out += b * np.float32(weights[2])
    out -= np.float32(shift)
    return out


def luma(pixels: Pixels) -> Float:
    """Level-shifted JFIF luma of an HxWx3 image (HxW images are only shifted)."""
    if pixels.ndim == 2:
        return pixels.astype(np.float32) - np.float32(128.0)
    r, g, b = (pixels[:, :, c].astype(np.float32) for c in range(3))
    return _mix(r, g, b, _Y, 128.0)


def to_planes(pixels: Pixels, layout: Layout) -> list[Float]:
    """Level-shifted planes (chroma centred on 0) of an image padded to the MCU grid."""
    if layout is Layout.GRAY:
        return [luma(pixels)]
    rgb = pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)
    channels = [rgb[:, :, c] for c in range(3)]
    r, g, b = (c.astype(np.float32) for c in channels)
    luma_plane = _mix(r, g, b, _Y, 128.0)
    if layout is Layout.YCBCR444:
        return [luma_plane, _mix(r, g, b, _CB, 0.0), _mix(r, g, b, _CR, 0.0)]
    # 4:2:0 chroma is the 2x2 box average of the full-size chroma (libjpeg's h2v2
    # downsampling). The transform is linear, so that equals the chroma of box-summed RGB (up
    # to float rounding): the sums are exact in uint16 and the chroma runs at quarter size.
    r4, g4, b4 = (_box_sum(c) for c in channels)
    cb = _mix(r4, g4, b4, (_CB[0] / 4, _CB[1] / 4, _CB[2] / 4), 0.0)
    cr = _mix(r4, g4, b4, (_CR[0] / 4, _CR[1] / 4, _CR[2] / 4), 0.0)
    return [luma_plane, cb, cr]


def _box_sum(channel: Pixels) -> Float:
    """Sum of every 2x2 block of a uint8 plane (dimensions must be even), exact."""
    total = channel[0::2, 0::2].astype(np.uint16)
    total += channel[1::2, 0::2]
    total += channel[0::2, 1::2]
    total += channel[1::2, 1::2]
    return total.astype(np.float32)


def _upsample_rows(plane: Float) -> Float:
    # Triangle filter (libjpeg's "fancy" upsampling): each output sample lies a quarter of an
    # input sample from the nearest centre, so it takes 3/4 of it and 1/4 of the other side.
    near = plane * np.float32(0.75)
    quarter = plane * np.float32(0.25)
    out = np.empty((2 * plane.shape[0], plane.shape[1]), dtype=np.float32)
    np.add(near[1:], quarter[:-1], out=out[2::2])
    np.add(near[:1], quarter[:1], out=out[:1])
    np.add(near[:-1], quarter[1:], out=out[1:-1:2])
    np.add(near[-1:], quarter[-1:], out=out[-1:])
    return out


def _upsample_columns(plane: Float) -> Float:
    near = plane * np.float32(0.75)
    quarter = plane * np.float32(0.25)
    out = np.empty((plane.shape[0], 2 * plane.shape[1]), dtype=np.float32)
    np.add(near[:, 1:], quarter[:, :-1], out=out[:, 2::2])
    np.add(near[:, :1], quarter[:, :1], out=out[:, :1])
    np.add(near[:, :-1], quarter[:, 1:], out=out[:, 1:-1:2])
    np.add(near[:, -1:], quarter[:, -1:], out=out[:, -1:])
    return out


def upsample_2x2(plane: Float) -> Float:
    """Back to full size from 2x2-averaged chroma, with libjpeg's triangle (fancy) upsampling."""
    return _upsample_columns(_upsample_rows(plane))


def _store(channel: Float, out: Pixels) -> None:
    """Round and clip in place, then write into a uint8 view."""
    np.rint(channel, out=channel)
    np.clip(channel, 0, 255, out=channel)
    out[...] = channel


def to_pixels(planes: list[Float], width: int, height: int, layout: Layout) -> Pixels:
    """Inverse of :func:`to_planes`, rounded to uint8 and cropped to ``width`` x ``height``."""
    if layout is Layout.GRAY:
        gray = np.empty((height, width), dtype=np.uint8)
        _store(planes[0][:height, :width] + np.float32(128.0), gray)
        return gray
    y, cb, cr = planes
    if layout is Layout.YCBCR420:
        cb, cr = upsample_2x2(cb), upsample_2x2(cr)
    y, cb, cr = (p[:height, :width] for p in (y, cb, cr))
    y = y + np.float32(128.0)
    out = np.empty((height, width, 3), dtype=np.uint8)
    red = cr * np.float32(_R_CR)
    red += y
    _store(red, out[:, :, 0])
    blue = cb * np.float32(_B_CB)
    blue += y
    _store(blue, out[:, :, 2])
    green = cb * np.float32(_G_CB)
    green += cr * np.float32(_G_CR)
    green += y
    _store(green, out[:, :, 1])
    return out
