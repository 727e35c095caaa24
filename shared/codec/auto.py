"""The ``auto`` and ``adaptive`` profiles: choose tables, levels and retention for one image.

``auto(quality=q)`` promises a receiver picture at least as good as a libjpeg JPEG at ``q``,
in the fewest bytes. Everything runs on one transform of the image (:class:`Transformed`):

1. The target. libjpeg at ``q`` rounds each DCT coefficient to a multiple of its Annex K
   step, so its error can be computed exactly in the DCT domain by re-quantising (no JPEG
   encode): ``D_jpeg``, the squared error weighted by how much each plane's error shows in RGB.
2. The candidates. Tables of one shape (:data:`MODEL`: near-flat, fitted on the training
   photographs for reconstruction error rather than visibility, with their own luma/chroma
   balance) scaled by one number ``s``; levels from rate-distortion optimised quantisation
   (:mod:`rdo`) with a multiplier tied to ``s``, so zeroing stops where its bits stop paying.
3. The choice. The receiver's classical recovery lowers the received error by a factor the
   model predicts (fitted on the training photographs, never run on the sender); the largest
   ``s`` whose predicted receiver error stays within ``D_jpeg`` wins, found by a secant search
   on a subsample of the blocks, then quantised once at full size.
4. Retention. Bands past the last non-zero level of a channel are not sent at all.

``adaptive(max_bytes=...)`` runs the same candidates under a byte budget instead, with real
entropy-coded sizes correcting the search (the model's rate is only an estimate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.codec import entropy
from shared.codec.coefficients import CoefficientImage, Int32Array, Retention, TableArray
from shared.codec.frontend import Transformed
from shared.codec.profiles import Layout
from shared.codec.quantisation import standard_tables, to_zigzag
from shared.codec.rdo import quantise, squared_error

Float = npt.NDArray[np.float32]

# Mean square RGB error per unit of Y / Cb / Cr error, from the JFIF inverse matrix.
PLANE_WEIGHTS = (1.0, (0.344136**2 + 1.772**2) / 3, (1.402**2 + 0.714136**2) / 3)


@dataclass(frozen=True)
class AutoModel:
    """The fitted constants of ``auto`` (models/fit_auto.py fits them on train/ only).

    Steps are ``s * (1 + slope * (u + v))`` for horizontal and vertical frequency u, v in
    0..7, chroma steps ``chroma_ratio`` times luma's; ``multiplier`` is the Lagrange
    multiplier in units of ``s**2`` per bit. ``recovery_gain`` maps quality to the factor the
    receiver's classical stage divides the received error by (piecewise linear in quality).
    """

    luma_slope: float = 0.06
    chroma_slope: float = 0.06
    chroma_ratio: float = 1.0
    multiplier: float = 0.12
    recovery_gain: tuple[tuple[int, float], ...] = ((1, 1.0), (100, 1.0))

    def gain(self, quality: int) -> float:
        qualities, gains = zip(*self.recovery_gain, strict=True)
        return float(np.interp(quality, qualities, gains))


MODEL = AutoModel()
_FREQUENCY = (np.arange(8)[:, None] + np.arange(8)[None, :]).astype(np.float64)
_SAMPLE_EVERY = 4  # the search scores every 4th block; the final choice sees them all
_SEARCH_STEPS = 6
_MAX_STEP = 65535


def channel_weights(layout: Layout) -> tuple[float, ...]:
    """RGB squared error per unit of squared coefficient error, per channel, counting each
    4:2:0 chroma coefficient once for each of the four pixels it covers."""
    if layout is Layout.GRAY:
        return (1.0,)
    area = 4.0 if layout is Layout.YCBCR420 else 1.0
    return (1.0, PLANE_WEIGHTS[1] * area, PLANE_WEIGHTS[2] * area)


def tables_for(scale: float, model: AutoModel = MODEL) -> tuple[TableArray, TableArray]:
    """(luma, chroma) natural-order tables of the model's shape at step ``scale``."""
    luma = scale * (1 + model.luma_slope * _FREQUENCY)
    chroma = scale * model.chroma_ratio * (1 + model.chroma_slope * _FREQUENCY)
    return (
        np.clip(np.rint(luma), 1, _MAX_STEP).astype(np.uint16),
        np.clip(np.rint(chroma), 1, _MAX_STEP).astype(np.uint16),
    )


