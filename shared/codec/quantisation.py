"""JPEG Annex K quantisation tables, scaled by a quality factor exactly as libjpeg does."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.codec.zigzag import ZIGZAG

# ITU-T T.81 Annex K, tables K.1 (luminance) and K.2 (chrominance), natural (row-major) order.
ANNEX_K_LUMA = np.array(
    [
        [16, 11, 10, 16, 24, 40, 51, 61],
        [12, 12, 14, 19, 26, 58, 60, 55],
        [14, 13, 16, 24, 40, 57, 69, 56],
        [14, 17, 22, 29, 51, 87, 80, 62],
        [18, 22, 37, 56, 68, 109, 103, 77],
        [24, 35, 55, 64, 81, 104, 113, 92],
        [49, 64, 78, 87, 103, 121, 120, 101],
        [72, 92, 95, 98, 112, 100, 103, 99],
    ],
    dtype=np.int32,
)
ANNEX_K_CHROMA = np.full((8, 8), 99, dtype=np.int32)
ANNEX_K_CHROMA[:4, :4] = [
    [17, 18, 24, 47],
    [18, 21, 26, 66],
    [24, 26, 56, 99],
    [47, 66, 99, 99],
]


def quality_scale(quality: int) -> int:
    """libjpeg's ``jpeg_quality_scaling``: percentage applied to the base tables."""
    if not 1 <= quality <= 100:
        raise ValueError(f"quality must be in 1..100, got {quality}")
    return 5000 // quality if quality < 50 else 200 - 2 * quality


def scaled_table(base: npt.NDArray[np.int32], quality: int) -> npt.NDArray[np.uint16]:
    """Scale a base table as ``jpeg_add_quant_table(..., force_baseline=TRUE)`` does.

    Baseline clamping to 1..255 is what Pillow and cjpeg use, so our tables match theirs.
    """
    scale = quality_scale(quality)
    table = (base.astype(np.int64) * scale + 50) // 100
    return np.clip(table, 1, 255).astype(np.uint16)


_LOG_LUMA_TABLES = np.log(
    np.stack([scaled_table(ANNEX_K_LUMA, q) for q in range(1, 101)]).astype(np.float64)
)


def standard_tables(quality: int) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
    """(luma, chroma) tables for ``quality``, 8x8 in natural order."""
    return scaled_table(ANNEX_K_LUMA, quality), scaled_table(ANNEX_K_CHROMA, quality)


def nearest_quality(table: npt.NDArray[np.integer]) -> int:
    """The libjpeg quality whose Annex K luma table is closest to ``table`` (8x8, natural order).

    Closeness is the mean absolute log ratio of the steps, so a step twice as coarse weighs the
    same at 2 as at 100. It names a JPEG input's own tables ("about q87"); ties go to the lower
    quality (above about 97 the clamped tables are all ones).
    """
    steps = np.log(np.maximum(np.asarray(table, dtype=np.float64), 1.0))
    distances = np.abs(_LOG_LUMA_TABLES - steps).mean(axis=(1, 2))
    return int(np.argmin(distances)) + 1


def to_zigzag(table: npt.NDArray[np.integer]) -> npt.NDArray[np.float32]:
    """An 8x8 natural-order table as 64 zigzag-ordered float steps."""
    return np.asarray(table, dtype=np.float32).reshape(64)[ZIGZAG]
