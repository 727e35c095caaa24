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
4. Retention. From its highest band down, a channel stops sending bands whose levels buy
   less distortion than their bits (and the band's own overhead) cost; bands past the last
   non-zero level are not sent at all.

``adaptive(max_bytes=...)`` runs the same candidates under a byte budget instead, with real
entropy-coded sizes correcting the search (the model's rate is only an estimate).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from shared.codec.coefficients import CoefficientImage, Int32Array, Retention, TableArray
from shared.codec.frontend import Transformed
from shared.codec.profiles import Layout
from shared.codec.quantisation import standard_tables, to_zigzag
from shared.codec.rdo import BAND_OVERHEAD_BITS, quantise, rd_quantise, squared_error

Float = npt.NDArray[np.float32]

# Mean square RGB error per unit of Y / Cb / Cr error, from the JFIF inverse matrix.
PLANE_WEIGHTS = (1.0, (0.344136**2 + 1.772**2) / 3, (1.402**2 + 0.714136**2) / 3)


@dataclass(frozen=True)
class AutoModel:
    """The fitted constants of ``auto`` (models/fit_auto.py fits them on train/ only).

    Steps are ``s * (1 + slope * (u + v))`` for horizontal and vertical frequency u, v in
    0..7, chroma steps ``chroma_ratio`` times luma's; ``multiplier`` is the Lagrange
    multiplier in units of ``s**2`` per bit. ``recovery_gain`` maps quality (piecewise
    linear, held at the ends) to the factor the sender may let its DCT-domain error exceed
    the JPEG's by: what the receiver's classical stage gains, less the prediction's own
    error, as the 5th percentile over the training photographs, so below 1 where recovery
    gains little (high qualities).

    Fitted by ``python -m models.fit_auto`` on halved training photographs (not the five the
    network validates on): received-picture BD-rate -28.2 % in PSNR and -16.1 % in SSIM
    against libjpeg over qualities 20-95 on 10 of them.
    """

    luma_slope: float = 0.07
    chroma_slope: float = 0.1
    chroma_ratio: float = 0.7
    multiplier: float = 0.2
    recovery_gain: tuple[tuple[int, float], ...] = (
        (20, 1.004),
        (30, 1.016),
        (50, 1.013),
        (75, 0.983),
        (90, 0.944),
        (95, 0.946),
    )

    def gain(self, quality: int) -> float:
        qualities, gains = zip(*self.recovery_gain, strict=True)
        return float(np.interp(quality, qualities, gains))


MODEL = AutoModel()
_FREQUENCY = (np.arange(8)[:, None] + np.arange(8)[None, :]).astype(np.float64)
_SAMPLE_EVERY = 4  # the search scores a quarter of the blocks; the final choice sees them all
_CLOSE_ENOUGH = 0.015  # a tried scale this far (log) under the target ends the search
_TOLERANCE = 0.03  # how far the whole image's error may miss the target (0.13 dB)
_MIN_SAMPLE = 2048  # but never fewer than this many blocks of a plane: the error is heavy-tailed
_SEARCH_STEPS = 6
# Steps stay within 8 bits, so the tables cost 64 bytes each; a step of 255 already leaves
# a level-shifted 8-bit block's coefficients (at most 1024) a handful of levels.
_MAX_STEP = 255
#: The coarsest scale the budget search falls back to: every step at its largest.
COARSEST_SCALE = float(_MAX_STEP)
COARSEST_LOG = math.log(COARSEST_SCALE)


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


def sampled(image: Transformed, every: int) -> Transformed:
    """About one block in ``every`` of each plane, for the search: one drawn at random from
    each run of ``every`` blocks in raster order, fewer runs skipped when the luma plane has
    under ``every`` times :data:`_MIN_SAMPLE` blocks (all planes alike, so their errors keep
    their weights). ``shapes`` then say how many blocks were kept.

    Not a plain stride: a stride that divides the width keeps the same columns in every
    row, and on an image whose detail sits in some columns that misjudged the error by a
    fifth (a parrot on a plain background).
    """
    planes, shapes = [], []
    stride = max(min(every, image.coefficients[0].shape[0] // _MIN_SAMPLE), 1)
    for coefficients in image.coefficients:
        count = coefficients.shape[0]
        starts = np.arange(0, count, stride)
        offsets = np.random.default_rng(count).integers(0, stride, size=starts.size)
        rows = np.minimum(starts + offsets, count - 1)
        planes.append(coefficients[rows])
        shapes.append((1, rows.size))
    return Transformed(image.width, image.height, image.layout, tuple(planes), tuple(shapes))


def _scale_up(image: Transformed, sample: Transformed) -> float:
    """How many of the image's blocks each sampled block stands for (luma)."""
    return float(image.coefficients[0].shape[0] / sample.coefficients[0].shape[0])


def jpeg_distortion(image: Transformed, quality: int) -> float:
    """Weighted squared DCT error of libjpeg's plain rounding with Annex K tables at
    ``quality``."""
    steps = _channel_steps(image.layout, *standard_tables(quality))
    total = 0.0
    for coefficients, step, weight in zip(
        image.coefficients, steps, channel_weights(image.layout), strict=True
    ):
        total += weight * squared_error(coefficients, step, quantise(coefficients, step))
    return total


@dataclass(frozen=True)
class Candidate:
    scale: float
    tables: tuple[TableArray, TableArray]
    levels: tuple[Int32Array, ...]
    distortion: float


def candidate(
    image: Transformed, scale: float, model: AutoModel = MODEL, band_weight: float = 1.0
) -> Candidate:
    """Tables at ``scale`` and RD-optimised levels of the image (or of a sample of it, whose
    blocks each stand for ``band_weight`` blocks of the image when pricing a band)."""
    tables = tables_for(scale, model)
    steps = _channel_steps(image.layout, *tables)
    levels, distortion = [], 0.0
    lagrangian = model.multiplier * scale * scale
    for coefficients, step, weight in zip(
        image.coefficients, steps, channel_weights(image.layout), strict=True
    ):
        mu = (lagrangian / (weight * step * step)).astype(np.float32)
        channel_levels, error = rd_quantise(
            coefficients, step, mu, BAND_OVERHEAD_BITS / band_weight
        )
        levels.append(channel_levels)
        distortion += weight * error
    return Candidate(scale, tables, tuple(levels), distortion)


def _search(
    sample: Transformed, target: float, start: float, band_weight: float, model: AutoModel
) -> float:
    """The largest scale whose sampled distortion stays at or under ``target``: a secant
    search on log distortion against log scale (distortion grows about as scale**1.5)."""
    low: tuple[float, float] | None = None  # (log scale, log distortion) at or under target
    high: tuple[float, float] | None = None
    log_target = math.log(max(target, 1e-9))
    log_scale = math.log(start)
    slope = 1.5
    for _ in range(_SEARCH_STEPS):
        scale = math.exp(log_scale)
        d = math.log(max(candidate(sample, scale, model, band_weight).distortion, 1e-9))
        if d <= log_target and (low is None or log_scale > low[0]):
            low = (log_scale, d)
            if log_target - d < _CLOSE_ENOUGH:
                break
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
        scale = math.exp(log_scale)
        if candidate(sample, scale, model, band_weight).distortion <= target:
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
    """The chosen levels as the codec's coefficient image (bands past each channel's last
    non-zero level are already zero, so retention only stops sending them)."""
    channels = tuple(
        levels.reshape(by, bx, 64)
        for levels, (by, bx) in zip(chosen.levels, image.shapes, strict=True)
    )
    luma, chroma = chosen.tables
    tables = (luma,) if image.layout is Layout.GRAY else (luma, chroma, chroma)
    return CoefficientImage(
        image.width, image.height, image.layout, channels, tables, retained(chosen.levels)
    )


def _start_scale(quality: int) -> float:
    """A first guess from the mean Annex K luma step at ``quality``: the scales chosen for
    eight training photographs at 768x512 (41, 24, 15 and 8 at qualities 20, 50, 75, 90)
    follow 1.62 * step**0.652."""
    mean_step = float(standard_tables(quality)[0].mean())
    return max(1.62 * math.pow(mean_step, 0.652), 1.0)


def choose_auto(image: Transformed, quality: int, model: AutoModel = MODEL) -> CoefficientImage:
    """The coefficients ``auto(quality)`` sends for ``image``."""
    return coefficient_image(image, _choose(image, quality, model))


def _choose(image: Transformed, quality: int, model: AutoModel) -> Candidate:
    """The search on a sample, then the whole image checked against the whole JPEG error:
    where the sample misjudged it by more than :data:`_TOLERANCE`, the scale is corrected
    along the power law and the whole image quantised again (at most twice)."""
    gain = model.gain(quality)
    sample = sampled(image, _SAMPLE_EVERY)
    scale = _search(
        sample,
        jpeg_distortion(sample, quality) * gain,
        _start_scale(quality),
        _scale_up(image, sample),
        model,
    )
    chosen = candidate(image, scale, model)
    if sample.coefficients[0].shape[0] == image.coefficients[0].shape[0]:
        return chosen  # the sample was the whole image
    target = jpeg_distortion(image, quality) * gain
    fallback: Candidate | None = None
    for _ in range(2):
        ratio = chosen.distortion / max(target, 1e-9)
        if ratio <= 1 + _TOLERANCE:
            if ratio >= 1 - _TOLERANCE:
                return chosen
            fallback = chosen  # fine but wasteful: try coarser, keep this if that overshoots
        elif fallback is not None:
            return fallback
        chosen = candidate(image, chosen.scale * ratio ** (-1 / 1.5), model)
    if chosen.distortion <= target * (1 + _TOLERANCE) or fallback is None:
        return chosen
    return fallback


def choose_budget(
    image: Transformed, max_bytes: int, seal: Callable[[CoefficientImage], bytes]
) -> bytes:
    """The payload of the finest coefficients whose payload (``seal`` turns coefficients into
    the final bytes) fits ``max_bytes``.

    Each try is a real entropy coding of re-quantised levels (never a new transform); the
    scale moves as log bytes against log scale. Raises ValueError when nothing fits.
    """
    best: tuple[float, bytes] | None = None  # the smallest scale that fits
    smallest_miss: float | None = None
    bpp = 8 * max_bytes / (image.width * image.height)
    # Auto's choices on the training photographs: scale 15 at 0.9 bpp, bytes ~ scale**-1.06.
    slope = -1.06
    log_scale = min(math.log(15.0) + math.log(max(bpp, 1e-3) / 0.9) / slope, COARSEST_LOG)
    for _ in range(_SEARCH_STEPS):
        scale = math.exp(log_scale)
        payload = seal(coefficient_image(image, candidate(image, scale)))
        fits = len(payload) <= max_bytes
        if fits and (best is None or scale < best[0]):
            best = (scale, payload)
        if not fits and (smallest_miss is None or scale > smallest_miss):
            smallest_miss = scale
        if fits and len(payload) > 0.95 * max_bytes:
            break
        aim = max_bytes * (0.975 if fits else 0.95)
        log_scale += (math.log(aim) - math.log(len(payload))) / slope
        if best is not None and smallest_miss is not None:
            lo, hi = math.log(smallest_miss), math.log(best[0])
            if hi - lo < 0.01:
                break
            log_scale = min(max(log_scale, lo + 0.2 * (hi - lo)), hi - 0.2 * (hi - lo))
        log_scale = min(log_scale, COARSEST_LOG)
    if best is not None:
        return best[1]
    coarsest = seal(coefficient_image(image, candidate(image, COARSEST_SCALE)))
    if len(coarsest) > max_bytes:
        raise ValueError(
            f"max_bytes={max_bytes} is too small for a {image.width}x{image.height} image "
            "even at the coarsest setting"
        )
    return coarsest