def _channel_steps(layout: Layout, luma: TableArray, chroma: TableArray) -> list[Float]:
    return [to_zigzag(luma if c == 0 else chroma) for c in range(layout.channels)]


def jpeg_distortion(image: Transformed, quality: int, every: int = 1) -> float:
    """Weighted squared DCT error of libjpeg's plain rounding with Annex K tables at
    ``quality``; ``every`` > 1 scores only every n-th block (an estimate, scaled up)."""
    steps = _channel_steps(image.layout, *standard_tables(quality))
    total = 0.0
    for coefficients, step, weight in zip(
        image.coefficients, steps, channel_weights(image.layout), strict=True
    ):
        sample = coefficients[::every]
        total += weight * squared_error(sample, step, quantise(sample, step, None))
    return total * every


@dataclass(frozen=True)
class Candidate:
    scale: float
    tables: tuple[TableArray, TableArray]
    levels: tuple[Int32Array, ...]
    distortion: float


def candidate(
    image: Transformed, scale: float, every: int = 1, model: AutoModel = MODEL
) -> Candidate:
    """Tables at ``scale`` and RD-optimised levels of (every ``every``-th block of) the image."""
    tables = tables_for(scale, model)
    steps = _channel_steps(image.layout, *tables)
    levels, distortion = [], 0.0
    lagrangian = model.multiplier * scale * scale
    for coefficients, step, weight in zip(
        image.coefficients, steps, channel_weights(image.layout), strict=True
    ):
        sample = coefficients[::every]
        mu = (lagrangian / (weight * step * step)).astype(np.float32)
        channel_levels = quantise(sample, step, mu)
        levels.append(channel_levels)
        distortion += weight * squared_error(sample, step, channel_levels)
    return Candidate(scale, tables, tuple(levels), distortion * every)


def _search(image: Transformed, target: float, start: float) -> float:
    """The largest scale whose sampled distortion stays at or under ``target``: a secant
    search on log distortion against log scale (distortion grows about as scale**1.5)."""
    low: tuple[float, float] | None = None  # (log scale, log distortion) at or under target
    high: tuple[float, float] | None = None
    log_target = math.log(max(target, 1e-9))
    log_scale = math.log(start)
    slope = 1.5
    for _ in range(_SEARCH_STEPS):
        d = math.log(max(candidate(image, math.exp(log_scale), _SAMPLE_EVERY).distortion, 1e-9))
        if d <= log_target and (low is None or log_scale > low[0]):
            low = (log_scale, d)
        elif d > log_target and (high is None or log_scale < high[0]):
            high = (log_scale, d)
        if low is not None and high is not None:
            if high[0] - low[0] < 0.02:
                break
            slope = max((high[1] - low[1]) / (high[0] - low[0]), 0.3)
            guess = low[0] + (log_target - low[1]) / slope
            span = high[0] - low[0]
            log_scale = min(max(guess, low[0] + 0.1 * span), high[0] - 0.1 * span)
        else:
            # One side only: extrapolate, aiming a little past the target so the next try
            # lands on the other side.
            log_scale += (log_target - d) / slope + (0.03 if low is not None else -0.03)
    if low is not None:
        return math.exp(low[0])
    # Everything tried was too coarse; step down until something is fine enough.
    for _ in range(_SEARCH_STEPS):
        log_scale -= 0.1
        if candidate(image, math.exp(log_scale), _SAMPLE_EVERY).distortion <= target:
            break
    return max(math.exp(log_scale), 0.5)


