"""Bjøntegaard delta rate: how many more (or fewer) bytes a codec spends than an anchor.

Per image, each curve is log(bits per pixel) as a function of quality (PSNR or SSIM), fitted
by a piecewise cubic Hermite interpolant (PCHIP: monotone data stays monotone, no overshoot
between sparse points). Each curve is clipped to the rate window (0.3-2 bpp by default): its
quality range shrinks to where its fitted rate lies inside the window. The two curves' log-rates
are integrated over the quality range both cover, and the mean difference ``d`` gives the
BD-rate ``exp(d) - 1``, in percent: -20 means 20 % fewer bytes at the same quality.

An image is skipped when either curve has fewer than 2 usable points or the clipped curves do
not overlap; points that do not raise both rate and quality are dropped first (an encoder that
spends more bytes for less quality is not on its rate-distortion curve).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.interpolate import PchipInterpolator

#: (bits per pixel, quality) of one encode.
Point = tuple[float, float]


@dataclass(frozen=True)
class Window:
    """The rates, in bits per pixel, a BD-rate is taken over."""

    low: float = 0.3
    high: float = 2.0


@dataclass(frozen=True)
class Summary:
    """BD-rates (percent) of one curve against the anchor, over a set of images."""

    mean: float | None
    worst: float | None
    worst_image: str | None
    images: int
    skipped: int


def monotone(points: Iterable[Point]) -> list[Point]:
    """The points sorted by rate, keeping only those that raise both rate and quality."""
    kept: list[Point] = []
    for rate, quality in sorted(p for p in points if math.isfinite(p[1]) and p[0] > 0):
        if not kept or (rate > kept[-1][0] and quality > kept[-1][1]):
            kept.append((rate, quality))
    return kept


@dataclass(frozen=True)
class _Fit:
    curve: PchipInterpolator
    low: float
    high: float


def _crossing(curve: PchipInterpolator, level: float, low: float, high: float) -> float:
    """The quality in [low, high] where the monotone fitted log-rate equals ``level``."""
    roots = [float(r) for r in curve.solve(level, extrapolate=False) if low <= r <= high]
    return min(roots) if roots else low


def _fit(points: Iterable[Point], window: Window) -> _Fit | None:
    kept = monotone(points)
    if len(kept) < 2:
        return None
    log_rates = np.log([rate for rate, _ in kept])
    qualities = np.array([quality for _, quality in kept])
    curve = PchipInterpolator(qualities, log_rates, extrapolate=False)
    low_level, high_level = math.log(window.low), math.log(window.high)
    if log_rates[-1] <= low_level or log_rates[0] >= high_level:
        return None
    low, high = float(qualities[0]), float(qualities[-1])
    if log_rates[0] < low_level:
        low = _crossing(curve, low_level, low, high)
    if log_rates[-1] > high_level:
        high = _crossing(curve, high_level, low, high)
    return _Fit(curve, low, high)


def bd_rate(
    anchor: Iterable[Point], test: Iterable[Point], window: Window | None = None
) -> float | None:
    """BD-rate of ``test`` against ``anchor`` in percent, or None where it is undefined."""
    window = window or Window()
    first, second = _fit(anchor, window), _fit(test, window)
    if first is None or second is None:
        return None
    low, high = max(first.low, second.low), min(first.high, second.high)
    if high <= low:
        return None
    difference = float(second.curve.integrate(low, high) - first.curve.integrate(low, high))
    return 100.0 * math.expm1(difference / (high - low))


def summarise(
    anchor: Mapping[str, Sequence[Point]],
    test: Mapping[str, Sequence[Point]],
    window: Window | None = None,
) -> Summary:
    """Mean and worst (largest) per-image BD-rate over every image either side has."""
    results: dict[str, float] = {}
    images = sorted(set(anchor) | set(test))
    for image in images:
        value = bd_rate(anchor.get(image, ()), test.get(image, ()), window)
        if value is not None:
            results[image] = value
    if not results:
        return Summary(None, None, None, len(images), len(images))
    worst = max(results, key=lambda image: results[image])
    return Summary(
        sum(results.values()) / len(results),
        results[worst],
        worst,
        len(images),
        len(images) - len(results),
    )


def points_by_image(
    rows: Iterable[Mapping[str, object]], quality: str, rate: str = "bpp"
) -> dict[str, list[Point]]:
    """(rate, quality) per image from benchmark rows; rows without both values are left out."""
    curves: dict[str, list[Point]] = {}
    for row in rows:
        x, y = row.get(rate), row.get(quality)
        if isinstance(x, int | float) and isinstance(y, int | float):
            curves.setdefault(str(row["image"]), []).append((float(x), float(y)))
    return curves
