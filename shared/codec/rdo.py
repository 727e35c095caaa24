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
Neighbour contexts are left out on purpose: priced by how busy its block is, a lone level
in a flat block costs many bits and goes, which bought 0.3 % in PSNR BD-rate but cost 1.9 %
in SSIM BD-rate on the training photographs (SSIM normalises by local contrast, so texture
in flat regions weighs heavily). DC coefficients are
predicted from their neighbours, so their token statistics are not the band's: DC is
always rounded plainly.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Float = npt.NDArray[np.float32]
Int32Array = npt.NDArray[np.int32]

_SAMPLE_EVERY = 4  # token statistics are read off every 4th block: plenty for the counts
#: What a band's segment costs beyond its tokens: its length field and the compressor's
#: flush (entropy.py; measured at 3-4 bytes).
BAND_OVERHEAD_BITS = 32.0
#: Raw bits carried by tokens 0 (zero), 1 (one), 2 (two or three) and 3 (four or more; a
#: rare token whose mantissa is about three bits).
_RAW_BITS = np.array([0, 1, 2, 5], dtype=np.float32)


def _counts(magnitudes: Float) -> Float:
    """``[band, token]`` counts of ``(N, bands)`` level magnitudes (tokens as in _RAW_BITS)."""
    zero = np.count_nonzero(magnitudes == 0, axis=0)
    one = np.count_nonzero(magnitudes == 1, axis=0)
    large = np.count_nonzero(magnitudes >= 4, axis=0)
    two = magnitudes.shape[0] - zero - one - large
    return np.stack([zero, one, two, large], axis=1).astype(np.float32)


def token_costs(magnitudes: Float) -> Float:
    """``[band, t]``: bits of a level of token t in each band, raw bits included, from
    plainly rounded magnitudes ``(N, bands)``.

    Laplace-smoothed frequencies, so a token never seen still has a finite price.
    """
    counts = _counts(magnitudes[::_SAMPLE_EVERY])
    probability = (counts + 0.25) / (counts.sum(axis=1, keepdims=True) + 0.25 * len(_RAW_BITS))
    costs: Float = (-np.log2(probability)).astype(np.float32)
    costs += _RAW_BITS
    return costs


def quantise(coefficients: Float, steps: Float) -> Int32Array:
    """Plain rounding to the nearest level, as libjpeg quantises."""
    levels: Int32Array = np.rint(coefficients / steps).astype(np.int32)
    return levels


def rd_quantise(
    coefficients: Float, steps: Float, mu: Float, overhead_bits: float = BAND_OVERHEAD_BITS
) -> tuple[Int32Array, float]:
    """RD-optimised levels of ``(N, 64)`` coefficients for zigzag ``steps`` and per-band
    multipliers ``mu``, and their squared error (pixel-domain, by Parseval).

    Band 0 (DC) is always rounded. Only levels of one or two are reconsidered: lowering a
    larger level by one adds at least one unit of distortion and saves at most one bit,
    which the multipliers used here never prefer. Then, from the highest band down, a band
    goes while the distortion its levels remove is less than ``mu`` times its estimated bits
    plus ``overhead_bits`` (the price of sending the band at all).
    """
    scaled: Float = coefficients / steps
    levels: Float = np.rint(scaled)
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
    keep = _bands_worth_their_bits(scaled, levels, costs, mu, overhead_bits)
    levels[:, keep:] = 0
    error = (scaled - levels) * steps
    return levels.astype(np.int32), float(np.einsum("ij,ij->", error, error, dtype=np.float64))


def _bands_worth_their_bits(
    scaled: Float, levels: Float, costs: Float, mu: Float, overhead_bits: float
) -> int:
    """How many bands to keep: the walk down from the top stops at the first band whose
    levels remove more distortion than ``mu`` times their bits."""
    # Error removed by sending a level l instead of zero: x^2 - (x - l)^2 = l (2x - l).
    removed = (levels * (2 * scaled - levels)).sum(axis=0)
    sample = levels[::_SAMPLE_EVERY]
    counts = _counts(np.abs(sample)) * (levels.shape[0] / sample.shape[0])
    rate = (counts * costs).sum(axis=1) + overhead_bits
    worth = removed > mu * rate
    worth[0] = True  # DC always travels
    return int(np.flatnonzero(worth)[-1]) + 1


def squared_error(coefficients: Float, steps: Float, levels: Int32Array) -> float:
    """Sum of squared coefficient errors of ``levels`` (pixel-domain error, by Parseval)."""
    error = coefficients - levels * steps
    return float(np.einsum("ij,ij->", error, error, dtype=np.float64))
