"""Entropy coder 1: context-sorted category tokens through one brotli stream, band by band.

Every coefficient becomes a *token*, its magnitude category (0 for zero, else the bit length
of ``|v|``), and a raw field of ``token`` bits (sign, then the magnitude below its leading
one). Within band k the tokens of all blocks are sorted by a context that the decoder can
compute from bands < k alone (the two lower-frequency neighbours of the same block and how
many coefficients of the block are non-zero so far), so each context's tokens sit together
and the compressor sees a locally stationary source. DC is predicted from the block to its
left (from above in the first column), which a cumulative sum undoes.

The sorted tokens are binarised in unary bit planes and coded enumeratively (planes.py):
the popcounts of 64-decision words carry the statistics and go through brotli; the ranks
of the words are near-uniform raw bits.

One brotli stream carries the popcounts of every band and is flushed after each band, so a
payload cut after any band still decodes. A band's segment is::

    varint  n       length of this band's brotli chunk
    n bytes         brotli chunk: popcount bytes of the band's plane words, plane 0 first
    m bytes         bit fields, MSB first, zero-padded to a byte: the rank of every plane
                    word (ceil(log2 C(64, k)) bits each), then the raw fields

The planes of a band are the unary planes of its tokens, then one plane holding, for each
token of at least 2 in the same order, the bit below the magnitude's leading one. A raw
field is the sign, then the magnitude's bits below those two (``max(token - 1, 1)`` bits
for a non-zero token, none for zero). Tokens, planes and fields are all in context order.
"""

from __future__ import annotations

from collections.abc import Sequence

import brotli
import numpy as np
import numpy.typing as npt

from shared.codec.bitpack import BitReader, pack_fields
from shared.codec.coefficients import Int32Array, Retention
from shared.codec.errors import PayloadError
from shared.codec.planes import WORD, PlaneDecoder, encode_planes, unary_planes
from shared.codec.profiles import DcMode
from shared.codec.varint import read_varint, write_varint
from shared.codec.zigzag import FREQ_ABOVE, FREQ_LEFT

CODER_ID = 1
MAX_TOKEN = 15  # |v| < 2**15, far above any quantised 8-bit DCT coefficient
_BROTLI_QUALITY = 5  # higher qualities gain under 1% on bit planes at several times the time
_BROTLI_WINDOW = 22

_S_LEVELS = np.minimum(np.floor(np.log2(np.arange(128) + 1)).astype(np.int16), 5)
_NZ_LEVELS = np.minimum(np.floor(np.log2(np.arange(65) + 1)).astype(np.int16), 6)
_CONTEXTS_PER_CHANNEL = 6 * 7 * 6


# Bit length of every magnitude a token can describe; a table lookup beats frexp by ~4x.
_BIT_LENGTH = np.array([int(v).bit_length() for v in range(1 << MAX_TOKEN)], dtype=np.uint8)


