"""Entropy coder 1: context-sorted category tokens through one brotli stream, band by band.

Every coefficient becomes a *token*, its magnitude category (0 for zero, else the bit length
of ``|v|``), and a raw field of ``token`` bits (sign, then the magnitude below its leading
one). Within band k the tokens of all blocks are sorted by a context that the decoder can
compute from bands < k alone (the two lower-frequency neighbours of the same block and how
many coefficients of the block are non-zero so far), so each context's tokens sit together
in the stream and the compressor sees a locally stationary source. DC is predicted from the
block to its left (from above in the first column), which a cumulative sum undoes.

One brotli stream carries the tokens of every band and is flushed after each band, so a
payload cut after any band still decodes. A band's segment is::

    varint  n       length of this band's brotli chunk
    n bytes         brotli chunk: the band's tokens, context-sorted
    m bytes         raw fields, MSB first; m = ceil(sum of this band's tokens / 8)
"""

from __future__ import annotations

from collections.abc import Sequence

import brotli
import numpy as np
import numpy.typing as npt

from shared.codec.bitpack import pack_fields, packed_size, unpack_fields
from shared.codec.coefficients import Int32Array, Retention
from shared.codec.errors import PayloadError
from shared.codec.profiles import DcMode
from shared.codec.varint import read_varint, write_varint
from shared.codec.zigzag import FREQ_ABOVE, FREQ_LEFT

CODER_ID = 1
MAX_TOKEN = 15  # |v| < 2**15, far above any quantised 8-bit DCT coefficient
_BROTLI_QUALITY = 9
_BROTLI_WINDOW = 22

_S_LEVELS = np.minimum(np.floor(np.log2(np.arange(128) + 1)).astype(np.int16), 5)
_NZ_LEVELS = np.minimum(np.floor(np.log2(np.arange(65) + 1)).astype(np.int16), 6)
_CONTEXTS_PER_CHANNEL = 6 * 7


