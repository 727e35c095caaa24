"""The benchmarks run end to end on tiny inputs and write what they promise."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bench import promise, rd, recovery, speed
from bench.codecs import BASELINE, BY_NAME, CODECS
from bench.jpeg import truncated_jpeg_bytes
from shared.codec import Layout, Profile, decode, encode

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
#: Two qualities and no timing keep the other codecs' part to seconds (timing: its own test).
FAST = ["--qualities", "30,75", "--repeats", "0"]


def test_rd_writes_csv_summary_and_plot(tmp_path: Path) -> None:
    out = tmp_path / "rd"
    assert rd.main(["--data", str(SAMPLES), "--out", str(out), "--limit", "1", *FAST]) == 0
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
    lossless = {r["rate_point"]: r for r in rows if rd.family(r["rate_point"]) == "lossless"}
    assert set(lossless) == {"lossless-q30", "lossless-q50", "lossless-q75", "lossless-q90"}
    assert all(float(r["ratio_to_jpeg"]) > 0 for r in lossless.values())
    # Coder 2 codes the very same coefficients as coder 1, in fewer bytes over each curve.
    by_point = {r["rate_point"]: r for r in rows}
    for curve in rd.CODER2_CURVES:
        pairs = [
            (r, by_point[r["rate_point"].replace(f"{curve}+coder2-", f"{curve}-")])
            for r in rows
            if rd.family(r["rate_point"]) == f"{curve}+coder2"
        ]
        assert pairs
        for two, one in pairs:
            assert (two["coder"], one["coder"]) == ("2", "1")
            assert two["psnr_classical"] == one["psnr_classical"]
            assert two["quality"] == one["quality"]
        assert sum(int(t["payload_bytes"]) for t, _ in pairs) < sum(
            int(o["payload_bytes"]) for _, o in pairs
        )
    summary = (out / "rd.md").read_text()
    assert "lossless q75 payload / Pillow JPEG q75" in summary
    assert "lossless q90 payload with coder 2 / Pillow JPEG q90" in summary
    assert "auto q75 payload, coder 2 / coder 1 (same coefficients)" in summary
    assert "lowpass q90 (15, 6) payload / JPEG of the same truncated coefficients" in summary
    _check_codecs_and_bd_rates(out)


def _bd_table(
    summary: str, title: str = "## BD-rate against libjpeg-turbo"
) -> dict[str, list[str]]:
    """The cells of the BD-rate table under ``title``, by curve name."""
    block = summary.partition(title)[2]
    block = block.partition("\n## ")[0]
    lines = [line for line in block.splitlines() if line.startswith("| ")][1:]
    return {
        cells[0]: cells[1:]
        for cells in ([c.strip() for c in line.strip("|").split("|")] for line in lines)
    }


def _check_codecs_and_bd_rates(out: Path) -> None:
    """codecs.csv has every codec at both qualities; rd.md a BD-rate row for every curve."""
    with open(out / "codecs.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["codec"], r["quality"]) for r in rows] == [
        (c.name, q) for c in CODECS for q in ("30", "75")
    ]
    by_key = {(r["codec"], r["quality"]): r for r in rows}
    for quality in ("30", "75"):
        # Lepton is lossless on the baseline JPEG: same pixels, fewer bytes.
        lepton, jpeg = by_key[("lepton", quality)], by_key[(BASELINE, quality)]
        assert lepton["psnr"] == jpeg["psnr"]
        assert int(lepton["bytes"]) < int(jpeg["bytes"])
    table = _bd_table((out / "rd.md").read_text())
    for codec in CODECS:
        assert codec.label in table
        assert table[codec.label][-1] == "-"  # encode CPU: not timed with --repeats 0
    assert table[CODECS[0].label][0] == "+0.0%"
    for curve in {rd.family(p.name) for p in rd.RATE_POINTS} - {"paper"}:
        for stage in rd.STAGES:
            assert f"DCTLink {curve} ({stage})" in table
    assert not any("paper" in curve for curve in table)  # gray: no colour anchor
    # The network stage against the classical one, on the same payloads, per curve.
    stages = _bd_table((out / "rd.md").read_text(), "## Later stages against classical recovery")
    assert "DCTLink auto: enhanced against classical" in stages
    assert "DCTLink auto: classical against classical" not in stages


def test_rd_scores_the_committed_model_and_a_baseline_network(tmp_path: Path) -> None:
    # The committed model scored a second time as a "baseline": its columns must match the
    # enhanced stage exactly, and the stage table is left as it was.
    model = Path(__file__).resolve().parents[2] / "models" / "dctlink-residual-v3.onnx"
    out = tmp_path / "rd"
    argv = [
        "--data",
        str(SAMPLES),
        "--out",
        str(out),
        "--limit",
        "1",
        "--points",
        "lowpass-q90-15-6,lossless-q75,paper,adaptive-50pct",
        "--codecs",
        BASELINE,
        *FAST,
        "--baseline",
        f"twin={model}",
    ]
    assert rd.main(argv) == 0
    assert "twin" not in rd.STAGES
    with open(out / "rd.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        assert row["psnr_enhanced"]
        # Where the model's gate keeps the network off (recovery.gate), the receiver's enhanced
        # stage is the classical image; the ungated twin still runs the network there.
        gated_off = row["psnr_enhanced"] == row["psnr_classical"]
        assert gated_off or row["psnr_twin"] == row["psnr_enhanced"]
    assert any(r["psnr_twin"] == r["psnr_enhanced"] != r["psnr_classical"] for r in rows)
    assert "PSNR twin" in (out / "rd.md").read_text()
    with pytest.raises(SystemExit):
        rd.main([*argv[:-1], "twin=" + str(tmp_path / "absent.onnx")])


def test_encode_cpu_is_a_multiple_of_the_baseline_jpeg() -> None:
    plan = rd.Plan(
        points=(rd.RATE_POINTS[1],), codecs=(BY_NAME[BASELINE], BY_NAME["lepton"]), repeats=2
    )
    ratios = rd.encode_cpu(sorted(SAMPLES.glob("*.png"))[0], plan)
    assert set(ratios) == {BASELINE, "lepton", rd.RATE_POINTS[1].name}
    assert ratios[BASELINE] == 1.0
    assert ratios["lepton"] > 1.0  # the baseline JPEG and then Lepton on top
    assert ratios[rd.RATE_POINTS[1].name] > 0


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
    assert "lossless q90 coder 2" in printed  # coder 2's rows beside coder 1's
    assert "max RSS" in printed


def test_rate_points_are_unique_and_grouped_into_curves() -> None:
    names = [p.name for p in rd.RATE_POINTS]
    assert len(set(names)) == len(names)
    assert set(rd.QUICK_POINTS) <= set(names)
    assert rd.family("lowpass-q90-15-6") == "lowpass"
    auto = [n for n in names if rd.family(n) == "auto"]
    # The auto points appear exactly when shared.codec has Profile.auto.
    expected = [f"auto-q{q}" for q in rd.AUTO_QUALITIES] if hasattr(Profile, "auto") else []
    assert auto == expected
    # Every auto and lossless point also runs with coder 2, under its own curve.
    coder2 = [p for p in rd.RATE_POINTS if p.coder == 2]
    assert [p.name for p in coder2] == [
        rd.with_coder2(p).name for p in rd.RATE_POINTS if rd.family(p.name) in rd.CODER2_CURVES
    ]
    assert "auto+coder2-q75" in names
    assert "lossless+coder2-q90" in rd.QUICK_POINTS


def test_rd_rejects_unknown_codecs_and_points(tmp_path: Path) -> None:
    base = ["--data", str(SAMPLES), "--out", str(tmp_path), "--limit", "1"]
    with pytest.raises(SystemExit):
        rd.main([*base, "--codecs", "gif"])
    with pytest.raises(SystemExit):
        rd.main([*base, "--points", "nothing"])
    with pytest.raises(SystemExit):
        rd.main([*base, "--qualities", "0,300"])


def test_promise_reports_each_quality(capsys: pytest.CaptureFixture[str]) -> None:
    assert promise.main(["--data", str(SAMPLES), "--limit", "2", "--qualities", "50,90"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("| 50 ", "| 90 "))]
    assert len(rows) == 2
    for row in rows:
        met = row.split("|")[2].strip()
        assert met.endswith("%)")
        assert met.split("/")[1].startswith("2 ")


def test_recovery_times_every_stage_with_blas_held_as_the_service_holds_it(
    capsys: pytest.CaptureFixture[str], blas_threads_in_recovery: dict[str, set[int]]
) -> None:
    assert recovery.main(["--data", str(SAMPLES), "--limit", "1", "--threads", "1"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 1 |")]
    assert [row.split("|")[2].strip() for row in rows] == list(recovery.PROFILES)
    assert "nan" not in rows[0]  # auto q75: the network ran, and was timed
    # BLAS held to one thread while recovery ran, as cloud_receiver/ingest/service.py does.
    assert blas_threads_in_recovery
    assert all(threads == {1} for threads in blas_threads_in_recovery.values()), (
        blas_threads_in_recovery
    )
