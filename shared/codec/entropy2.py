"""Entropy coder 2: context-modelled rANS, band by band (payload v2, coder id 2).

Status: work in progress (issue 14). It round-trips every profile and layout and codes the
samples in fewer bytes than coder 1 (tests/shared/test_entropy2.py), and ``encode(...,
coder=2)`` (the sender's ``encode.coder``) writes it as payload v2, but the default stays coder
1. On Kodak (``bench.entropy_coders``) coder 2 saves 6 % at auto q75 (0.937 of coder 1's
payload) and 5-6 % on lossless, where the issue asks for 15-20 %; it takes 80 ms to encode and
96 ms to decode a 768x512 auto q75 image against coder 1's 19 and 16.

The coefficients travel band-major, as with coder 1, so a payload cut after any band still
decodes. Each band is coded in *passes* (:mod:`.rans`); a pass's contexts use only what the
decoder has when the pass starts, and the adaptive models (:mod:`.adaptive`) learn from
every pass before the next one:

- band 0, per channel: the DCs in the four 2x2 parity classes of the grid. The even grid is
  predicted by ``left + above - above-left`` (undone by two cumulative sums); each other class
  is interpolated between two decoded neighbours, with their difference as context. A pass
  codes each residual's token (bit length);
- at the start of band 1, per channel: each block's count of non-zero AC coefficients in the
  bands it keeps, in four passes over the 2x2 parity classes of the block grid, each class
  predicted from the counts of the neighbours decoded before it;
- band k >= 1, per channel: the token of band k in every block that still has non-zero
  coefficients to come (the others cost nothing), again in four parity passes, so that three
  quarters of the blocks see band k of their decoded neighbours; the context is the band, the
  non-zero coefficients still to come, and a magnitude predicted from the block's lower
  neighbouring frequencies and the neighbours' band k. Then one pass codes, for every token of
  at least 2, the bit below the leading one.

The signs of bands 1, 2, 3 and 5 (the first and second horizontal and vertical cosines) are
coded too, with the DC slope or curvature across the block as context: a block on a
brightness ramp has a predictable sign there. What the models do not predict travels as raw
bits after each band's rANS bytes: the other signs and the magnitude bits below the two top
ones.

A band's segment::

    [u8]        band 0 only: log2 of the number of rANS lanes
    varint n    bytes of the rANS stream this band adds
    n bytes     those bytes (band 0's begin with the lanes' states)
    ...         raw bits of the band, MSB first, padded to a byte

The rANS bytes of all bands, in band order, are one stream (:mod:`.rans`).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.codec import rans
from shared.codec.adaptive import AdaptiveModel
from shared.codec.bitpack import BitReader, pack_fields
from shared.codec.coefficients import Int32Array, Retention
from shared.codec.entropy import MAX_COEFFICIENT
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.priors import prior
from shared.codec.varint import read_varint, write_varint
from shared.codec.zigzag import FREQ_ABOVE, FREQ_LEFT

CODER_ID = 2
I64 = npt.NDArray[np.int64]

_BITS = np.array([int(v).bit_length() for v in range(1 << 17)], dtype=np.int64)
_BAND_CLASS = np.minimum(
    np.searchsorted([1, 2, 3, 5, 6, 9, 10, 14, 15, 20, 27, 35, 44], np.arange(64), side="right"),
    13,
)
_REMAINING_EDGES = np.array([1, 2, 3, 4, 6, 9, 14, 20])
_OWN_EDGES = np.array([1, 2, 3, 5, 8, 12, 20])
_PRED_EDGES = np.array([1, 2, 3, 4, 6, 8, 11, 15, 20, 28])
_NZ_EDGES = np.array([1, 2, 3, 4, 6, 8, 11, 15, 20, 26, 34])
_ACTIVITY_EDGES = np.array([2, 4, 8, 14, 24, 40, 64])
_COARSE_ACTIVITY = np.array([6, 24])
_NZ_ACTIVITY = 8
_NZ_CONTEXTS = _NZ_ACTIVITY + 12 * 3
_NEAR_NZ_EDGES = np.array([1, 3, 6, 10])
_ALONE = 8 * 5  # own lower frequencies x the neighbours' counts (bands 1-5: the DC steepness)
_COARSE_OWN = np.array([1, 4])
_NB = _ALONE + 11 * 3  # predictor buckets: without a decoded neighbour, then with
_PARITIES = ((0, 0), (0, 1), (1, 0), (1, 1))
_DC_EDGES = np.array([2, 4, 8, 16, 32, 64, 128])
_SLOPE_EDGES = np.array([-64, -16, -4, -1, 1, 4, 16, 64])
_STEEP_EDGES = np.array([2, 6, 16, 48])
#: Bands whose signs a model codes: (their index in the sign model, the two neighbours
#: (``_NEIGHBOURS`` columns) along the cosine's direction, and whether the DCs' slope or their
#: curvature predicts them). Zigzag 1 and 2 are the first horizontal and vertical cosines,
#: 3 and 5 the second vertical and horizontal ones.
_SIGNED_BANDS = {
    1: (0, (2, 3), False),
    2: (1, (0, 1), False),
    3: (2, (0, 1), True),
    5: (3, (2, 3), True),
}
_DC_CONTEXTS = 1 + 3 * 8  # the even grid, then 8 gradient buckets for each other class
_NEIGHBOURS = ((-1, 0), (1, 0), (0, -1), (0, 1))

#: (name, contexts, symbols) of every model; its prior is ``priors.prior(name)``.
MODELS = {
    "dc": (2 * _DC_CONTEXTS, 17),
    "nz": (2 * _NZ_CONTEXTS, 64),
    "token": (2 * 14 * 9 * _NB, 16),
    "sign": (2 * 4 * 10 * 4, 2),
    "second": (2 * 14 * 16 * _NB, 2),
}


def _flanks(grid: I64, rows: slice, columns: slice, axis: int) -> tuple[I64, I64]:
    """The decoded neighbours either side (``axis`` 1: left and right; 0: above and below)
    of the cells ``grid[rows, columns]``; at the far edge the near neighbour stands in."""
    shift = (0, -1) if axis == 1 else (-1, 0)
    height, width = grid.shape
    ys = np.arange(height)[rows][:, None]
    xs = np.arange(width)[columns][None, :]
    ys, xs = np.broadcast_arrays(ys, xs)
    before = grid[ys + shift[0], xs + shift[1]]
    after_y = np.minimum(ys - shift[0], height - 1)
    after_x = np.minimum(xs - shift[1], width - 1)
    # Past the edge the cell itself would be read (it is not decoded yet): use "before".
    beyond = (ys - shift[0] > height - 1) | (xs - shift[1] > width - 1)
    after = np.where(beyond, before, grid[after_y, after_x])
    return before, after


_BUCKET_TABLES: dict[int, tuple[int, I64]] = {}


def _bucket(values: I64, edges: I64) -> I64:
    """How many ``edges`` are at or below each value (the bucket of the value); with
    non-negative edges the values must be non-negative too (counts, magnitudes, differences
    taken absolute), as every caller's are."""
    if edges[0] < 0:
        return np.searchsorted(edges, values, side="right").astype(np.int64)
    # Non-negative edges: a lookup table, a few times faster than a search on small passes.
    found = _BUCKET_TABLES.get(id(edges))
    if found is None:
        last = int(edges[-1])
        table = np.searchsorted(edges, np.arange(last + 1), side="right").astype(np.int64)
        found = _BUCKET_TABLES.setdefault(id(edges), (last, table))
    last, table = found
    return table[np.minimum(values, last)]


