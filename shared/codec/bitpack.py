"""Vectorised packing of variable-length bit fields (no Python loop per field)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


def pack_fields(values: npt.NDArray[np.integer], widths: npt.NDArray[np.integer]) -> bytes:
    """Concatenate the low ``widths[i]`` bits of ``values[i]``, most significant bit first."""
    widths = widths.astype(np.int64)
    keep = widths > 0
    values, widths = values[keep].astype(np.int64), widths[keep]
    if widths.size == 0:
        return b""
    ends = np.cumsum(widths)
    owner = np.repeat(np.arange(widths.size), widths)
    shift = ends[owner] - 1 - np.arange(int(ends[-1]))
    bits = ((values[owner] >> shift) & 1).astype(np.uint8)
    return np.packbits(bits).tobytes()


def packed_size(widths: npt.NDArray[np.integer]) -> int:
    """Bytes that :func:`pack_fields` produces for these widths."""
    return (int(widths.sum()) + 7) // 8


def unpack_fields(data: bytes, widths: npt.NDArray[np.integer]) -> IntArray:
    """Inverse of :func:`pack_fields`; ``data`` must hold at least ``packed_size(widths)`` bytes."""
    widths = widths.astype(np.int64)
    out = np.zeros(widths.size, dtype=np.int64)
    keep = np.nonzero(widths > 0)[0]
    if keep.size == 0:
        return out
    used = widths[keep]
    ends = np.cumsum(used)
    total = int(ends[-1])
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8, count=(total + 7) // 8))[:total]
    owner = np.repeat(np.arange(used.size), used)
    shift = ends[owner] - 1 - np.arange(total)
    weighted = bits.astype(np.int64) << shift
    out[keep] = np.add.reduceat(weighted, ends - used)
    return out
