"""bench.seeds on one small sample: every section prints a table of sane numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench import seeds

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def _tables(report: str) -> dict[str, list[dict[str, str]]]:
    """Each section's table rows (the first table under its heading), as header -> cell."""
    tables: dict[str, list[dict[str, str]]] = {}
    for section in report.split("\n## ")[1:]:
        title, _, body = section.partition("\n")
        first = body[body.index("\n| ") + 1 :].split("\n\n")[0]
        split = [[c.strip() for c in line.strip("|").split("|")] for line in first.splitlines()]
        # split[1] is the header's --- line.
        tables[title] = [dict(zip(split[0], cells, strict=True)) for cells in split[2:]]
    return tables


def _mean(cell: str) -> float:
    """The mean of a "mean (min-max)" cell."""
    return float(cell.partition(" ")[0])


def test_report_has_three_sections_of_sane_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    assert seeds.main(["--data", str(SAMPLES), "--limit", "1"]) == 0
    report = capsys.readouterr().out
    tables = _tables(report)
    assert list(tables) == [seeds.TITLES[s] for s in seeds.SECTIONS]
    for section in seeds.SECTIONS:
        assert f"python -m bench.seeds --only {section}" in report

    qiu = tables[seeds.TITLES["qiu"]]
    # kodim04-half is 256x384: one 256x256 tile, and the full image.
    assert len(qiu) == 2 * len(seeds.QIU_ANCHORS)
    for row in qiu:
        assert row["n"] == "1"
        assert 0 < _mean(row["bytes / JPEG q50"]) < 1.5
        assert 0 < _mean(row["bytes / JPEG q50 optimised"]) < 1.5
        # DC recovery must beat the anchors' bilinear preview, and stay below the full JPEG.
        assert float(row["PSNR received"]) < _mean(row["PSNR classical (DC recovered)"])
        assert 20 < _mean(row["PSNR classical (DC recovered)"]) < _mean(row["PSNR JPEG q50"])

    dic = tables[seeds.TITLES["dic"]]
    assert [row["profile"].partition(" ")[0] for row in dic] == [
        f"auto({q})" for q in seeds.DIC_QUALITIES
    ]
    assert any("(default)" in row["profile"] for row in dic)
    for row in dic:
        assert row["tiles"] == "6"  # 256x384 holds 2x3 tiles of 128x128
        assert 0 < _mean(row["% of raw"]) < 150
        assert 0 < _mean(row["bytes / JPEG same q"]) < 1.5
        assert row["classical >= JPEG PSNR"].endswith("/6")
        assert 25 < float(row["PSNR classical"]) < 60
        assert 0 < float(row["SSIM classical"]) <= 1
    ratios = [_mean(row["% of raw"]) for row in dic]
    assert ratios == sorted(ratios)  # higher quality, more bytes

    lossless = tables[seeds.TITLES["lossless"]]
    assert len(lossless) == len(seeds.LOSSLESS_QUALITIES)
    for row in lossless:
        assert row["exact"] == "1/1"
        assert row["JPEG holds the same coefficients"] == "1/1"
        assert row["Lepton round trip"] == "1/1"
        for column in (
            "bytes / same-coefficient JPEG (optimised)",
            "bytes / same-coefficient JPEG (standard tables)",
            "Lepton / same-coefficient JPEG (optimised)",
        ):
            assert 0 < _mean(row[column]) < 1.5


def test_only_runs_the_named_sections(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--data", str(SAMPLES), "--limit", "1", "--only", "lossless,qiu"]
    assert seeds.main(argv) == 0
    titles = list(_tables(capsys.readouterr().out))
    assert titles == [seeds.TITLES["qiu"], seeds.TITLES["lossless"]]  # report order
    with pytest.raises(SystemExit):
        seeds.main(["--data", str(SAMPLES), "--only", "qiu,jpegxl"])


def test_tiles_are_non_overlapping_from_the_top_left() -> None:
    pixels = np.arange(5 * 9, dtype=np.uint8).reshape(5, 9)
    found = seeds.tiles(pixels, 4)
    assert len(found) == 2  # 1 row and 2 columns of 4x4; the remainder is left out
    assert np.array_equal(found[0], pixels[:4, :4])
    assert np.array_equal(found[1], pixels[:4, 4:8])
    assert seeds.tiles(pixels, 6) == []
