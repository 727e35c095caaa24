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
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shared.codec.errors import PayloadError, PayloadErrorKind

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


def _lengths(ends: Sequence[int]) -> npt.NDArray[np.int64]:
    bounds = np.array([0, *ends], dtype=np.int64)
    return bounds[1:] - bounds[:-1]


def pad_planes(
    tokens: npt.NDArray[np.uint8],
    token_ends: Sequence[int],
    top: npt.NDArray[np.bool_],
    top_ends: Sequence[int],
) -> tuple[npt.NDArray[np.bool_], list[int]]:
    """Consecutive runs (one per band) of decision planes, zero-padded to whole words, and
    where each run's words end.

    A run is the unary planes of its tokens (``tokens[token_ends[r-1]:token_ends[r]]``), then
    its top plane (likewise cut from ``top``). Plane j holds ``token > j`` for every token
    with ``token >= j`` (planes 0 to the run's largest token).
    """
    planes = []
    word_ends = []
    words = 0
    for run, (t0, t1) in enumerate(zip([0, *token_ends], token_ends, strict=False)):
        run_tokens = tokens[t0:t1]
        level = 0
        while run_tokens.size:
            above = run_tokens > level
            planes.append(above)
            run_tokens = run_tokens[above]
            level += 1
        planes.append(top[([0, *top_ends][run]) : top_ends[run]])
        words += sum(-(-p.size // WORD) for p in planes[len(planes) - level - 1 :])
        word_ends.append(words)
    out = np.zeros(words * WORD, dtype=bool)
    start = 0
    for plane in planes:
        out[start : start + plane.size] = plane
        start += -(-plane.size // WORD) * WORD
    return out, word_ends


def encode_words(
    decisions: npt.NDArray[np.bool_],
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(popcount, rank, rank width) of every 64-decision word of ``decisions``, whose size
    must be a multiple of 64 (see :func:`pad_planes`)."""
    quarters = np.packbits(decisions).view(">u2").astype(np.int64).reshape(-1, 4)
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


def plane_sizes(counts: npt.NDArray[np.uint8], size: int, max_token: int, where: int) -> list[int]:
    """Sizes of the unary planes of ``size`` tokens, then of their top plane, from the
    popcounts alone (a plane holds one decision per one in the plane before it).

    ``counts`` must hold exactly the popcounts of those planes' words.
    """
    if counts.size and int(counts.max()) > WORD:
        raise PayloadError(
            PayloadErrorKind.INVALID, "decision planes hold an impossible count", where
        )
    ones = np.zeros(counts.size + 1, dtype=np.int64)
    np.cumsum(counts, out=ones[1:])
    sizes: list[int] = []
    used = 0
    while size:
        if len(sizes) > max_token:
            raise PayloadError(
                PayloadErrorKind.LIMIT, "a token exceeds the largest magnitude category", where
            )
        end = used + -(-size // WORD)
        if end > counts.size:
            raise PayloadError(PayloadErrorKind.INVALID, "decision planes are truncated", where)
        sizes.append(size)
        size = int(ones[end] - ones[used])
        used = end
    top_size = sizes[2] if len(sizes) > 2 else 0
    sizes.append(top_size)
    used += -(-top_size // WORD)
    if used != counts.size:
        raise PayloadError(
            PayloadErrorKind.INVALID,
            f"{counts.size - used} plane words are missing or left over",
            where,
        )
    return sizes


def decode_words(
    counts: npt.NDArray[np.int64], ranks: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    """Inverse of :func:`encode_words`; every rank must be below C(64, its count)."""
    return np.unpackbits(_patterns(counts, ranks)).view(bool)


def rank_in_range(
    counts: npt.NDArray[np.int64], ranks: npt.NDArray[np.int64]
) -> npt.NDArray[np.bool_]:
    in_range: npt.NDArray[np.bool_] = ranks < _COMB[WORD][counts]
    return in_range


def planes_to_tokens(
    bits: npt.NDArray[np.bool_], sizes: list[list[int]], where: Sequence[int]
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Inverse of :func:`pad_planes` for consecutive runs of planes (one run per band, laid
    out by :func:`plane_sizes`): every run's tokens, then every run's top plane, each
    concatenated. Padding must hold no ones; ``where`` locates each run for errors."""
    levels: list[list[npt.NDArray[np.bool_]]] = []
    tops = []
    bounds = []
    start = 0
    for run_sizes in sizes:
        begin = start
        for level, n in enumerate(run_sizes[:-1]):
            if level == len(levels):
                levels.append([])
            levels[level].append(bits[start : start + n])
            start += -(-n // WORD) * WORD
        tops.append(bits[start : start + run_sizes[-1]])
        start += -(-run_sizes[-1] // WORD) * WORD
        bounds.append((begin, start))
    decided = [np.concatenate(planes) for planes in levels]
    top = np.concatenate(tops) if tops else np.zeros(0, dtype=bool)
    ones = sum(int(np.count_nonzero(d)) for d in [*decided, top])
    if ones != int(np.count_nonzero(bits[:start])):
        _locate_padding_error(bits, sizes, bounds, where)
    # Plane j of every run, concatenated, decides for the tokens of every run still above
    # j - 1, in the same order.
    if not decided:
        return np.zeros(0, dtype=np.uint8), top
    tokens = decided[0].view(np.uint8)  # a fresh array: tokens above 0 are 1 so far
    todo = np.flatnonzero(decided[0])
    for plane in decided[1:]:
        todo = todo[plane]
        tokens[todo] += 1
    return tokens, top


def _locate_padding_error(
    bits: npt.NDArray[np.bool_],
    sizes: list[list[int]],
    bounds: list[tuple[int, int]],
    where: Sequence[int],
) -> None:
    for run, (run_sizes, (begin, end)) in enumerate(zip(sizes, bounds, strict=True)):
        inside = 0
        start = begin
        for n in run_sizes:
            inside += int(np.count_nonzero(bits[start : start + n]))
            start += -(-n // WORD) * WORD
        if inside != int(np.count_nonzero(bits[begin:end])):
            raise PayloadError(
                PayloadErrorKind.INVALID, "decision planes hold ones in their padding", where[run]
            )
    raise AssertionError("unreachable: padding holds ones but no run's does")