def retained(levels: tuple[Int32Array, ...]) -> tuple[Retention, ...]:
    """Per channel, the bands up to the last one holding a non-zero level."""
    out = []
    for channel in levels:
        used = np.flatnonzero(channel.any(axis=0))
        out.append(Retention(int(used[-1]) + 1 if used.size else 1))
    return tuple(out)


def coefficient_image(image: Transformed, chosen: Candidate) -> CoefficientImage:
    """The chosen levels as the codec's coefficient image (unsent bands zeroed)."""
    retention = retained(chosen.levels)
    channels = []
    for levels, (by, bx), kept in zip(chosen.levels, image.shapes, retention, strict=True):
        full = levels.reshape(by, bx, 64).copy()
        full[:, :, kept.keep :] = 0
        channels.append(full)
    luma, chroma = chosen.tables
    tables = (luma,) if image.layout is Layout.GRAY else (luma, chroma, chroma)
    return CoefficientImage(
        image.width, image.height, image.layout, tuple(channels), tables, retention
    )


def _start_scale(quality: int) -> float:
    """A first guess: the mean Annex K luma step at ``quality``."""
    return max(float(standard_tables(quality)[0].mean()) * 0.6, 1.0)


def choose_auto(image: Transformed, quality: int, model: AutoModel = MODEL) -> CoefficientImage:
    """The coefficients ``auto(quality)`` sends for ``image``."""
    target = jpeg_distortion(image, quality, _SAMPLE_EVERY) * model.gain(quality)
    scale = _search(image, target, _start_scale(quality))
    return coefficient_image(image, candidate(image, scale, 1, model))


def choose_budget(image: Transformed, max_bytes: int, overhead: int) -> CoefficientImage:
    """The best coefficients whose entropy-coded body fits ``max_bytes - overhead`` bytes.

    Each try is a real entropy coding of re-quantised levels (never a new transform); the
    scale moves as log bytes against log scale. Raises ValueError when nothing fits.
    """
    budget = max_bytes - overhead
    best: tuple[float, CoefficientImage] | None = None  # smallest fitting scale
    smallest_miss: float | None = None
    log_scale = math.log(8.0)
    slope = -1.2  # bytes fall about as scale**-1.2
    for _ in range(_SEARCH_STEPS):
        scale = math.exp(log_scale)
        coefficients = coefficient_image(image, candidate(image, scale))
        size = body_bytes(coefficients)
        fits = size <= budget
        if fits and (best is None or scale < best[0]):
            best = (scale, coefficients)
        if not fits and (smallest_miss is None or scale > smallest_miss):
            smallest_miss = scale
        if fits and size > 0.97 * budget:
            break
        step = (math.log(budget * (0.985 if fits else 0.95)) - math.log(max(size, 1))) / slope
        log_scale += step
        if best is not None and smallest_miss is not None:
            lo, hi = math.log(smallest_miss), math.log(best[0])
            if hi - lo < 0.01:
                break
            log_scale = min(max(log_scale, lo + 0.2 * (hi - lo)), hi - 0.2 * (hi - lo))
        log_scale = min(log_scale, math.log(_MAX_STEP / 2))
    if best is None:
        coarsest = coefficient_image(image, candidate(image, _MAX_STEP / 2))
        if body_bytes(coarsest) > budget:
            raise ValueError(
                f"max_bytes={max_bytes} is too small for a {image.width}x{image.height} image "
                "even at the coarsest setting"
            )
        return coarsest
    return best[1]


def body_bytes(coefficients: CoefficientImage) -> int:
    """Bytes of the entropy-coded body, band lengths and tables of ``coefficients``."""
    segments = entropy.encode_bands(coefficients.channels, coefficients.retention)
    tables = sum(65 if t.max() <= 255 else 129 for t in coefficients.tables[:2])
    return sum(len(s) for s in segments) + tables + 2 * len(segments)
