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

Every coefficient, DC included, lies within +-``MAX_COEFFICIENT``: the encoder refuses any
other before writing a byte and the decoder refuses a payload that decodes to one, so what
one side accepts the other reads. The bound leaves a DC residual (the difference of two
coefficients) a token of at most ``MAX_TOKEN``.
"""

from __future__ import annotations

from collections.abc import Sequence

import brotli
import numpy as np
import numpy.typing as npt

from shared.codec.bitpack import BitReader, pack_fields
from shared.codec.coefficients import Int32Array, Retention
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.planes import (
    RANK_BITS,
    WORD,
    decode_words,
    encode_words,
    pad_planes,
    plane_sizes,
    planes_to_tokens,
    rank_in_range,
)
from shared.codec.profiles import DcMode
from shared.codec.varint import read_varint, write_varint
from shared.codec.zigzag import FREQ_ABOVE, FREQ_LEFT

CODER_ID = 1
MAX_TOKEN = 15  # the largest magnitude category: |v| < 2**15
#: The largest coefficient magnitude a payload carries, on both sides of the wire. Half the
#: token range, so a DC residual fits; far above any quantised 8-bit DCT coefficient (at most
#: 1024 with unit steps).
MAX_COEFFICIENT = (1 << (MAX_TOKEN - 1)) - 1
#: Decision planes a band can hold: the unary planes 0..MAX_TOKEN, then the top plane.
_MAX_PLANES = MAX_TOKEN + 2
_BROTLI_QUALITY = 5  # higher qualities gain under 1% on bit planes at several times the time
_BROTLI_WINDOW = 22

_S_LEVELS = np.minimum(np.floor(np.log2(np.arange(256) + 1)).astype(np.int16), 5)
_NZ_LEVELS = np.minimum(np.floor(np.log2(np.arange(65) + 1)).astype(np.int16), 6)
_CONTEXTS_PER_CHANNEL = 6 * 7 * 6
_ZERO = np.zeros(1, dtype=np.int64)


# Bit length of every magnitude a token can describe; a table lookup beats frexp by ~4x.
_BIT_LENGTH = np.array([int(v).bit_length() for v in range(1 << MAX_TOKEN)], dtype=np.uint8)


def _category(values: npt.NDArray[np.int32]) -> npt.NDArray[np.uint8]:
    magnitude = np.abs(values)
    if magnitude.size and int(magnitude.max()) >= 1 << MAX_TOKEN:
        raise ValueError(f"coefficient magnitude {int(magnitude.max())} exceeds 2**{MAX_TOKEN}")
    return _BIT_LENGTH[magnitude]


def _over_bound(values: npt.NDArray[np.int32]) -> npt.NDArray[np.bool_]:
    # Two comparisons, not abs(): abs() of the most negative int32 wraps to itself.
    over: npt.NDArray[np.bool_] = (values > MAX_COEFFICIENT) | (values < -MAX_COEFFICIENT)
    return over


def _check_bound(bands: npt.NDArray[np.int32], layout: _Layout) -> None:
    """Refuse, before anything is coded, a coefficient the decoder would refuse.

    ``bands``: ``(bands, rows)`` band-major, as :func:`encode_bands` stacks the channels.
    """
    over = np.argwhere(_over_bound(bands))
    if not over.size:
        return
    band, row = (int(i) for i in over[0])
    channel = int(np.searchsorted(layout.starts, row, side="right")) - 1
    y, x = divmod(row - int(layout.starts[channel]), layout.shapes[channel][1])
    raise ValueError(
        f"coefficient {int(bands[band, row])} (channel {channel}, block ({y}, {x}), zigzag "
        f"band {band}) exceeds the payload's bound of +-{MAX_COEFFICIENT}; quantise with "
        "larger steps"
    )


def _fields(
    values: npt.NDArray[np.int32], tokens: npt.NDArray[np.uint8]
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32], npt.NDArray[np.bool_]]:
    """(field, width, second bit) of every non-zero token, in order (a zero token has none).

    The second bit, the one below the leading one, exists for tokens of at least 2. It is
    not uniform (magnitudes fall off within a category), so it is coded as a decision plane
    rather than as a raw bit.
    """
    t = tokens[tokens > 0].astype(np.int32)
    v = values[values != 0]
    below = np.maximum(t - 2, 0)
    magnitude = np.abs(v)
    top = ((magnitude >> below) & 1)[t >= 2].astype(bool)
    # The field: the sign, then the magnitude below its two top bits (the top one implied by
    # the token, the next sent as a decision); a token of 1 leaves the sign only.
    magnitude &= (1 << below) - 1
    magnitude |= (v < 0).astype(np.int32) << below
    return magnitude, np.maximum(t - 1, 1), top


def _values(
    fields: npt.NDArray[np.int64],
    tokens: npt.NDArray[np.uint8],
    nonzero: npt.NDArray[np.int64],
    top: npt.NDArray[np.bool_],
) -> Int32Array:
    """Inverse of :func:`_fields`: ``nonzero`` indexes the non-zero tokens, whose fields
    (and, for tokens of at least 2, ``top`` bits) these are."""
    t = tokens[nonzero].astype(np.int32)
    field = fields.astype(np.int32)  # at most MAX_TOKEN - 1 bits
    below = np.maximum(t - 2, 0)
    second = np.zeros(t.size, dtype=np.int32)
    second[t >= 2] = top
    magnitude = (1 << below) - 1
    magnitude &= field
    magnitude |= second << below
    magnitude |= 1 << (t - 1)
    negative = ((field >> below) & 1).astype(bool)
    np.negative(magnitude, out=magnitude, where=negative)
    values = np.zeros(tokens.size, dtype=np.int32)
    values[nonzero] = magnitude
    return values


def _ac_contexts(
    abs_bands: npt.NDArray[np.uint8],
    nonzero_before: npt.NDArray[np.uint8],
    layout: _Layout,
    active: npt.NDArray[np.int64] | slice,
    band: int,
) -> npt.NDArray[np.int16]:
    """Context of band ``band`` in each active row, from bands < ``band`` only.

    ``abs_bands[b]`` holds ``min(|v|, 127)`` of band b in every row (band-major, so a band
    is contiguous); ``nonzero_before`` counts the non-zero AC coefficients below ``band`` in
    every row (all rows, so the left and upper blocks' counts can be read).
    """
    absent = abs_bands.shape[0] - 1  # an all-zero band stands in for a missing neighbour
    above, left = (absent if f == 64 else int(f) for f in (FREQ_ABOVE[band], FREQ_LEFT[band]))
    frequency = abs_bands[above, active] + abs_bands[left, active]  # at most 254: no overflow
    contexts: npt.NDArray[np.int16] = _S_LEVELS[frequency] * np.int16(7)
    contexts += _NZ_LEVELS[nonzero_before[active]]
    contexts *= np.int16(6)
    spatial = nonzero_before[layout.left[active]] + nonzero_before[layout.above[active]]
    contexts += _S_LEVELS[spatial]
    contexts += layout.channel_base[active]
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
    """Entropy-code the retained coefficients; returns one segment per band.

    Only the context sort and the plane layout run band by band; the plane words, their
    ranks and the bit fields of all bands are computed in one pass each.
    """
    layout = _Layout([c.shape[:2] for c in channels], retention)
    # Only the bands that travel are worked on: a lowpass image uses a quarter of them.
    # Band-major (bands, rows) so that every band is contiguous.
    bands = np.concatenate([c.reshape(-1, 64)[:, : layout.bands] for c in channels]).T.copy()
    _check_bound(bands, layout)
    abs_bands = np.zeros((layout.bands + 1, layout.rows), np.uint8)
    np.minimum(np.abs(bands), 127, out=abs_bands[: layout.bands], casting="unsafe")
    tokens = _category(bands)
    nonzero = np.zeros(layout.rows, np.uint8)  # non-zero AC below the current band
    values_sorted, tokens_sorted = [], []
    for band in range(layout.bands):
        if band == 0:
            residuals = [
                _dc_residuals(_dc_grid(c, k)).reshape(-1)
                for c, k in zip(channels, retention, strict=True)
            ]
            values = np.concatenate(residuals)
            values_sorted.append(values)
            tokens_sorted.append(_category(values))
            continue
        active = layout.active(band)
        contexts = _ac_contexts(abs_bands, nonzero, layout, active, band)
        order = np.argsort(contexts, kind="stable")
        values_sorted.append(bands[band, active][order])
        tokens_sorted.append(tokens[band, active][order])
        nonzero += bands[band] != 0
    all_values = np.concatenate(values_sorted)
    all_tokens = np.concatenate(tokens_sorted)
    # Boundaries of each band in tokens, fields, top bits and plane words.
    token_ends = np.cumsum([t.size for t in tokens_sorted]).tolist()
    del values_sorted, tokens_sorted, bands, abs_bands, tokens  # bound the peak memory
    fields, widths, top = _fields(all_values, all_tokens)
    field_ends = np.searchsorted(np.flatnonzero(all_tokens), token_ends).tolist()
    top_ends = np.concatenate([[0], np.cumsum(all_tokens >= 2)])[token_ends].tolist()
    decisions, word_ends = pad_planes(all_tokens, token_ends, top, top_ends)
    counts, ranks, rank_bits = encode_words(decisions)
    # Bits of every band: its ranks, its fields, then zero padding to a byte.
    rank_total = np.concatenate([[0], np.cumsum(rank_bits)])[[0, *word_ends]]
    field_total = np.concatenate([[0], np.cumsum(widths)])[[0, *field_ends]]
    bits = np.diff(rank_total) + np.diff(field_total)
    pad = -bits % 8
    pieces_values: list[npt.NDArray[np.integer]] = []
    pieces_widths: list[npt.NDArray[np.integer]] = []
    for band in range(layout.bands):
        w0, w1 = ([0, *word_ends][band], word_ends[band])
        t0, t1 = ([0, *field_ends][band], field_ends[band])
        pieces_values += [ranks[w0:w1], fields[t0:t1], _ZERO]
        pieces_widths += [rank_bits[w0:w1], widths[t0:t1], pad[band : band + 1]]
    packed = pack_fields(np.concatenate(pieces_values), np.concatenate(pieces_widths))
    byte_ends = np.cumsum((bits + pad) // 8).tolist()
    compressor = brotli.Compressor(quality=_BROTLI_QUALITY, lgwin=_BROTLI_WINDOW)
    segments = []
    for band in range(layout.bands):
        w0, w1 = ([0, *word_ends][band], word_ends[band])
        chunk = compressor.process(counts[w0:w1].tobytes()) + compressor.flush()
        data = packed[([0, *byte_ends][band]) : byte_ends[band]]
        segments.append(write_varint(len(chunk)) + chunk + data)
    return segments


def _band_starts(
    widths: npt.NDArray[np.int64], ends: list[int], bases: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Bit position of every field when band b's run ``[ends[b-1], ends[b])`` starts at
    ``bases[b]``, and each band's total width."""
    total = np.cumsum(widths)
    starts = total - widths
    bounds = np.array([0, *ends], dtype=np.int64)
    first = np.concatenate([[0], total])[bounds]
    starts += np.repeat(bases - first[:-1], np.diff(bounds))
    return starts, np.diff(first)


def decode_bands(
    segments: Sequence[memoryview],
    offsets: Sequence[int],
    shapes: Sequence[tuple[int, int]],
    retention: Sequence[Retention],
) -> list[Int32Array]:
    """Inverse of :func:`encode_bands`; ``offsets`` locate each segment for error messages.

    The popcounts alone lay out every band's planes, so the ranks, tokens and bit fields of
    all bands are decoded in one pass each; only the context sort runs band by band.
    """
    layout = _Layout(shapes, retention)
    decompressor = brotli.Decompressor()
    n_bands = len(segments)
    counts, sizes, data, actives = [], [], [], []
    for band, (segment, where) in enumerate(zip(segments, offsets, strict=True)):
        length, pos = read_varint(segment, 0, where)
        if pos + length > len(segment):
            raise PayloadError(
                PayloadErrorKind.TRUNCATED,
                f"band {band}'s token stream runs past its segment",
                where,
            )
        active = layout.active(band) if band else slice(0, 0)
        actives.append(active)
        expected = sum(layout.dc_counts()) if band == 0 else _active_rows(active, layout)
        band_counts = _inflate(decompressor, segment[pos : pos + length], expected, band, where)
        sizes.append(plane_sizes(band_counts, expected, MAX_TOKEN, where))
        counts.append(band_counts)
        data.append(segment[pos + length :])
    data_bytes = np.array([len(d) for d in data], dtype=np.int64)
    bases = np.concatenate([[0], np.cumsum(data_bytes)])[:-1] * 8
    reader = BitReader(b"".join(data))
    # Ranks of every band's plane words.
    all_counts = np.concatenate(counts).astype(np.int64) if counts else np.zeros(0, np.int64)
    word_ends = np.cumsum([c.size for c in counts]).tolist()
    rank_widths = RANK_BITS[all_counts]
    rank_starts, rank_bits = _band_starts(rank_widths, word_ends, bases)
    short = np.flatnonzero(rank_bits > data_bytes * 8)
    if short.size:
        raise PayloadError(
            PayloadErrorKind.INVALID, "decision plane ranks are truncated", offsets[int(short[0])]
        )
    ranks = reader.read_at(rank_starts, rank_widths)
    bad = np.flatnonzero(~rank_in_range(all_counts, ranks))
    if bad.size:
        band = int(np.searchsorted(word_ends, int(bad[0]), side="right"))
        raise PayloadError(
            PayloadErrorKind.INVALID, "decision plane ranks are out of range", offsets[band]
        )
    bits = decode_words(all_counts, ranks)
    all_tokens, top_bits = planes_to_tokens(bits, sizes, offsets)
    token_ends = np.cumsum([s[0] if len(s) > 1 else 0 for s in sizes]).tolist()
    # Bit fields of every non-zero token, after its band's ranks.
    nonzero = np.flatnonzero(all_tokens)
    field_ends = np.searchsorted(nonzero, token_ends).tolist()
    field_widths = np.maximum(all_tokens[nonzero].astype(np.int64) - 1, 1)
    field_starts, field_bits = _band_starts(field_widths, field_ends, bases + rank_bits)
    needed = (rank_bits + field_bits + 7) // 8
    wrong = np.flatnonzero(needed != data_bytes)
    if wrong.size:
        band = int(wrong[0])
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"band {band}'s segment holds {int(data_bytes[band])} bytes of bit fields, "
            f"its tokens need {int(needed[band])}",
            offsets[band],
        )
    fields = reader.read_at(field_starts, field_widths)
    all_values = _values(fields, all_tokens, nonzero, top_bits)
    bands = np.zeros((layout.bands, layout.rows), dtype=np.int32)  # band-major
    abs_bands = np.zeros((layout.bands + 1, layout.rows), dtype=np.uint8)
    nonzero_before = np.zeros(layout.rows, dtype=np.uint8)
    for band in range(n_bands):
        values_sorted = all_values[([0, *token_ends][band]) : token_ends[band]]
        if band == 0:
            _place_dc(bands[0], values_sorted, layout)
            continue
        active = actives[band]
        order = np.argsort(
            _ac_contexts(abs_bands, nonzero_before, layout, active, band), kind="stable"
        )
        if isinstance(active, slice):  # views: write in place
            values = bands[band, active]
            values[order] = values_sorted
            np.minimum(np.abs(values), 127, out=abs_bands[band, active], casting="unsafe")
            nonzero_before[active] += values != 0
        else:
            values = np.empty_like(values_sorted)
            values[order] = values_sorted
            bands[band, active] = values
            abs_bands[band, active] = np.minimum(np.abs(values), 127)
            nonzero_before[active] += values != 0
    over = np.flatnonzero(_over_bound(bands).any(axis=1))
    if over.size:
        band = int(over[0])
        value = int(bands[band][_over_bound(bands[band])][0])
        raise PayloadError(
            PayloadErrorKind.LIMIT,
            f"band {band} decodes to a coefficient of {value}, which exceeds the payload's "
            f"bound of +-{MAX_COEFFICIENT}",
            offsets[band],
        )
    rows = np.zeros((layout.rows, 64), dtype=np.int32)
    rows[:, : layout.bands] = bands.T
    return [
        rows[layout.starts[c] : layout.starts[c + 1]].reshape(h, w, 64)
        for c, (h, w) in enumerate(layout.shapes)
    ]