def _category(values: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    return np.frexp(np.abs(values).astype(np.float32))[1].astype(np.uint8)


def _fields(values: npt.NDArray[np.int32], tokens: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    magnitude = np.abs(values).astype(np.int64)
    below = np.maximum(tokens.astype(np.int64) - 1, 0)
    leading = np.where(tokens > 0, 1 << below, 0)
    return ((values < 0).astype(np.int64) << below) | (magnitude - leading)


def _values(fields: npt.NDArray[np.int64], tokens: npt.NDArray[np.uint8]) -> Int32Array:
    below = np.maximum(tokens.astype(np.int64) - 1, 0)
    magnitude = np.where(tokens > 0, (1 << below) | (fields & ((1 << below) - 1)), 0)
    negative = (fields >> below) & (tokens > 0)
    return np.where(negative == 1, -magnitude, magnitude).astype(np.int32)


def _ac_contexts(abs_rows: npt.NDArray[np.int32], nonzero_before: npt.NDArray[np.int16],
                 channel_base: npt.NDArray[np.int16], band: int) -> npt.NDArray[np.int16]:
    neighbours = abs_rows[:, FREQ_ABOVE[band]] + abs_rows[:, FREQ_LEFT[band]]
    s_level = _S_LEVELS[np.minimum(neighbours, 127)]
    return channel_base + s_level * 7 + _NZ_LEVELS[nonzero_before]


def _dc_grid(channel: Int32Array, kept: Retention) -> Int32Array:
    if kept.dc_mode is DcMode.ANCHORS:
        return channel[:: kept.anchor_every, :: kept.anchor_every, 0]
    return channel[:, :, 0]


def _dc_residuals(grid: Int32Array) -> Int32Array:
    residual = grid.copy()
    residual[:, 1:] -= grid[:, :-1]
    residual[1:, 0] -= grid[:-1, 0]
    return residual


def _dc_from_residuals(residual: Int32Array) -> Int32Array:
    grid = residual.copy()
    grid[:, 0] = np.cumsum(residual[:, 0])
    return np.cumsum(grid, axis=1, dtype=np.int32)


class _Layout:
    """Where each channel's blocks sit in the stacked (rows, 64) matrix."""

    def __init__(self, shapes: Sequence[tuple[int, int]], retention: Sequence[Retention]) -> None:
        self.shapes = list(shapes)
        self.retention = list(retention)
        sizes = [h * w for h, w in shapes]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.rows = int(self.starts[-1])
        self.bands = max(k.keep for k in retention)
        self.channel_base = np.repeat(
            (np.arange(len(sizes)) * _CONTEXTS_PER_CHANNEL).astype(np.int16), sizes
        )

    def active(self, band: int) -> npt.NDArray[np.int64] | slice:
        """Rows whose channel retains ``band``: a slice when they are contiguous."""
        chans = [c for c, kept in enumerate(self.retention) if kept.keep > band]
        if chans == list(range(chans[-1] + 1)):
            return slice(0, int(self.starts[chans[-1] + 1]))
        return np.concatenate([np.arange(self.starts[c], self.starts[c + 1]) for c in chans])

    def dc_counts(self) -> list[int]:
        counts = []
        for (h, w), kept in zip(self.shapes, self.retention, strict=True):
            counts.append(int(kept.anchor_mask(h, w).sum()))
        return counts


def encode_bands(channels: Sequence[Int32Array], retention: Sequence[Retention]) -> list[bytes]:
    """Entropy-code the retained coefficients; returns one segment per band."""
    layout = _Layout([c.shape[:2] for c in channels], retention)
    rows = np.concatenate([c.reshape(-1, 64) for c in channels])
    abs_rows = np.concatenate([np.abs(rows), np.zeros((layout.rows, 1), np.int32)], axis=1)
    nonzero = np.cumsum(rows[:, 1:] != 0, axis=1, dtype=np.int16)
    tokens = _category(rows)
    compressor = brotli.Compressor(quality=_BROTLI_QUALITY, lgwin=_BROTLI_WINDOW)
    segments = []
    for band in range(layout.bands):
        if band == 0:
            residuals = [
                _dc_residuals(_dc_grid(c, k)).reshape(-1)
                for c, k in zip(channels, retention, strict=True)
            ]
            values = np.concatenate(residuals)
            band_tokens = _category(values)
            ordered = band_tokens
        else:
            active = layout.active(band)
            values = rows[active, band]
            band_tokens = tokens[active, band]
            nz_before = nonzero[active, band - 2] if band > 1 else np.zeros(1, np.int16)
            contexts = _ac_contexts(
                abs_rows[active], nz_before, layout.channel_base[active], band
            )
            ordered = band_tokens[np.argsort(contexts, kind="stable")]
        chunk = compressor.process(ordered.tobytes()) + compressor.flush()
        fields = pack_fields(_fields(values, band_tokens), band_tokens)
        segments.append(write_varint(len(chunk)) + chunk + fields)
    return segments


def decode_bands(
    segments: Sequence[memoryview],
    offsets: Sequence[int],
    shapes: Sequence[tuple[int, int]],
    retention: Sequence[Retention],
) -> list[Int32Array]:
    """Inverse of :func:`encode_bands`; ``offsets`` locate each segment for error messages."""
    layout = _Layout(shapes, retention)
    rows = np.zeros((layout.rows, 64), dtype=np.int32)
    abs_rows = np.zeros((layout.rows, 65), dtype=np.int32)
    nonzero = np.zeros(layout.rows, dtype=np.int16)
    decompressor = brotli.Decompressor()
    for band, (segment, where) in enumerate(zip(segments, offsets, strict=True)):
        length, pos = read_varint(segment, 0, where)
        if pos + length > len(segment):
            raise PayloadError(f"band {band}'s token stream runs past its segment", where)
        active = layout.active(band) if band else slice(0, 0)
        expected = sum(layout.dc_counts()) if band == 0 else len(rows[active])
        ordered = _inflate(decompressor, segment[pos : pos + length], expected, band, where)
        pos += length
        if int(ordered.max(initial=0)) > MAX_TOKEN:
            raise PayloadError(f"band {band} holds an impossible magnitude category", where)
        if band == 0:
            band_tokens = ordered
        else:
            contexts = _ac_contexts(
                abs_rows[active], nonzero[active], layout.channel_base[active], band
            )
            band_tokens = np.empty_like(ordered)
            band_tokens[np.argsort(contexts, kind="stable")] = ordered
        size = packed_size(band_tokens)
        if pos + size != len(segment):
            raise PayloadError(
                f"band {band}'s segment holds {len(segment) - pos} bytes of raw bits, "
                f"its tokens need {size}",
                where,
            )
        fields = unpack_fields(segment[pos:].tobytes(), band_tokens)
        values = _values(fields, band_tokens)
        if band == 0:
            _place_dc(rows, values, layout)
        else:
            rows[active, band] = values
            abs_rows[active, band] = np.abs(values)
            nonzero[active] += (values != 0).astype(np.int16)
    return [
        rows[layout.starts[c] : layout.starts[c + 1]].reshape(h, w, 64)
        for c, (h, w) in enumerate(layout.shapes)
    ]


def _inflate(decompressor: brotli.Decompressor, chunk: memoryview, expected: int, band: int,
             where: int) -> npt.NDArray[np.uint8]:
    try:
        out = decompressor.process(bytes(chunk), output_buffer_limit=max(expected, 1))
    except brotli.error as exc:
        raise PayloadError(f"band {band}'s token stream is corrupt ({exc})", where) from exc
    if len(out) != expected or not decompressor.can_accept_more_data():
        raise PayloadError(
            f"band {band} should hold {expected} tokens but its stream holds "
            f"{'more' if len(out) >= expected else len(out)}",
            where,
        )
    return np.frombuffer(out, dtype=np.uint8)


def _place_dc(rows: Int32Array, residuals: npt.NDArray[np.int32], layout: _Layout) -> None:
    start = 0
    for c, ((h, w), kept) in enumerate(zip(layout.shapes, layout.retention, strict=True)):
        mask = kept.anchor_mask(h, w)
        count = int(mask.sum())
        if count == 0:
            continue
        gh = len(range(0, h, kept.anchor_every)) if kept.dc_mode is DcMode.ANCHORS else h
        grid = _dc_from_residuals(residuals[start : start + count].reshape(gh, -1))
        start += count
        channel = rows[layout.starts[c] : layout.starts[c + 1], 0].reshape(h, w)
        channel[mask] = grid.reshape(-1)