def _lower_bound(tokens: I64) -> I64:
    """The smallest magnitude with each token: what contexts use before raw bits arrive."""
    return np.where(tokens > 0, np.left_shift(1, np.maximum(tokens - 1, 0)), 0)


@dataclass(frozen=True)
class Step:
    """One pass for the driver: its model rows and (when encoding) the symbols to code."""

    band: int
    cumulative: I64
    rows: I64
    symbols: I64 | None


class _Raw:
    """Raw bits of each band: written by the encoder, read by the decoder."""

    def __init__(self, sections: Sequence[memoryview] | None = None) -> None:
        self.values: list[list[I64]] = []
        self.widths: list[list[I64]] = []
        self._sections = sections
        self._reader: BitReader | None = None
        self._position = 0

    def start_band(self, band: int) -> None:
        self.finish()
        self.values.append([])
        self.widths.append([])
        if self._sections is not None:
            self._reader = BitReader(bytes(self._sections[band]))
            self._position = 0

    def fields(self, widths: I64, truth: I64 | None) -> I64:
        if self._reader is None:
            assert truth is not None
            self.values[-1].append(truth)
            self.widths[-1].append(widths)
            return truth
        starts = self._position + np.cumsum(widths) - widths
        self._position += int(widths.sum())
        if self._position > self._reader.size:
            raise PayloadError(PayloadErrorKind.TRUNCATED, "raw bits end early")
        return self._reader.read_at(starts.astype(np.int64), widths)

    def band_bytes(self, band: int) -> bytes:
        values, widths = self.values[band], self.widths[band]
        if not values:
            return b""
        return pack_fields(np.concatenate(values), np.concatenate(widths))

    def finish(self) -> None:
        """Refuse a band whose raw section holds more than its values need."""
        if self._reader is not None and (self._position + 7) // 8 != self._reader.size // 8:
            raise PayloadError(
                PayloadErrorKind.INVALID,
                f"a band's raw section holds {self._reader.size // 8} bytes, "
                f"its values use {(self._position + 7) // 8}",
            )


