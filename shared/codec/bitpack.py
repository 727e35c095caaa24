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


class BitReader:
    """Reads MSB-first fields of given widths from a byte string, one batch at a time."""

    def __init__(self, data: bytes) -> None:
        self._bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8)).astype(np.int64)
        self.position = 0

    def read(self, widths: npt.NDArray[np.int64]) -> npt.NDArray[np.int64] | None:
        """The next fields, or None when the data ends first."""
        total = int(widths.sum())
        if self.position + total > self._bits.size:
            return None
        out = np.zeros(widths.size, dtype=np.int64)
        used = np.nonzero(widths)[0]
        if used.size:
            ends = np.cumsum(widths[used])
            bits = self._bits[self.position : self.position + total]
            shift = np.repeat(ends, widths[used]) - 1 - np.arange(total)
            out[used] = np.add.reduceat(bits << shift, ends - widths[used])
        self.position += total
        return out
