"""bench.entropy_coders on one sample: both coders, the JPEG and Lepton, in sane ratios."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import entropy_coders

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_report_compares_both_coders_with_the_jpeg_and_lepton(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert entropy_coders.main(["--data", str(SAMPLES), "--limit", "1", "--repeats", "1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    rows: dict[str, list[str]] = {}
    for line in lines:
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in entropy_coders.PROFILES:
            rows.setdefault(cells[0], cells[1:])  # the size table comes first
    assert all(len(r) == 4 for r in rows.values())
    assert len(rows) == len(entropy_coders.PROFILES)
    for name in ("lossless q75", "lossless q90"):
        ratios = [float(v) for v in rows[name][:4]]
        assert all(0.5 < r < 1.2 for r in ratios), (name, ratios)
    assert rows["auto q75"][1:] == ["-", "-", "-"]  # no JPEG holds auto's coefficients
    timing = [line for line in lines if line.startswith("| lossless q75 |")][-1]
    assert len(timing.split("|")) == 9  # six timings beside the profile