class _Blocks:
    """Every block of every channel in one flat index space, channel by channel in raster
    order, with index ``size`` standing for "no block" (outside the grid)."""

    def __init__(self, shapes: Sequence[tuple[int, int]], retention: Sequence[Retention]) -> None:
        sizes = [h * w for h, w in shapes]
        self.starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self.size = int(self.starts[-1])
        self.shapes = list(shapes)
        self.klass = np.repeat([min(c, 1) for c in range(len(shapes))], sizes).astype(np.int64)
        self.keep = np.repeat([k.keep for k in retention], sizes).astype(np.int64)
        self.neighbours = np.full((self.size, 4), self.size, dtype=np.int64)
        parity = np.zeros(self.size, dtype=np.int64)
        for start, (h, w) in zip(self.starts, shapes, strict=False):
            grid = np.arange(h * w).reshape(h, w) + start
            padded = np.pad(grid, 1, constant_values=self.size)
            for column, (dy, dx) in enumerate(_NEIGHBOURS):
                self.neighbours[grid, column] = padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
            parity[grid] = (np.arange(h)[:, None] % 2) * 2 + np.arange(w)[None, :] % 2
        #: Per parity class: its blocks, and which of their neighbours a pass of it may read
        #: (those of the classes before it).
        self.members = [np.flatnonzero(parity == c) for c in range(len(_PARITIES))]
        padded_parity = np.append(parity, len(_PARITIES))
        self.readable = [padded_parity[self.neighbours[m]] < c for c, m in enumerate(self.members)]
        self.readable_count = [r.sum(axis=1) for r in self.readable]


