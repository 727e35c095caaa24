"""The JPEG front end and its inverse: pixels <-> quantised zigzag coefficients."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from shared.codec.coefficients import (
    CoefficientImage,
    Retention,
    TableArray,
    mcu_size,
)
from shared.codec.colour import to_pixels, to_planes
from shared.codec.profiles import DcMode, Layout
from shared.codec.quantisation import to_zigzag
from shared.codec.transform import forward_dct, inverse_dct

Float = npt.NDArray[np.float32]
Pixels = npt.NDArray[np.uint8]


def as_pixels(image: Image.Image | npt.NDArray[Any]) -> Pixels:
    """A PIL image or HxW / HxWx3 uint8 array as a uint8 array (HxW or HxWx3)."""
    if isinstance(image, Image.Image):
        if image.mode not in ("L", "RGB"):
            image = image.convert("L" if image.mode in ("1", "I", "I;16", "F") else "RGB")
        array = np.asarray(image)
    else:
        array = np.asarray(image)
    if array.dtype != np.uint8:
        raise TypeError(f"image must be uint8, got {array.dtype}")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"image must be HxW or HxWx3, got shape {array.shape}")
    if array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"image must be at least 1x1, got {array.shape[1]}x{array.shape[0]}")
    return array


@dataclass(frozen=True)
class Transformed:
    """An image after the colour transform and DCT, before quantisation: computed once per
    image so that rate control re-quantises candidates instead of re-encoding pixels.

    ``coefficients[c]``: float32 ``(blocks_y * blocks_x, 64)`` zigzag DCT of plane c, blocks in
    raster order; ``shapes[c]``: that plane's ``(blocks_y, blocks_x)``.
    """

    width: int
    height: int
    layout: Layout
    coefficients: tuple[Float, ...]
    shapes: tuple[tuple[int, int], ...]


def transform(pixels: Pixels, layout: Layout) -> Transformed:
    """Colour transform, MCU padding and the full 64-band DCT of every plane."""
    h, w = pixels.shape[:2]
    coefficients, shapes = [], []
    for plane in _planes(pixels, layout):
        shapes.append((plane.shape[0] // 8, plane.shape[1] // 8))
        coefficients.append(forward_dct(_to_blocks(plane)))
    return Transformed(w, h, layout, tuple(coefficients), tuple(shapes))


def _to_blocks(plane: Float) -> Float:
    h, w = plane.shape
    return plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)


def _from_blocks(blocks: Float, blocks_y: int, blocks_x: int) -> Float:
    return (
        blocks.reshape(blocks_y, blocks_x, 8, 8)
        .transpose(0, 2, 1, 3)
        .reshape(blocks_y * 8, blocks_x * 8)
    )


def _planes(pixels: Pixels, layout: Layout) -> list[Float]:
    """Level-shifted planes, padded by edge replication to the MCU grid."""
    h, w = pixels.shape[:2]
    mcu = mcu_size(layout)
    pad = ((0, -h % mcu), (0, -w % mcu)) + (((0, 0),) if pixels.ndim == 3 else ())
    if any(p[1] for p in pad):
        pixels = np.pad(pixels, pad, mode="edge")
    return to_planes(pixels, layout)


def channel_tables(layout: Layout, luma: TableArray, chroma: TableArray) -> tuple[TableArray, ...]:
    return (luma,) if layout is Layout.GRAY else (luma, chroma, chroma)


def analyse(
    pixels: Pixels,
    layout: Layout,
    tables: tuple[TableArray, ...],
    retention: tuple[Retention, ...],
    bands: int | None = None,
) -> CoefficientImage:
    """Colour transform, DCT and quantisation; drops what ``retention`` does not keep.

    ``bands`` computes that many bands for every channel whatever ``retention`` says (the rate
    search uses it to price several keep counts from one transform).
    """
    h, w = pixels.shape[:2]
    channels = []
    for plane, table, kept in zip(_planes(pixels, layout), tables, retention, strict=True):
        n = bands if bands is not None else kept.keep
        blocks_y, blocks_x = plane.shape[0] // 8, plane.shape[1] // 8
        steps = to_zigzag(table)[:n]
        coefficients = np.rint(forward_dct(_to_blocks(plane), n) / steps).astype(np.int32)
        full = np.zeros((blocks_y * blocks_x, 64), dtype=np.int32)
        full[:, :n] = coefficients
        full = full.reshape(blocks_y, blocks_x, 64)
        if kept.dc_mode is not DcMode.ALL:
            full[:, :, 0][~kept.anchor_mask(blocks_y, blocks_x)] = 0
        channels.append(full)
    return CoefficientImage(w, h, layout, tuple(channels), tables, retention)


def _interpolation_matrix(length: int, every: int) -> Float:
    """Linear interpolation weights from anchors at 0, every, 2*every, ... to all positions."""
    anchors = np.arange(0, length, every)
    weights = np.zeros((length, len(anchors)), dtype=np.float32)
    for j in range(len(anchors)):
        unit = np.zeros(len(anchors))
        unit[j] = 1.0
        weights[:, j] = np.interp(np.arange(length), anchors, unit)
    return weights


def fill_dc_from_anchors(dc: Float, anchor_every: int) -> Float:
    """Bilinear interpolation of the anchor grid: the preview's stand-in for missing DCs."""
    rows = _interpolation_matrix(dc.shape[0], anchor_every)
    cols = _interpolation_matrix(dc.shape[1], anchor_every)
    anchors = dc[::anchor_every, ::anchor_every]
    return np.asarray(rows @ anchors @ cols.T, dtype=np.float32)


def dequantise(coefficients: CoefficientImage) -> list[Float]:
    """Per channel float coefficients ``[blocks_y, blocks_x, 64]`` (zigzag), steps applied."""
    return [
        channel.astype(np.float32) * to_zigzag(table)
        for channel, table in zip(coefficients.channels, coefficients.tables, strict=True)
    ]


def synthesise_planes(dequantised: list[Float]) -> list[Float]:
    """Inverse DCT of each channel to level-shifted planes at coded (padded) size."""
    planes = []
    for channel in dequantised:
        blocks_y, blocks_x = channel.shape[:2]
        last = int(np.max(np.nonzero(channel.reshape(-1, 64).any(axis=0))[0], initial=0)) + 1
        pixels = inverse_dct(channel.reshape(-1, 64)[:, :last])
        planes.append(_from_blocks(pixels, blocks_y, blocks_x))
    return planes


def planes_to_pixels(planes: list[Float], width: int, height: int, layout: Layout) -> Pixels:
    """Level-shifted planes -> cropped uint8 image (HxW gray, HxWx3 colour)."""
    return to_pixels(planes, width, height, layout)


def zero_filled_pixels(coefficients: CoefficientImage) -> Pixels:
    """The reconstruction with every missing coefficient taken as zero.

    Missing DCs of an anchored channel are interpolated from the anchors instead, since a
    zero DC would paint every block mid-grey.
    """
    dequantised = dequantise(coefficients)
    for channel, kept in zip(dequantised, coefficients.retention, strict=True):
        if kept.dc_mode is DcMode.ANCHORS:
            channel[:, :, 0] = fill_dc_from_anchors(channel[:, :, 0], kept.anchor_every)
    planes = synthesise_planes(dequantised)
    return planes_to_pixels(planes, coefficients.width, coefficients.height, coefficients.layout)