def _category(values: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    magnitude = np.abs(values)
    if magnitude.size and int(magnitude.max()) >= 1 << MAX_TOKEN:
        raise ValueError(f"coefficient magnitude {int(magnitude.max())} exceeds 2**{MAX_TOKEN}")
    return _BIT_LENGTH[magnitude]


def _top_bits(
    values: npt.NDArray[np.int32], tokens: npt.NDArray[np.uint8]
) -> npt.NDArray[np.bool_]:
    """The bit below the leading one of every magnitude whose token is at least 2.

    It is not uniform (magnitudes fall off within a category), so it is coded as a decision
    plane rather than as a raw bit.
    """
    wide = tokens >= 2
    shift = tokens[wide].astype(np.int64) - 2
    return ((np.abs(values[wide]).astype(np.int64) >> shift) & 1).astype(bool)


def _field_widths(tokens: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    # sign, then the magnitude below its two top bits (the top one implied by the token,
    # the next sent as a decision); a token of 1 leaves the sign only
    widths: npt.NDArray[np.int64] = np.maximum(tokens.astype(np.int64) - 1, tokens > 0)
    return widths


def _fields(values: npt.NDArray[np.int32], tokens: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    below = np.maximum(tokens.astype(np.int64) - 2, 0)
    low = np.abs(values).astype(np.int64) & ((1 << below) - 1)
    return ((values < 0).astype(np.int64) << below) | low


def _values(
    fields: npt.NDArray[np.int64], tokens: npt.NDArray[np.uint8], top: npt.NDArray[np.bool_]
) -> Int32Array:
    t = tokens.astype(np.int64)
    below = np.maximum(t - 2, 0)
    second = np.zeros(t.size, dtype=np.int64)
    second[t >= 2] = top
    magnitude = np.where(
        t >= 2,
        (1 << np.maximum(t - 1, 0)) | (second << below) | (fields & ((1 << below) - 1)),
        t,
    )
    negative = ((fields >> below) & 1).astype(bool) & (t > 0)
    return np.where(negative, -magnitude, magnitude).astype(np.int32)


def _ac_contexts(
    abs_rows: npt.NDArray[np.int32],
    nonzero_before: npt.NDArray[np.int16],
    layout: _Layout,
    active: npt.NDArray[np.int64] | slice,
    band: int,
) -> npt.NDArray[np.int16]:
    """Context of band ``band`` in each active row, from bands < ``band`` only.

    ``nonzero_before`` counts the non-zero AC coefficients below ``band`` in every row (all
    rows, so the left and upper blocks' counts can be read).
    """
    absent = abs_rows.shape[1] - 1  # an all-zero column stands in for a missing neighbour
    above, left = (absent if f == 64 else int(f) for f in (FREQ_ABOVE[band], FREQ_LEFT[band]))
    frequency = abs_rows[:, above] + abs_rows[:, left]
    s_level = _S_LEVELS[np.minimum(frequency, 127)]
    own = _NZ_LEVELS[nonzero_before[active]]
    spatial = nonzero_before[layout.left[active]] + nonzero_before[layout.above[active]]
    spatial_level = _S_LEVELS[np.minimum(spatial, 127)]
    contexts: npt.NDArray[np.int16] = (
        layout.channel_base[active] + (s_level * 7 + own) * 6 + spatial_level
    )
    return contexts


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
        # Row of the block to the left and above (the block itself on the first column/row).
        self.left = np.arange(self.rows)
        self.above = np.arange(self.rows)
        for start, (h, w) in zip(self.starts, shapes, strict=False):
            grid = np.arange(h * w).reshape(h, w) + start
            self.left[grid[:, 1:]] = grid[:, :-1]
            self.above[grid[1:, :]] = grid[:-1, :]

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
    # Only the bands that travel are worked on: a lowpass image uses a quarter of them.
    rows = np.concatenate([c.reshape(-1, 64)[:, : layout.bands] for c in channels])
    abs_rows = np.zeros((layout.rows, layout.bands + 1), np.int32)
    abs_rows[:, : layout.bands] = np.abs(rows)
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
            tokens_sorted = _category(values)
        else:
            active = layout.active(band)
            nz_before = nonzero[:, band - 2] if band > 1 else np.zeros(layout.rows, np.int16)
            contexts = _ac_contexts(abs_rows[active], nz_before, layout, active, band)
            order = np.argsort(contexts, kind="stable")
            values = rows[active, band][order]
            tokens_sorted = tokens[active, band][order]
        planes = [*unary_planes(tokens_sorted), _top_bits(values, tokens_sorted)]
        counts, ranks, rank_bits = encode_planes(planes)
        chunk = compressor.process(counts.tobytes()) + compressor.flush()
        bits = pack_fields(
            np.concatenate([ranks, _fields(values, tokens_sorted)]),
            np.concatenate([rank_bits, _field_widths(tokens_sorted)]),
        )
        segments.append(write_varint(len(chunk)) + chunk + bits)
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
    abs_rows = np.zeros((layout.rows, layout.bands + 1), dtype=np.int32)
    nonzero = np.zeros(layout.rows, dtype=np.int16)
    decompressor = brotli.Decompressor()
    for band, (segment, where) in enumerate(zip(segments, offsets, strict=True)):
        length, pos = read_varint(segment, 0, where)
        if pos + length > len(segment):
            raise PayloadError(f"band {band}'s token stream runs past its segment", where)
        active = layout.active(band) if band else slice(0, 0)
        expected = sum(layout.dc_counts()) if band == 0 else len(rows[active])
        counts = _inflate(decompressor, segment[pos : pos + length], expected, band, where)
        pos += length
        reader = BitReader(segment[pos:].tobytes())
        planes = PlaneDecoder(counts, reader, where)
        tokens_sorted = planes.tokens(expected, MAX_TOKEN)
        top = planes.plane(int((tokens_sorted >= 2).sum()))
        planes.finish()
        fields = reader.read(_field_widths(tokens_sorted))
        if fields is None or (reader.position + 7) // 8 != len(segment) - pos:
            raise PayloadError(
                f"band {band}'s segment holds {len(segment) - pos} bytes of bit fields, "
                f"its tokens need {(reader.position + 7) // 8}",
                where,
            )
        values_sorted = _values(fields, tokens_sorted, top)
        if band == 0:
            values = values_sorted
        else:
            contexts = _ac_contexts(abs_rows[active], nonzero, layout, active, band)
            values = np.empty_like(values_sorted)
            values[np.argsort(contexts, kind="stable")] = values_sorted
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


def _inflate(
    decompressor: brotli.Decompressor, chunk: memoryview, expected: int, band: int, where: int
) -> npt.NDArray[np.uint8]:
    # A token spans at most MAX_TOKEN planes of WORD-decision words, each plane ending in at
    # most one partial word: anything longer is corrupt, and the bound stops a decompression
    # bomb.
    limit = expected * MAX_TOKEN // WORD + MAX_TOKEN + 2
    try:
        out = decompressor.process(bytes(chunk), output_buffer_limit=limit)
    except brotli.error as exc:
        raise PayloadError(f"band {band}'s token stream is corrupt ({exc})", where) from exc
    if len(out) >= limit or not decompressor.can_accept_more_data():
        raise PayloadError(f"band {band}'s token stream is longer than its tokens allow", where)
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
