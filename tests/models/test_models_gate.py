"""models.gate: the quality bands, the decisions, and a sidecar the receiver then obeys."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from PIL import Image

from cloud_receiver.recovery import DEFAULT_MODEL_PATH, Recovery
from cloud_receiver.recovery.gate import load_gate
from models.gate import Row, auto_bands, decide, main, rate_points
from shared.codec import Profile, ProfileKind, decode, encode

SAMPLES = Path(__file__).resolve().parents[2] / "samples"


def test_each_measured_quality_covers_the_qualities_nearest_it() -> None:
    assert auto_bands([90, 30, 50]) == [(30, 1, 40), (50, 41, 70), (90, 71, 100)]
    assert auto_bands([75]) == [(75, 1, 100)]


def _rows(point: str, gains: list[float]) -> list[Row]:
    return [
        Row(point, f"{i}.png", 1.0, 30.0, 30.0 + g, 0.9, 0.9 + g / 100) for i, g in enumerate(gains)
    ]


def test_the_network_is_off_where_the_mean_gain_is_not_positive() -> None:
    points = [p for p in rate_points([30, 90]) if p.kind in (ProfileKind.AUTO, ProfileKind.LOWPASS)]
    rows = [
        *_rows("auto-q30", [-0.3, 0.1]),  # mean -0.1: off
        *_rows("auto-q90", [0.3, -0.1]),  # mean +0.1: on
        # lowpass is one rule over all its points: mean of (+0.2, +0.2, -0.1, -0.1) = +0.05.
        *_rows("lowpass-q90-28-10", [0.2]),
        *_rows("lowpass-q90-15-6", [0.2]),
        *_rows("lowpass-q90-6-1", [-0.1]),
        *_rows("lowpass-q60-6-2", [-0.1]),
    ]
    gate = decide(rows, points, model_version="m", min_gain=0.0, validation="test")
    rules = {(r.profile, r.quality_min): r for r in gate.rules}
    assert set(rules) == {("auto", 1), ("auto", 61), ("lowpass", None)}
    assert not rules["auto", 1].apply
    assert rules["auto", 1].psnr_gain_db == pytest.approx(-0.1)
    assert rules["auto", 1].quality_max == 60
    assert rules["auto", 61].apply
    assert rules["lowpass", None].apply
    assert rules["lowpass", None].psnr_gain_db == pytest.approx(0.05)
    stricter = decide(rows, points, model_version="m", min_gain=0.06, validation="test")
    assert not any(r.apply for r in stricter.rules if r.profile == "lowpass")


def _training_folder(tmp_path: Path, side: int) -> Path:
    """Two sample images cropped to ``side`` pixels, as a tiny training-photograph folder."""
    data = tmp_path / "train"
    data.mkdir()
    for path in sorted(SAMPLES.glob("*.png"))[:2]:
        with Image.open(path) as image:
            image.crop((0, 0, side, side)).save(data / path.name)
    return data


def test_a_run_writes_a_sidecar_the_receiver_obeys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _training_folder(tmp_path, 96)
    model = tmp_path / "dctlink-residual-v3.onnx"
    model.write_bytes(DEFAULT_MODEL_PATH.read_bytes())
    argv = ["--model", str(model), "--data", str(data), "--holdout", "1", "--size", "64"]
    assert main([*argv, "--auto-qualities", "40,80"]) == 0
    printed = capsys.readouterr().out
    assert "| auto-q40 |" in printed
    assert "| paper-q50-gray-a8 |" in printed
    gate = load_gate(model.with_suffix(".gate.json"), "dctlink-residual-v3")
    assert gate is not None
    assert gate.validation.startswith("1 held-out training photographs")
    assert {r.profile for r in gate.rules} == {k.name.lower() for k in ProfileKind}
    # Whatever the measurement decided, the receiver serves exactly that.
    recovery = Recovery(model_path=model, threads=1)
    pixels = np.asarray(Image.open(sorted(data.glob("*.png"))[-1]).convert("RGB"))
    for profile in (Profile.auto(40), Profile.auto(80), Profile.lowpass(90, 15, 6)):
        decoded = decode(encode(pixels, profile))
        rule = gate.rule_for(decoded)
        assert rule is not None
        stages = recovery.run(decoded)
        assert (stages.enhanced_note is None) is rule.apply


def test_kinds_the_network_was_not_trained_on_stay_off_whatever_they_gain() -> None:
    points = [p for p in rate_points([30]) if p.kind in (ProfileKind.AUTO, ProfileKind.LOSSLESS)]
    rows = [
        *_rows("auto-q30", [0.4]),
        *(row for p in points if p.kind is ProfileKind.LOSSLESS for row in _rows(p.name, [0.5])),
    ]
    gate = decide(
        rows, points, model_version="m", min_gain=0.0, validation="test", trained_kinds={"auto"}
    )
    rules = {r.profile: r for r in gate.rules}
    assert rules["auto"].apply
    assert rules["auto"].trained
    assert not rules["lossless"].apply
    assert not rules["lossless"].trained
    assert rules["lossless"].psnr_gain_db == pytest.approx(0.5)  # measured, written, not used
    everything = decide(rows, points, model_version="m", min_gain=0.0, validation="test")
    assert all(r.apply and r.trained for r in everything.rules)


def test_the_gate_keeps_the_network_to_the_kinds_its_metadata_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _training_folder(tmp_path, 64)
    model = onnx.load(str(DEFAULT_MODEL_PATH))
    props = {p.key: p.value for p in model.metadata_props}
    onnx.helper.set_model_props(model, {**props, "trained_kinds": "adaptive,auto"})
    path = tmp_path / f"{props['version']}.onnx"
    onnx.save(model, str(path))
    argv = ["--model", str(path), "--data", str(data), "--holdout", "1", "--size", "64"]
    assert main([*argv, "--auto-qualities", "50"]) == 0
    assert "off (not trained on)" in capsys.readouterr().out
    gate = load_gate(path.with_suffix(".gate.json"), props["version"])
    assert gate is not None
    untrained = {r.profile for r in gate.rules if not r.trained}
    assert untrained == {"lowpass", "lossless", "paper"}
    assert not any(r.apply for r in gate.rules if not r.trained)
    recovery = Recovery(model_path=path, threads=1)
    pixels = np.asarray(Image.open(sorted(data.glob("*.png"))[-1]).convert("RGB"))
    stages = recovery.run(decode(encode(pixels, Profile.lossless(75))))
    assert stages.enhanced_note is not None
    assert "not trained on lossless payloads" in stages.enhanced_note
    with pytest.raises(SystemExit):
        main([*argv, "--trained-kinds", "auto,jpeg"])
