"""What recovering one image costs, estimated from its header before any work is done.

A payload's header says everything the work depends on: the pixel count, the layout and
whether DCs are missing. The receiver checks these estimates against two settings
(``ingest.max_image_memory_bytes`` and ``ingest.recovery_budget_s``): a payload whose received
stage alone would not fit is refused before anything is allocated, and a recovery stage that
would not fit is skipped, the image saying why, so no payload can take more than the budget.

The figures are peaks above the idle process, measured with ``ru_maxrss`` and process time on
2048x2048 payloads (noise-like and flat content, 2-core x86 receiver; ``bench/budget.py``
prints them again), then rounded up by about 10 %:

=============  ===========  ================  ===================  ==================
layout         received     classical         classical seconds    DC estimation
=============  ===========  ================  ===================  ==================
gray           20 B/px      70 B/px           0.20 s/Mpx           1.95 s/Mpx, growing
YCbCr 4:2:0    32 B/px      66 B/px           0.40 s/Mpx           with the image
YCbCr 4:4:4    60 B/px      90 B/px           1.00 s/Mpx
=============  ===========  ================  ===================  ==================

The network stage runs in tiles but builds its inputs for the whole image: 100 MB plus
140 B/px, and its time grows faster than the pixel count (1.2 s/Mpx at 1 Mpx, 2.4 s/Mpx at
4 Mpx: the whole-image inputs outgrow the caches), so the estimate is 1.3 s/Mpx times the square
root of the megapixels past 1. Seconds vary with the machine; the classical stage also checks
the deadline between iterations, so an underestimate there costs iterations, not the budget.
The DC solve (the ``paper`` profile) is one sparse factorisation that cannot stop half way, so
its estimate grows faster than the pixel count, as measured (1.1 s at 1 Mpx, 4.9 s at 4,
12.7 s at 8.4; the issue that asked for this measured 190 s at 16.8 Mpx).
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.codec import Layout

_MPX = 1_000_000

#: Bytes per pixel at the peak of the received stage (decode included) and of classical.
_RECEIVED_BYTES = {Layout.GRAY: 20, Layout.YCBCR420: 32, Layout.YCBCR444: 60}
_CLASSICAL_BYTES = {Layout.GRAY: 70, Layout.YCBCR420: 66, Layout.YCBCR444: 90}
_CLASSICAL_S_PER_MPX = {Layout.GRAY: 0.2, Layout.YCBCR420: 0.4, Layout.YCBCR444: 1.0}
_DC_S_PER_MPX = 1.95
#: Coded samples per pixel, over all planes (each plane has its own DC solve).
_PLANE_AREA = {Layout.GRAY: 1.0, Layout.YCBCR420: 1.5, Layout.YCBCR444: 3.0}
_NETWORK_FIXED_BYTES = 100 * 1024 * 1024
_NETWORK_BYTES = 140
_NETWORK_S_PER_MPX = 1.3


@dataclass(frozen=True)
class Budget:
    """Limits for one image: working memory, and seconds for the optional recovery stages."""

    memory_bytes: int
    seconds: float


@dataclass(frozen=True)
class Estimate:
    """Peak working memory (bytes) and seconds of each stage of one image."""

    received_bytes: int
    classical_bytes: int
    classical_seconds: float
    enhanced_bytes: int
    enhanced_seconds: float


def estimate(width: int, height: int, layout: Layout, *, dc_missing: bool) -> Estimate:
    pixels = width * height
    mpx = pixels / _MPX
    classical_s = _CLASSICAL_S_PER_MPX[layout] * mpx
    if dc_missing:
        # Superlinear: the sparse factorisation fills in (measured 1.1 s/Mpx at 1 Mpx, 1.5 at 8).
        classical_s += _PLANE_AREA[layout] * _DC_S_PER_MPX * mpx * max(1.0, mpx / 4) ** 0.5
    return Estimate(
        received_bytes=_RECEIVED_BYTES[layout] * pixels,
        classical_bytes=_CLASSICAL_BYTES[layout] * pixels,
        classical_seconds=classical_s,
        enhanced_bytes=_NETWORK_FIXED_BYTES + _NETWORK_BYTES * pixels,
        enhanced_seconds=_NETWORK_S_PER_MPX * mpx * max(1.0, mpx) ** 0.5,
    )


def over_memory(what: str, needed: int, budget: Budget) -> str | None:
    """Why ``what`` does not fit the memory budget, or None when it does."""
    if needed <= budget.memory_bytes:
        return None
    return (
        f"{what} would need about {needed / 2**20:.0f} MiB, over the"
        f" {budget.memory_bytes / 2**20:.0f} MiB budget per image"
    )


def over_time(what: str, needed: float, left: float, budget: Budget) -> str | None:
    """Why ``what`` does not fit the time left of the budget, or None when it does."""
    if needed <= left:
        return None
    return (
        f"{what} would take about {needed:.1f} s, over the {left:.1f} s left of the"
        f" {budget.seconds:.1f} s recovery budget"
    )
