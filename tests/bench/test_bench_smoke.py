"""The benchmarks run end to end on tiny inputs and write what they promise."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import rd, speed
from bench.jpeg import truncated_jpeg_bytes
from shared.codec import Layout, Profile, decode, encode

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_rd_writes_csv_summary_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "rd"
    assert rd.main(["--data", str(SAMPLES), "--out", str(out), "--limit", "1"]) == 0
    assert (out / "rd.md").stat().st_size > 0
    assert (out / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "rd.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["rate_point"] for r in rows] == [p.name for p in rd.RATE_POINTS]
    assert {r["image"] for r in rows} == {sorted(SAMPLES.glob("*.png"))[0].name}
    for row in rows:
        assert float(row["psnr_received"]) > 10
        assert 0 < float(row["ssim_received"]) <= 1
        assert float(row["ratio_to_truncated_jpeg"]) > 0
    lossless = {r["rate_point"]: r for r in rows if r["profile"] == "lossless"}
    assert set(lossless) == {"lossless-q75", "lossless-q90"}
    assert all(float(r["ratio_to_jpeg"]) > 0 for r in lossless.values())
    summary = (out / "rd.md").read_text()
    assert "lossless q75 payload / Pillow JPEG q75" in summary
    assert "lowpass q90 (15, 6) payload / JPEG of the same truncated coefficients" in summary


def test_rd_scores_the_committed_model_and_a_baseline_network(tmp_path: Path) -> None:
    # The committed model scored a second time as a "baseline": its columns must match the
    # enhanced stage exactly, and the stage table is left as it was.
    model = Path(__file__).resolve().parents[2] / "models" / "dctlink-residual-v1.onnx"
    out = tmp_path / "rd"
    argv = [
        "--data",
        str(SAMPLES),
        "--out",
        str(out),
        "--limit",
        "1",
        "--baseline",
        f"twin={model}",
    ]
    assert rd.main(argv) == 0
    assert "twin" not in rd.STAGES
    with open(out / "rd.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert row["psnr_enhanced"]
        assert row["psnr_twin"] == row["psnr_enhanced"]
    assert "PSNR twin" in (out / "rd.md").read_text()
    with pytest.raises(SystemExit):
        rd.main([*argv[:-1], "twin=" + str(tmp_path / "absent.onnx")])


def test_optimised_truncated_jpeg_is_smaller(tmp_path: Path) -> None:
    image = np.asarray(Image.open(sorted(SAMPLES.glob("*.png"))[0]).convert("RGB"))
    decoded = decode(encode(image, Profile.lowpass()))
    optimised = truncated_jpeg_bytes(decoded, tmp_path)
    plain = truncated_jpeg_bytes(decoded, tmp_path, optimize=False)
    assert optimised < plain


def test_gray_reference_matches_the_codec_front_end() -> None:
    rgb = np.array([[[255, 0, 0], [10, 200, 30]]], dtype=np.uint8)
    gray = rd.codec_view(rgb, Layout.GRAY)
    assert gray.tolist() == [[76, 124]]


def test_speed_runs_with_one_repeat(capsys: pytest.CaptureFixture[str]) -> None:
    assert speed.main(["--data", str(SAMPLES), "--repeats", "1", "--size", "64x48"]) == 0
    printed = capsys.readouterr().out
    assert "64x48" in printed
    assert "lossless q90" in printed
    assert "max RSS" in printed
