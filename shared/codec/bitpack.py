"""Vectorised packing of variable-length bit fields (no Python loop per field or per bit).

Fields are at most 63 bits wide. Each is shifted to its place in the 64-bit word it starts
in (a field spills into at most one following word), and the words are assembled with one
``bitwise_or.reduceat``; reading takes an unaligned big-endian 64-bit window at each
field's first byte, plus the byte after it, and shifts the field out.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]
MAX_WIDTH = 63


def pack_fields(values: npt.NDArray[np.integer], widths: npt.NDArray[np.integer]) -> bytes:
    """Concatenate the ``widths[i]``-bit ``values[i]``, most significant bit first.

    Every value must fit its width (``0 <= values[i] < 2**widths[i]``, widths at most 63).
    """
    widths = widths.astype(np.int64)
    if np.any(widths == 0):
        keep = widths > 0
        values, widths = values[keep], widths[keep]
    if widths.size == 0:
        return b""
    fields = values.astype(np.uint64)
    ends = np.cumsum(widths)
    total = int(ends[-1])
    word = ends - widths
    word >>= 6
    # Shift that ends each field where it ends within its word; negative when it spills
    # into the next word (only the word's last field can). Computed in place of ``ends``.
    left = np.subtract(64, ends, out=ends)
    left += word << 6
    spill = left < 0
    spilled = fields[spill]
    back = left[spill]
    np.maximum(left, 0, out=left)
    first = fields
    first <<= left.view(np.uint64)
    first[spill] = spilled >> (-back).view(np.uint64)
    # A field starts in every word but perhaps the last (none is 64 bits wide) and the fields
    # of one word do not overlap, so each word is the OR of a contiguous run.
    words = np.zeros(-(-total // 64), dtype=np.uint64)
    words[: int(word[-1]) + 1] = np.bitwise_or.reduceat(
        first, np.flatnonzero(np.diff(word, prepend=-1))
    )
    # At most one field spills into any word, so the targets are distinct.
    words[word[spill] + 1] |= spilled << (back + 64).view(np.uint64)
    return words.astype(">u8").tobytes()[: -(-total // 8)]


class BitReader:
    """Reads MSB-first fields at given bit positions of a byte string."""

    def __init__(self, data: bytes) -> None:
        self.size = len(data) * 8
        self._bytes = np.zeros(len(data) + 9, dtype=np.uint8)
        self._bytes[: len(data)] = np.frombuffer(data, dtype=np.uint8)
        # Every byte offset's big-endian 64-bit window (a strided view, no copy).
        self._windows: npt.NDArray[np.uint64] = np.ndarray(
            (len(data) + 1,), dtype=">u8", buffer=self._bytes, strides=(1,)
        )

    def read_at(self, starts: npt.NDArray[np.int64], widths: npt.NDArray[np.int64]) -> IntArray:
        """The fields of these widths (at most 63 bits) that start at these bit positions;
        every field must end within the data."""
        byte = starts >> 3
        shift = (starts & 7).astype(np.uint64)
        window = self._windows[byte].astype(np.uint64) << shift
        window |= self._bytes[byte + 8].astype(np.uint64) >> (np.uint64(8) - shift)
        # Two shifts so that a zero width (a shift by 64) yields 0.
        window >>= np.uint64(1)
        window >>= np.uint64(MAX_WIDTH) - widths.astype(np.uint64)
        fields: IntArray = window.astype(np.int64)
        return fields
