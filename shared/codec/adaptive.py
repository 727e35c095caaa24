"""Integer adaptive frequency models for coder 2: counts per context, updated between passes.

A model starts from a prior (a frequency table per context, fitted offline on
../shared/datasets/train and committed, never on Kodak) and adds :data:`INCREMENT` for every
symbol it has seen in this payload, halving a context's counts when they pass
:data:`LIMIT` so that it keeps adapting. Before each pass the counts of the contexts the pass
uses become cumulative frequency rows that sum to ``rans.PRECISION``, with every symbol at
least 1 so that anything can still be coded. All of it is integer arithmetic: both sides
compute the same rows on every platform.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.codec.rans import PRECISION

#: What one observed symbol adds to its context's count; a prior row sums to PRIOR_TOTAL,
#: so the prior weighs as much as PRIOR_TOTAL / INCREMENT symbols of this payload.
INCREMENT = 16
PRIOR_TOTAL = 512
LIMIT = 1 << 15

I64 = npt.NDArray[np.int64]


def uniform_prior(contexts: int, symbols: int) -> I64:
    """A flat prior: every symbol of every context equally likely."""
    return np.full((contexts, symbols), max(PRIOR_TOTAL // symbols, 1), dtype=np.int64)


def normalise_prior(counts: npt.NDArray[np.integer]) -> npt.NDArray[np.uint16]:
    """Offline counts as a prior table: each row sums to about PRIOR_TOTAL, every entry >= 1."""
    smoothed = np.asarray(counts, dtype=np.float64) + 0.5
    rows = np.maximum(1, np.round(smoothed * PRIOR_TOTAL / smoothed.sum(axis=1, keepdims=True)))
    table: npt.NDArray[np.uint16] = rows.astype(np.uint16)
    return table


class AdaptiveModel:
    """Counts of ``symbols`` outcomes in each of ``contexts`` contexts."""

    def __init__(self, prior: npt.NDArray[np.integer], *, observe: bool = False) -> None:
        self.counts = np.asarray(prior, dtype=np.int64).copy()
        self.symbols = self.counts.shape[1]
        #: With ``observe``, how often each symbol was seen in each context (models/fit_priors.py).
        self.observed = np.zeros_like(self.counts) if observe else None
        #: The last pass's contexts, the contexts it used and its rows (see :meth:`rows`).
        self._last: tuple[I64, I64, I64] | None = None

    def rows(self, contexts: I64) -> tuple[I64, I64]:
        """``(cumulative, rows)`` for a pass: one cumulative row per distinct context used,
        and the row of each symbol of the pass."""
        # A mark per context instead of np.unique: no sort, and the pass's update reuses it.
        present = np.zeros(self.counts.shape[0], dtype=bool)
        present[contexts] = True
        used = np.flatnonzero(present)
        index = np.empty(self.counts.shape[0], dtype=np.int64)
        index[used] = np.arange(used.size)
        inverse = index[contexts]
        self._last = (contexts, used, inverse)
        counts = self.counts[used]
        spare = PRECISION - self.symbols
        freqs = 1 + counts * spare // counts.sum(axis=1, keepdims=True)
        # Whatever the floors left over goes to each row's most frequent symbol.
        top = np.argmax(counts, axis=1)
        freqs[np.arange(used.size), top] += PRECISION - freqs.sum(axis=1)
        cumulative = np.zeros((used.size, self.symbols + 1), dtype=np.int64)
        np.cumsum(freqs, axis=1, out=cumulative[:, 1:])
        return cumulative, inverse

    def update(self, contexts: I64, symbols: I64) -> None:
        """Learn from a decoded pass; contexts that grew past LIMIT are halved."""
        if not contexts.size:
            return
        if symbols.min() < 0 or symbols.max() >= self.symbols:
            # bincount would count it under the next context instead of failing
            raise ValueError(f"a symbol outside 0..{self.symbols - 1}")
        if self._last is not None and self._last[0] is contexts:
            _, touched, inverse = self._last
        else:
            touched, inverse = np.unique(contexts, return_inverse=True)
        self._last = None
        seen = np.bincount(
            inverse * self.symbols + symbols, minlength=touched.size * self.symbols
        ).reshape(touched.size, self.symbols)
        self.counts[touched] += seen * INCREMENT
        if self.observed is not None:
            self.observed[touched] += seen
        full = touched[self.counts[touched].sum(axis=1) > LIMIT]
        if full.size:
            self.counts[full] = (self.counts[full] + 1) >> 1