def _active_rows(active: npt.NDArray[np.int64] | slice, layout: _Layout) -> int:
    if isinstance(active, slice):
        return len(range(*active.indices(layout.rows)))
    return int(active.size)


def _inflate(
    decompressor: brotli.Decompressor, chunk: memoryview, expected: int, band: int, where: int
) -> npt.NDArray[np.uint8]:
    # A band's planes (at most _MAX_PLANES) each hold at most one decision per token, in
    # WORD-decision words: anything longer is corrupt, and the bound stops a decompression
    # bomb. One byte past it tells "longer" from "exactly at the bound".
    limit = _MAX_PLANES * -(-expected // WORD) + 1
    try:
        out = decompressor.process(bytes(chunk), output_buffer_limit=limit)
    except brotli.error as exc:
        raise PayloadError(
            PayloadErrorKind.INVALID, f"band {band}'s token stream is corrupt ({exc})", where
        ) from exc
    if len(out) >= limit or not decompressor.can_accept_more_data():
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"band {band}'s token stream is longer than its tokens allow",
            where,
        )
    return np.frombuffer(out, dtype=np.uint8)


def _place_dc(dc: Int32Array, residuals: npt.NDArray[np.int32], layout: _Layout) -> None:
    start = 0
    for c, ((h, w), kept) in enumerate(zip(layout.shapes, layout.retention, strict=True)):
        mask = kept.anchor_mask(h, w)
        count = int(mask.sum())
        if count == 0:
            continue
        gh = len(range(0, h, kept.anchor_every)) if kept.dc_mode is DcMode.ANCHORS else h
        grid = _dc_from_residuals(residuals[start : start + count].reshape(gh, -1))
        start += count
        channel = dc[layout.starts[c] : layout.starts[c + 1]].reshape(h, w)
        channel[mask] = grid.reshape(-1)
