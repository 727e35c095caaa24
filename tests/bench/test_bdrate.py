"""BD-rate maths on synthetic curves whose answers are known in closed form."""

from __future__ import annotations

import math

import pytest

from bench.bdrate import Point, Window, bd_rate, monotone, points_by_image, summarise

#: Rate 0.1 bpp at quality 0 up to 10 bpp at quality 100, log-linear: PCHIP fits it exactly.
QUALITIES = range(0, 101, 10)
ANCHOR: list[Point] = [(0.1 * 100 ** (q / 100), float(q)) for q in QUALITIES]


def scaled(points: list[Point], factor: float) -> list[Point]:
    return [(rate * factor, quality) for rate, quality in points]


def test_identical_curves_give_zero() -> None:
    assert bd_rate(ANCHOR, ANCHOR) == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize(("factor", "expected"), [(0.8, -20.0), (1.25, 25.0), (0.5, -50.0)])
def test_a_constant_rate_factor_is_the_bd_rate(factor: float, expected: float) -> None:
    assert bd_rate(ANCHOR, scaled(ANCHOR, factor)) == pytest.approx(expected, abs=1e-9)


def test_a_constant_factor_holds_on_a_curved_non_linear_curve() -> None:
    # PCHIP of log-rate plus a constant is the same PCHIP shifted: exact whatever the shape.
    anchor = [(0.2 + 0.02 * q**1.3, float(q)) for q in QUALITIES]
    assert bd_rate(anchor, scaled(anchor, 0.8)) == pytest.approx(-20.0, abs=1e-9)


def test_only_the_rate_window_counts() -> None:
    # The last point, far above 2 bpp, is moved; PCHIP is local, so inside the window (which
    # ends two segments below it) the curves stay 0.8x apart.
    test = scaled(ANCHOR, 0.8)
    test[-1] = (30.0, 100.0)
    assert bd_rate(ANCHOR, test) == pytest.approx(-20.0, abs=1e-9)
    unclipped = bd_rate(ANCHOR, test, Window(0.01, 100.0))
    assert unclipped is not None
    assert unclipped > -19.0


def test_the_low_end_of_the_window_clips_too() -> None:
    # Anchor and test cross 0.3 bpp near quality 24 and 29; the moved first point (quality 0)
    # only bends the segments below quality 20.
    test = scaled(ANCHOR, 0.8)
    test[0] = (0.001, 0.0)
    assert bd_rate(ANCHOR, test) == pytest.approx(-20.0, abs=1e-9)
    unclipped = bd_rate(ANCHOR, test, Window(0.0001, 100.0))
    assert unclipped is not None
    assert unclipped < -21.0


def test_undefined_cases_give_none() -> None:
    assert bd_rate(ANCHOR, ANCHOR[:1]) is None  # one point
    assert bd_rate(ANCHOR, []) is None
    assert bd_rate(ANCHOR, [(5.0, 80.0), (8.0, 90.0)]) is None  # all above 2 bpp
    assert bd_rate(ANCHOR, [(0.31, 300.0), (0.5, 400.0)]) is None  # no quality overlap


def test_points_that_do_not_raise_both_rate_and_quality_are_dropped() -> None:
    points = [(1.0, 30.0), (0.5, 25.0), (1.5, 29.0), (2.0, 35.0), (2.0, 36.0), (3.0, math.inf)]
    assert monotone(points) == [(0.5, 25.0), (1.0, 30.0), (2.0, 35.0)]
    noisy = [*scaled(ANCHOR, 0.8), (1.1, 1.0)]  # more bytes, worse quality: off the curve
    assert bd_rate(ANCHOR, noisy) == pytest.approx(-20.0, abs=1e-9)


def test_summary_is_the_mean_and_worst_image_and_counts_skips() -> None:
    anchor = {"a": ANCHOR, "b": ANCHOR, "c": ANCHOR}
    test = {"a": scaled(ANCHOR, 0.8), "b": scaled(ANCHOR, 0.9), "c": ANCHOR[:1]}
    summary = summarise(anchor, test)
    assert summary.mean == pytest.approx(-15.0)
    assert summary.worst == pytest.approx(-10.0)
    assert summary.worst_image == "b"
    assert (summary.images, summary.skipped) == (3, 1)
    empty = summarise(anchor, {})
    assert (empty.mean, empty.worst, empty.skipped) == (None, None, 3)


def test_points_by_image_skips_rows_without_values() -> None:
    rows = [
        {"image": "x", "bpp": 1.0, "psnr": 30.0},
        {"image": "x", "bpp": 2.0, "psnr": None},
        {"image": "y", "bpp": 0.5, "psnr": 28.0},
    ]
    assert points_by_image(rows, "psnr") == {"x": [(1.0, 30.0)], "y": [(0.5, 28.0)]}
