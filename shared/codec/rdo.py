"""Rate-distortion optimised quantisation: round each coefficient where its bits pay.

Plain rounding picks the level nearest to ``x / step``. Here every AC coefficient chooses
among that level, the one below it and zero, whichever minimises

    J(l) = (x / step - l)^2 + mu * R(l)

(distortion in units of the band's squared step, rate in bits), the decision MozJPEG's
trellis makes, made for every coefficient at once rather than along a path. ``mu`` is the
Lagrange multiplier divided by the band's weighted squared step, so one global multiplier
buys the same distortion per bit in every band and channel.

The rate model is the one the entropy coder approaches (entropy.py): a token (the level's
bit length) costs ``-log2`` of its frequency in the band under plain rounding, and a
non-zero token ``t`` carries ``t`` more bits (sign, mantissa and the coded second bit).
Neighbour contexts are left out: they make zeros in flat regions cheaper than the model
says, which only makes the model keep a little more than it must. DC coefficients are
predicted from their neighbours, so their token statistics are not the band's: DC is
always rounded plainly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]

_SAMPLE_EVERY = 4  # token statistics are read off every 4th block: plenty for 64 x 3 counts


def token_costs(magnitudes: Float) -> Float:
    """``[band, t]``: bits of a level of token t (0: zero, 1: one, 2: two or three) in each
    band, from plainly rounded magnitudes ``(N, bands)``; the raw bits included.

    Laplace-smoothed frequencies, so a token never seen still has a finite price.
    """
    sample = magnitudes[::_SAMPLE_EVERY]
    counts = np.stack(
        [(sample == 0).sum(axis=0), (sample == 1).sum(axis=0), (sample == 2).sum(axis=0)]
    ).astype(np.float32)
    counts[2] += (sample == 3).sum(axis=0)
    probability = (counts + 0.25) / (sample.shape[0] + 1.0)
    costs: Float = (-np.log2(probability)).T.astype(np.float32)
    costs += np.array([0, 1, 2], dtype=np.float32)[None, :]  # a token t carries t raw bits
    return costs


def quantise(coefficients: Float, steps: Float, mu: Float | None) -> Int32Array:
    """Levels of ``(N, bands)`` coefficients for zigzag ``steps``; ``mu`` per band (``None``:
    plain rounding). Band 0 (DC) is always rounded.

    Only levels of one or two are reconsidered: lowering a larger level by one adds at
    least one unit of distortion and saves at most one bit, which the multipliers used here
    never prefer.
    """
    scaled = coefficients / steps
    levels = np.rint(scaled)
    if mu is None:
        return levels.astype(np.int32)
    magnitude = np.abs(levels)
    costs = token_costs(magnitude)
    small = (magnitude == 1) | (magnitude == 2)
    small[:, 0] = False
    rows, bands = np.nonzero(small)
    x = np.abs(scaled[rows, bands])
    m = mu[bands]
    c = costs[bands]
    cost0 = x * x + m * c[:, 0]
    cost1 = (x - 1) ** 2 + m * c[:, 1]
    cost2 = np.where(magnitude[rows, bands] == 2, (x - 2) ** 2 + m * c[:, 2], np.inf)
    best = np.where(cost1 <= cost2, np.float32(1), np.float32(2))
    best = np.where(cost0 < np.minimum(cost1, cost2), np.float32(0), best)
    levels[rows, bands] = np.copysign(best, scaled[rows, bands])
    return levels.astype(np.int32)


def squared_error(coefficients: Float, steps: Float, levels: Int32Array) -> float:
    """Sum of squared coefficient errors of ``levels`` (pixel-domain error, by Parseval)."""
    error = coefficients - levels * steps
    return float(np.einsum("ij,ij->", error, error, dtype=np.float64))