class _Walk:
    """The passes of a payload, in order; the encoder and the decoder run the same walk.

    State is kept per block in the flat index space of :class:`_Blocks` (one more entry, a
    zero, for "no block"), band-major, so that a pass over every channel is a few gathers.
    """

    def __init__(
        self,
        shapes: Sequence[tuple[int, int]],
        retention: Sequence[Retention],
        bands: int,
        raw: _Raw,
        truth: Sequence[Int32Array] | None,
        *,
        observe: bool = False,
    ) -> None:
        self.bands = bands
        self.raw = raw
        self.retention = list(retention)
        self.blocks = blocks = _Blocks(shapes, retention)
        self.models = {
            name: AdaptiveModel(prior(name, *size), observe=observe)
            for name, size in MODELS.items()
        }
        n = blocks.size + 1
        self.truth = None
        if truth is not None:
            flat = np.concatenate([t.reshape(-1, 64) for t in truth]).T.astype(np.int64)
            self.truth = np.concatenate([flat, np.zeros((64, 1), np.int64)], axis=1)
        # int16 holds every coefficient (|v| <= MAX_COEFFICIENT) in a quarter of int64's memory;
        # sums of them are taken in int64 (numpy's sum widens small integers).
        self.values = np.zeros((64, n), dtype=np.int16)
        self.magnitude = np.zeros((64, n), dtype=np.int16)
        self.nonzero = np.zeros(n, dtype=np.int64)
        self.seen = np.zeros(n, dtype=np.int64)
        self.activity = np.zeros(n, dtype=np.int64)
        self.activity_known = np.zeros(n, dtype=bool)
        #: Per parity class, the positions in ``blocks.members`` of the blocks that may still
        #: have non-zero values to send (None before band 1).
        self.due: list[I64] | None = None

    def channels(self) -> list[Int32Array]:
        out = []
        for c, (h, w) in enumerate(self.blocks.shapes):
            a, b = self.blocks.starts[c], self.blocks.starts[c + 1]
            out.append(self.values[:, a:b].T.astype(np.int32).reshape(h, w, 64))
        return out

    def steps(self) -> Generator[Step, I64, None]:
        """Yields each pass; the caller sends back its symbols (the decoded or true ones).

        A pass covers every channel that takes part (their contexts differ by channel class),
        so a band costs six passes however many channels there are.
        """
        for band in range(self.bands):
            self.raw.start_band(band)
            if band == 0:
                yield from self._dc()
                continue
            if band == 1:
                yield from self._counts()
            yield from self._band(band)

    def _pass(
        self, model: str, contexts: I64, band: int, truth: I64 | None
    ) -> Generator[Step, I64, I64]:
        if not contexts.size:  # both sides know the pass is empty: it costs nothing
            return np.zeros(0, dtype=np.int64)
        cumulative, rows = self.models[model].rows(contexts)
        symbols = yield Step(band, cumulative, rows, truth)
        self.models[model].update(contexts, symbols)
        return symbols

    def _dc(self) -> Generator[Step, I64, None]:
        for c, (h, w) in enumerate(self.blocks.shapes):
            mask = self.retention[c].anchor_mask(h, w)
            rows_y, rows_x = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            flat = (rows_y[:, None] * w + rows_x[None, :]) + self.blocks.starts[c]
            if not flat.size:
                continue
            truth = None if self.truth is None else self.truth[0, flat]
            grid = yield from self._dc_grid(min(c, 1), truth, flat.shape)
            if np.abs(grid).max(initial=0) > MAX_COEFFICIENT:
                raise PayloadError(PayloadErrorKind.LIMIT, "a DC exceeds the payload's bound")
            self.values[0, flat] = grid
            if flat.size == self.blocks.starts[c + 1] - self.blocks.starts[c]:
                # Every DC travelled (no anchors): how much it changes towards each neighbour.
                neighbours = self.blocks.neighbours[flat.ravel()]
                dc = self.values[0].astype(np.int64)
                inside = neighbours < self.blocks.size
                centre = dc[flat.ravel()]
                change = np.abs(centre[:, None] - dc[neighbours]) * inside
                self.activity[flat.ravel()] = (
                    change.sum(axis=1) * 4 // np.maximum(inside.sum(axis=1), 1)
                )
                self.activity_known[flat.ravel()] = True

    def _dc_grid(
        self, klass: int, truth: I64 | None, shape: tuple[int, ...]
    ) -> Generator[Step, I64, I64]:
        """One channel's grid of DCs in the four parity classes of the grid.

        Even rows and columns first, each predicted from its left, upper and upper-left
        neighbours (undone by cumulative sums); then the others, each interpolated between
        two decoded neighbours (the pair that differs least, for the last class), with the
        difference of that pair as context: smooth areas predict well, edges less so.
        """
        height, width = shape
        grid = np.zeros((height, width), dtype=np.int64)
        base = klass * _DC_CONTEXTS
        # Class 0: the even grid, planar prediction.
        even_truth = None if truth is None else truth[0::2, 0::2]
        even_shape = grid[0::2, 0::2].shape
        residual_truth = None
        if even_truth is not None:
            residual_truth = even_truth.copy()
            residual_truth[1:, :] -= even_truth[:-1, :]
            residual_truth[:, 1:] -= even_truth[:, :-1]
            residual_truth[1:, 1:] += even_truth[:-1, :-1]
        residual = yield from self._dc_pass(
            np.full(even_shape[0] * even_shape[1], base, np.int64),
            None if residual_truth is None else residual_truth.ravel(),
        )
        grid[0::2, 0::2] = np.cumsum(np.cumsum(residual.reshape(even_shape), axis=0), axis=1)
        # Classes 1 and 2: between two even neighbours, along the row or the column.
        for axis, rows, columns in ((1, slice(0, None, 2), slice(1, None, 2)),
                                    (0, slice(1, None, 2), slice(0, None, 2))):  # fmt: skip
            target = grid[rows, columns]
            if not target.size:
                continue
            before, after = _flanks(grid, rows, columns, axis)
            contexts = base + 1 + (1 - axis) * 8 + _bucket(np.abs(before - after), _DC_EDGES)
            prediction = (before + after) // 2
            wanted = None if truth is None else (truth[rows, columns] - prediction).ravel()
            got = yield from self._dc_pass(contexts.ravel(), wanted)
            grid[rows, columns] = prediction + got.reshape(target.shape)
        # Class 3: odd rows and columns, from whichever decoded pair differs least.
        rows, columns = slice(1, None, 2), slice(1, None, 2)
        target = grid[rows, columns]
        if target.size:
            above, below = _flanks(grid, rows, columns, 0)
            left, right = _flanks(grid, rows, columns, 1)
            vertical, horizontal = np.abs(above - below), np.abs(left - right)
            prediction = np.where(vertical <= horizontal, (above + below) // 2, (left + right) // 2)
            contexts = base + 17 + _bucket(np.minimum(vertical, horizontal), _DC_EDGES)
            wanted = None if truth is None else (truth[rows, columns] - prediction).ravel()
            got = yield from self._dc_pass(contexts.ravel(), wanted)
            grid[rows, columns] = prediction + got.reshape(target.shape)
        return grid

    def _dc_pass(self, contexts: I64, truth: I64 | None) -> Generator[Step, I64, I64]:
        """Residuals of one parity class: their tokens in a pass, then sign and low bits raw."""
        tokens = yield from self._pass(
            "dc", contexts, 0, None if truth is None else _BITS[np.abs(truth)]
        )
        return self._signed(tokens, None, truth, lower=1)

    def _counts(self) -> Generator[Step, I64, None]:
        blocks = self.blocks
        for c, members in enumerate(blocks.members):
            ys = members[blocks.keep[members] > 1]
            readable = blocks.readable[c][blocks.keep[members] > 1]
            neighbours = blocks.neighbours[ys]
            total = (self.nonzero[neighbours] * readable).sum(axis=1)
            count = readable.sum(axis=1)
            activity = self.activity[ys]
            average = (total + count // 2) // np.maximum(count, 1)
            near = _NZ_ACTIVITY + 12 * _bucket(activity, _COARSE_ACTIVITY)
            near += _bucket(average, _NZ_EDGES)
            alone = _bucket(activity, _ACTIVITY_EDGES)
            contexts = blocks.klass[ys] * _NZ_CONTEXTS + np.where(count > 0, near, alone)
            truth = None
            if self.truth is not None:
                keep = blocks.keep[ys]
                bands = np.arange(64)[:, None]
                truth = ((self.truth[:, ys] != 0) & (bands >= 1) & (bands < keep)).sum(axis=0)
            got = yield from self._pass("nz", contexts, 1, truth)
            if (got > blocks.keep[ys] - 1).any():
                raise PayloadError(
                    PayloadErrorKind.INVALID, "a block claims more non-zero values than it keeps"
                )
            self.nonzero[ys] = got

    def _band(self, band: int) -> Generator[Step, I64, None]:
        blocks = self.blocks
        band_class = int(_BAND_CLASS[band])
        if self.due is None:
            self.due = [np.arange(m.size) for m in blocks.members]
        # A block leaves the walk for good once it has sent all its non-zero values or
        # passed its last band, so late bands touch only the few blocks still busy.
        for c, members in enumerate(blocks.members):
            ys = members[self.due[c]]
            busy = (blocks.keep[ys] > band) & (self.nonzero[ys] > self.seen[ys])
            self.due[c] = self.due[c][busy]
        if not any(due.size for due in self.due):
            return  # every block has sent all its non-zero values: the band is all zeros
        remaining = self.nonzero - self.seen
        magnitude = self.magnitude[band]
        tokens = np.zeros(blocks.size + 1, dtype=np.int64)
        predictor = np.zeros(blocks.size + 1, dtype=np.int64)
        truth_band = None if self.truth is None else self.truth[band]
        # What does not depend on this band's neighbours is worked out for every busy block at
        # once; only the neighbours' magnitudes wait for each parity class's pass.
        by_class = [members[due] for members, due in zip(blocks.members, self.due, strict=True)]
        ys = np.concatenate(by_class)
        mine = np.zeros(ys.size, dtype=np.int64)
        for frequency in (FREQ_LEFT[band], FREQ_ABOVE[band]):
            if frequency < 64:
                mine += self.magnitude[frequency, ys]
        if band in _SIGNED_BANDS:
            # Nothing decoded below these bands but the DC: its slope or curvature across
            # the block predicts their size better than the neighbours' counts do.
            _, sides, curved = _SIGNED_BANDS[band]
            second_hint = _bucket(np.abs(self._change(ys, sides, curved=curved)), _STEEP_EDGES)
        else:
            near_nz = remaining[blocks.neighbours[ys]].sum(axis=1) // 4
            second_hint = _bucket(near_nz, _NEAR_NZ_EDGES)
        alone = _bucket(mine, _OWN_EDGES) * 5 + second_hint
        coarse = _ALONE + _bucket(mine, _COARSE_OWN)
        rest = _bucket(remaining[ys], _REMAINING_EDGES)
        heads = ((blocks.klass[ys] * 14 + band_class) * 9 + rest) * _NB
        truths = None if truth_band is None else _BITS[np.abs(truth_band[ys])]
        start = 0
        for c, members_ys in enumerate(by_class):
            stop = start + members_ys.size
            part = slice(start, stop)
            start = stop
            bucket = alone[part]
            if c > 0:  # the first class has no decoded neighbour in this band
                count = blocks.readable_count[c][self.due[c]]
                readable = blocks.readable[c][self.due[c]]
                total = (magnitude[blocks.neighbours[members_ys]] * readable).sum(axis=1)
                guessed = (total * 4 + mine[part] * 2 + count) // np.maximum(count, 1)
                with_neighbours = coarse[part] + _bucket(guessed, _PRED_EDGES) * 3
                bucket = np.where(count > 0, with_neighbours, bucket)
            predictor[members_ys] = bucket
            truth = None if truths is None else truths[part]
            coded = yield from self._pass("token", heads[part] + bucket, band, truth)
            tokens[members_ys] = coded
            magnitude[members_ys] = _lower_bound(coded)
        # The bit below the leading one, for every token of at least 2.
        ys = np.flatnonzero(tokens >= 2)
        big = tokens[ys]
        contexts = ((blocks.klass[ys] * 14 + band_class) * 16 + big) * _NB + predictor[ys]
        truth = None
        if truth_band is not None:
            truth = (np.abs(truth_band[ys]) >> (big - 2)) & 1
        second = np.zeros(blocks.size + 1, dtype=np.int64)
        second[ys] = yield from self._pass("second", contexts, band, truth)
        ys = np.flatnonzero(tokens > 0)
        signs = None
        if band in _SIGNED_BANDS:
            # The first cosines follow the brightness slope (and the next ones its curvature)
            # across the block, which the neighbours' DCs show: their signs are worth modelling.
            index, sides, curved = _SIGNED_BANDS[band]
            slope = self._slope(ys, sides, curved=curved)
            klasses = blocks.klass[ys] * len(_SIGNED_BANDS) + index
            contexts = (klasses * 10 + slope) * 4 + np.minimum(tokens[ys], 4) - 1
            truth = None if truth_band is None else (truth_band[ys] < 0).astype(np.int64)
            signs = yield from self._pass("sign", contexts, band, truth)
        values = self._signed(
            tokens[ys],
            second[ys],
            None if truth_band is None else truth_band[ys],
            lower=2,
            signs=signs,
        )
        if np.abs(values).max(initial=0) > MAX_COEFFICIENT:
            raise PayloadError(PayloadErrorKind.LIMIT, f"band {band} exceeds the payload's bound")
        self.values[band, ys] = values
        magnitude[ys] = np.abs(values)
        self.seen[ys] += 1
        if (self.seen[ys] > self.nonzero[ys]).any():
            raise PayloadError(PayloadErrorKind.INVALID, "more non-zero values than announced")

    def _change(self, ys: I64, sides: tuple[int, int], *, curved: bool) -> I64:
        """The DC difference between the neighbours ``sides`` of each block, or with ``curved``
        their sum less twice the block's own DC (0 where not every DC travelled)."""
        neighbours = self.blocks.neighbours[ys]
        dc = self.values[0].astype(np.int64)
        ends = []
        for side in sides:
            other = neighbours[:, side]
            ends.append(np.where(other < self.blocks.size, dc[other], dc[ys]))
        change = ends[0] + ends[1] - 2 * dc[ys] if curved else ends[1] - ends[0]
        return np.where(self.activity_known[ys], change, 0)

    def _slope(self, ys: I64, sides: tuple[int, int], *, curved: bool) -> I64:
        """Bucket of the DC difference between the two neighbours ``sides`` (columns of
        ``_Blocks.neighbours``) of each block, or with ``curved`` of their sum less twice the
        block's own DC: 0..8 from most negative to most positive, 9 where the DCs are not all
        known (anchors). A missing neighbour's DC is the block's own."""
        slope = _bucket(self._change(ys, sides, curved=curved), _SLOPE_EDGES)
        return np.where(self.activity_known[ys], slope, 9)

    def _signed(
        self,
        tokens: I64,
        second: I64 | None,
        truth: I64 | None,
        *,
        lower: int,
        signs: I64 | None = None,
    ) -> I64:
        """Values of non-zero ``tokens`` (zeros stay zero): the raw bits carry the bits below
        the ``lower`` top ones (the leading one, and with ``second`` the next), after the sign
        unless ``signs`` (1 for negative, one per non-zero token) were coded by a model."""
        nonzero = tokens > 0
        t = tokens[nonzero]
        below = np.maximum(t - lower, 0)
        sign_bits = 0 if signs is not None else 1
        widths = sign_bits + below
        field_truth = None
        if truth is not None:
            v = truth[nonzero]
            field_truth = np.abs(v) & ((1 << below) - 1)
            if signs is None:
                field_truth |= (v < 0).astype(np.int64) << below
        fields = self.raw.fields(widths, field_truth)
        magnitude = np.left_shift(1, t - 1) | (fields & ((1 << below) - 1))
        if second is not None:
            magnitude |= np.where(t >= 2, second[nonzero] << np.maximum(t - 2, 0), 0)
        negative = (fields >> below) & 1 if signs is None else signs
        values = np.zeros(tokens.size, dtype=np.int64)
        values[nonzero] = np.where(negative, -magnitude, magnitude)
        return values


def _lanes(symbols: int) -> int:
    """Lanes for a payload of this many symbols: more lanes are faster, each costs 3 bytes.

    About sqrt(symbols) / 4 (a power of two): the steps (4 sqrt(n)) and the bytes the lanes
    cost (0.75 sqrt(n)) both grow slower than the payload, so small payloads stay quick and
    large ones pay well under 1 %.
    """
    return 1 << int(np.clip(np.round(np.log2(np.sqrt(max(symbols, 1)) / 4)), 0, 7))


def encode_bands(channels: Sequence[Int32Array], retention: Sequence[Retention]) -> list[bytes]:
    """Entropy-code the retained coefficients; one segment per band (see the module doc)."""
    return _encode(channels, retention, observe=False)[0]


def observed_counts(
    channels: Sequence[Int32Array], retention: Sequence[Retention]
) -> dict[str, I64]:
    """How often each model saw each symbol in each context while coding these coefficients:
    what models/fit_priors.py adds up over the training photographs."""
    return _encode(channels, retention, observe=True)[1]


def _encode(
    channels: Sequence[Int32Array], retention: Sequence[Retention], *, observe: bool
) -> tuple[list[bytes], dict[str, I64]]:
    bands = max(k.keep for k in retention)
    raw = _Raw()
    walk = _Walk([c.shape[:2] for c in channels], retention, bands, raw, channels, observe=observe)
    passes: list[rans.Pass] = []
    pass_bands: list[int] = []
    steps = walk.steps()
    try:
        step = next(steps)
        while True:
            assert step.symbols is not None
            at = step.rows * step.cumulative.shape[1] + step.symbols
            flat = step.cumulative.ravel()
            starts = flat[at]
            passes.append(rans.Pass(starts, flat[at + 1] - starts))
            pass_bands.append(step.band)
            step = steps.send(step.symbols)
    except StopIteration:
        pass
    lanes = _lanes(sum(p.starts.size for p in passes))
    encoded = rans.encode(passes, lanes)
    band_ends = [lanes * rans.STATE_BYTES] * bands
    for band, end in zip(pass_bands, encoded.pass_ends, strict=True):
        band_ends[band] = end
    band_ends = np.maximum.accumulate(band_ends).tolist()
    segments = []
    previous = 0
    for band in range(bands):
        chunk = encoded.data[previous : band_ends[band]]
        previous = band_ends[band]
        lead = bytes([lanes.bit_length() - 1]) if band == 0 else b""
        segments.append(lead + write_varint(len(chunk)) + chunk + raw.band_bytes(band))
    observed = {
        name: model.observed for name, model in walk.models.items() if model.observed is not None
    }
    return segments, observed


def decode_bands(
    segments: Sequence[memoryview],
    offsets: Sequence[int],
    shapes: Sequence[tuple[int, int]],
    retention: Sequence[Retention],
) -> list[Int32Array]:
    """Inverse of :func:`encode_bands` for the segments present (a cut stream has fewer).

    ``retention`` is the header's, whatever the cut: the counts of non-zero values and the
    contexts depend on the bands each channel keeps, not on how many arrived. Bands past the
    cut decode as zeros.
    """
    if not segments:
        raise PayloadError(PayloadErrorKind.INVALID, "no band to decode")
    if len(segments[0]) < 1 or segments[0][0] > 7:
        raise PayloadError(PayloadErrorKind.INVALID, "invalid rANS lane count", offsets[0])
    lanes = 1 << segments[0][0]
    chunks, sections = [], []
    for band, (segment, where) in enumerate(zip(segments, offsets, strict=True)):
        start = 1 if band == 0 else 0
        length, pos = read_varint(segment, start, where)
        if pos + length > len(segment):
            raise PayloadError(
                PayloadErrorKind.TRUNCATED, f"band {band}'s rANS bytes run past its segment", where
            )
        chunks.append(bytes(segment[pos : pos + length]))
        sections.append(segment[pos + length :])
    raw = _Raw(sections)
    walk = _Walk(shapes, retention, len(segments), raw, None)
    steps = walk.steps()
    pending: list[Step] = []

    def next_pass(decoded: list[I64]) -> tuple[I64, I64] | None:
        try:
            step = steps.send(decoded[-1]) if decoded else next(steps)
        except StopIteration:
            return None
        pending.append(step)
        return step.cumulative, step.rows

    stream = b"".join(chunks)
    try:
        _, used = rans.decode(stream, lanes, next_pass)
    except rans.RansError as error:
        raise PayloadError(PayloadErrorKind.INVALID, f"rANS: {error}", offsets[0]) from None
    if used != len(stream):
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"the rANS stream holds {len(stream)} bytes, its passes used {used}",
            offsets[0],
        )
    raw.finish()
    return walk.channels()
