"""Enumerative coding of unary bit planes of tokens, vectorised both ways.

Plane j of a token sequence holds the decision ``token > j`` for every token with
``token >= j``. Each plane is cut into 64-decision words; a word travels as its popcount k
(a byte, later compressed: this is where the statistics are) and its rank among the
C(64, k) words with that popcount (``ceil(log2 C(64, k))`` raw bits, nearly uniform). For
i.i.d. decisions the rank carries no information beyond k, so the cost approaches the
entropy of the decisions, while a Huffman coder fed the decisions directly could not go
below a bit per symbol. A rank is a mixed-radix number built from the ranks of the word's
16-bit quarters (table lookups), so neither direction loops per decision.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from shared.codec.bitpack import BitReader
from shared.codec.errors import PayloadError

WORD = 64
_HALF_WORD = 16
_PATTERNS = np.arange(1 << _HALF_WORD, dtype=np.int64)
_POPCOUNT16 = np.array([bin(p).count("1") for p in range(1 << _HALF_WORD)], dtype=np.int64)
_BY_POPCOUNT = np.lexsort((_PATTERNS, _POPCOUNT16))  # 16-bit patterns grouped by popcount
_FIRST = np.concatenate([[0], np.cumsum(np.bincount(_POPCOUNT16, minlength=17))])
_RANK16 = np.empty(1 << _HALF_WORD, dtype=np.int64)
_RANK16[_BY_POPCOUNT] = _PATTERNS - _FIRST[_POPCOUNT16[_BY_POPCOUNT]]


def _comb_table(n: int) -> npt.NDArray[np.int64]:
    return np.array([math.comb(n, k) for k in range(n + 1)], dtype=np.int64)


_COMB = {size: _comb_table(size) for size in (16, 32, 64)}


def _offsets(size: int) -> npt.NDArray[np.int64]:
    """[k, j]: how many size-bit words of popcount k have fewer than j ones in the top half."""
    half = size // 2
    table = np.zeros((size + 1, half + 2), dtype=np.int64)
    for k in range(size + 1):
        for j in range(half + 1):
            lo = k - j
            term = math.comb(half, j) * math.comb(half, lo) if 0 <= lo <= half else 0
            table[k, j + 1] = table[k, j] + term
    return table


_OFFSETS = {32: _offsets(32), 64: _offsets(64)}
# Bits of a word's rank given its popcount: log2 of the number of words sharing it.
RANK_BITS = np.array([math.ceil(math.log2(c)) for c in _COMB[WORD]], dtype=np.int64)


def _join(
    high: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    low: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    size: int,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(popcount, rank) of a size-bit word from those of its halves: a mixed-radix number."""
    (k_high, r_high), (k_low, r_low) = high, low
    k = k_high + k_low
    rank = _OFFSETS[size][k, k_high] + r_high * _COMB[size // 2][k_low] + r_low
    return k, rank


def _split(
    k: npt.NDArray[np.int64], rank: npt.NDArray[np.int64], size: int
) -> tuple[
    tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
    tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]],
]:
    """Inverse of :func:`_join`; ``rank`` must be below C(size, k)."""
    half = size // 2
    starts = _OFFSETS[size][k][:, 1 : half + 1]
    k_high = (starts <= rank[:, None]).sum(axis=1)
    k_low = k - k_high
    rest = rank - _OFFSETS[size][k, k_high]
    radix = _COMB[half][k_low]
    return (k_high, rest // radix), (k_low, rest % radix)


def _words(decisions: npt.NDArray[np.bool_]) -> npt.NDArray[np.int64]:
    """(words, 4) 16-bit quarters, most significant first, of the zero-padded decisions."""
    padded = np.zeros(-(-decisions.size // WORD) * WORD, dtype=bool)
    padded[: decisions.size] = decisions
    return np.packbits(padded).view(">u2").astype(np.int64).reshape(-1, 4)


def unary_planes(tokens: npt.NDArray[np.uint8]) -> list[npt.NDArray[np.bool_]]:
    """Plane j: ``token > j`` for every token with ``token >= j``."""
    planes = []
    level = 0
    while tokens.size:
        above = tokens > level
        planes.append(above)
        tokens = tokens[above]
        level += 1
    return planes


def encode_planes(
    planes: list[npt.NDArray[np.bool_]],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(popcount per word, rank per word, rank width per word) for these decision planes."""
    if not planes:
        empty = np.zeros(0, dtype=np.int64)
        return np.zeros(0, dtype=np.uint8), empty, empty
    quarters = np.concatenate([_words(plane) for plane in planes])
    parts = [(_POPCOUNT16[quarters[:, i]], _RANK16[quarters[:, i]]) for i in range(4)]
    counts, ranks = _join(_join(parts[0], parts[1], 32), _join(parts[2], parts[3], 32), 64)
    return counts.astype(np.uint8), ranks, RANK_BITS[counts]


def _patterns(counts: npt.NDArray[np.int64], ranks: npt.NDArray[np.int64]) -> npt.NDArray[np.uint8]:
    """The 64-bit words with these popcounts and ranks, as big-endian bytes."""
    high, low = _split(counts, ranks, 64)
    quarters = [*_split(*high, 32), *_split(*low, 32)]
    words = np.empty((counts.size, 4), dtype=">u2")
    for column, (k, r) in enumerate(quarters):
        words[:, column] = _BY_POPCOUNT[_FIRST[k] + r]
    return words.view(np.uint8).reshape(-1)


class PlaneDecoder:
    """Inverse of :func:`encode_planes`: reads planes back in the order they were written."""

    def __init__(self, counts: npt.NDArray[np.uint8], ranks: BitReader, where: int) -> None:
        self._counts = counts.astype(np.int64)
        self._ranks = ranks
        self._used = 0
        self._where = where

    def plane(self, size: int) -> npt.NDArray[np.bool_]:
        """The next plane of ``size`` decisions."""
        n_words = -(-size // WORD)
        counts = self._counts[self._used : self._used + n_words]
        if counts.size < n_words or int(counts.max(initial=0)) > WORD:
            raise PayloadError(
                "decision planes are truncated or hold an impossible count", self._where
            )
        self._used += n_words
        ranks = self._ranks.read(RANK_BITS[counts])
        if ranks is None or bool((ranks >= _COMB[WORD][counts]).any()):
            raise PayloadError("decision plane ranks are truncated or out of range", self._where)
        return np.unpackbits(_patterns(counts, ranks), count=size).astype(bool)

    def tokens(self, size: int, max_token: int) -> npt.NDArray[np.uint8]:
        """``size`` tokens from their unary planes (see :func:`unary_planes`)."""
        tokens = np.zeros(size, dtype=np.uint8)
        todo = np.arange(size)
        level = 0
        while todo.size:
            if level > max_token:
                raise PayloadError("a token exceeds the largest magnitude category", self._where)
            todo = todo[self.plane(todo.size)]
            tokens[todo] += 1
            level += 1
        return tokens

    def finish(self) -> None:
        """Every word must have been used."""
        if self._used != self._counts.size:
            raise PayloadError(
                f"{self._counts.size - self._used} plane words are left over", self._where
            )
