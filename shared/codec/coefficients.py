"""Quantised DCT coefficients of one image and the geometry of its planes."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.codec.profiles import DcMode, Layout

Int32Array = npt.NDArray[np.int32]
TableArray = npt.NDArray[np.uint16]


@dataclass(frozen=True)
class Retention:
    """What one channel transmits: the first ``keep`` zigzag bands, with DC as ``dc_mode`` says."""

    keep: int
    dc_mode: DcMode = DcMode.ALL
    anchor_every: int = 0

    def anchor_mask(self, blocks_y: int, blocks_x: int) -> npt.NDArray[np.bool_]:
        """True for blocks whose DC travels."""
        if self.dc_mode is DcMode.ALL:
            return np.ones((blocks_y, blocks_x), dtype=bool)
        mask = np.zeros((blocks_y, blocks_x), dtype=bool)
        if self.dc_mode is DcMode.ANCHORS:
            mask[:: self.anchor_every, :: self.anchor_every] = True
        return mask


@dataclass(frozen=True)
class CoefficientImage:
    """The quantised coefficients of an image, as both codec directions see them.

    ``channels[c]``: int32 ``[blocks_y, blocks_x, 64]`` in zigzag order; bands or DCs not
    retained are zero. ``tables[c]``: uint16 ``[8, 8]`` quantisation steps in natural order.
    """

    width: int
    height: int
    layout: Layout
    channels: tuple[Int32Array, ...]
    tables: tuple[TableArray, ...]
    retention: tuple[Retention, ...]


def mcu_size(layout: Layout) -> int:
    """Pixels per side of the minimum coded unit: 16 when chroma is halved both ways."""
    return 16 if layout is Layout.YCBCR420 else 8


def plane_blocks(width: int, height: int, layout: Layout) -> list[tuple[int, int]]:
    """(blocks_y, blocks_x) of each channel for an image of this size and layout."""
    mcu = mcu_size(layout)
    padded_h = math.ceil(height / mcu) * mcu
    padded_w = math.ceil(width / mcu) * mcu
    luma = (padded_h // 8, padded_w // 8)
    if layout is Layout.GRAY:
        return [luma]
    if layout is Layout.YCBCR444:
        return [luma, luma, luma]
    chroma = (padded_h // 16, padded_w // 16)
    return [luma, chroma, chroma]
