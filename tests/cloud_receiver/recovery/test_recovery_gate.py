"""The network gate: the sidecar is read at load and decides, per payload, whether the network runs.

Payloads come from the bundled samples (small crops); the model is the test box blur, which
changes every non-flat image, so "the network ran" is visible as enhanced != classical.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from test_recovery_network import write_model

from cloud_receiver.api import create_app
from cloud_receiver.config import ReceiverSettings
from cloud_receiver.ingest.pipeline import build_record
from cloud_receiver.recovery import Recovery
from cloud_receiver.recovery.gate import FORMAT, Gate, GateRule, load_gate, sidecar_path
from cloud_receiver.recovery.network import ModelUnavailableError
from cloud_receiver.store import LocalStore
from shared.codec import Profile, decode, encode

SAMPLES = Path(__file__).resolve().parents[3] / "samples"
VERSION = "test-blur-gate"


def sample(size: tuple[int, int] = (96, 64)) -> npt.NDArray[np.uint8]:
    with Image.open(sorted(SAMPLES.glob("*.png"))[0]) as image:
        return np.asarray(image.convert("RGB").crop((0, 0, *size)))


def gate_file(model: Path, rules: list[dict[str, object]], version: str = VERSION) -> Path:
    body = {
        "format": FORMAT,
        "model_version": version,
        "min_gain_db": 0.0,
        "validation": "test",
        "command": "python -m models.gate",
        "rules": rules,
    }
    path = sidecar_path(model)
    path.write_text(json.dumps(body))
    return path


#: Lowpass off, auto off up to quality 50 and on above, adaptive explicitly on.
RULES: list[dict[str, object]] = [
    {"profile": "auto", "apply": False, "psnr_gain_db": -0.12, "ssim_gain": -0.0004,
     "quality_min": 1, "quality_max": 50, "measured_at": "auto-q30"},
    {"profile": "auto", "apply": True, "psnr_gain_db": 0.05, "quality_min": 51,
     "quality_max": 100, "measured_at": "auto-q75"},
    {"profile": "lowpass", "apply": False, "psnr_gain_db": -0.03, "measured_at": "lowpass-q90"},
    {"profile": "adaptive", "apply": True, "psnr_gain_db": 0.08},
]  # fmt: skip


@pytest.fixture
def gated(tmp_path: Path) -> Recovery:
    model = write_model(tmp_path / "m.onnx", 3, version=VERSION)
    gate_file(model, RULES)
    return Recovery(model_path=model, threads=1)


def test_the_sidecar_sits_next_to_the_model() -> None:
    assert sidecar_path(Path("models/dctlink-residual-v3.onnx")) == Path(
        "models/dctlink-residual-v3.gate.json"
    )


def test_a_payload_kind_marked_off_gets_classical_as_enhanced_and_a_note(gated: Recovery) -> None:
    stages = gated.run(decode(encode(sample(), Profile.lowpass(90, 15, 6))))
    assert stages.enhanced is not None
    np.testing.assert_array_equal(stages.enhanced, stages.classical)
    assert stages.enhanced_note == (
        "network skipped: it lowers PSNR on lowpass payloads"
        " (-0.030 dB on the validation photographs at lowpass-q90)"
    )
    # The model is loaded and stays named; nothing ran, so nothing is timed for it.
    assert stages.model_version == VERSION
    assert stages.enhanced_unavailable_reason is None
    assert "enhanced" not in stages.timings_s


@pytest.mark.parametrize(("quality", "runs"), [(30, False), (50, False), (51, True), (90, True)])
def test_auto_payloads_are_gated_by_their_promised_quality(
    gated: Recovery, quality: int, runs: bool
) -> None:
    stages = gated.run(decode(encode(sample(), Profile.auto(quality))))
    assert stages.enhanced is not None
    assert (stages.enhanced_note is None) is runs
    assert (not np.array_equal(stages.enhanced, stages.classical)) is runs
    assert ("enhanced" in stages.timings_s) is runs
    if not runs:
        assert stages.enhanced_note is not None
        assert "auto payloads of quality 1-50 (-0.120 dB" in stages.enhanced_note


@pytest.mark.parametrize(
    "profile",
    [Profile.adaptive(4000), Profile.lossless(75)],
    ids=["marked-on", "not-listed"],
)
def test_kinds_marked_on_or_not_listed_run_the_network(gated: Recovery, profile: Profile) -> None:
    stages = gated.run(decode(encode(sample(), profile)))
    assert stages.enhanced is not None
    assert stages.enhanced_note is None
    assert not np.array_equal(stages.enhanced, stages.classical)


def test_without_a_sidecar_the_network_runs_everywhere(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", 3, version=VERSION)
    recovery = Recovery(model_path=model, threads=1)
    assert recovery.network_detail == f"model {VERSION} loaded"
    for profile in (Profile.lowpass(90, 15, 6), Profile.auto(30), Profile.paper(50, 8)):
        stages = recovery.run(decode(encode(sample(), profile)))
        assert stages.enhanced is not None
        assert stages.enhanced_note is None
        assert not np.array_equal(stages.enhanced, stages.classical)


def test_the_readiness_detail_names_where_the_network_is_off(gated: Recovery) -> None:
    assert gated.network_detail == (
        f"model {VERSION} loaded; gated off for auto payloads of quality 1-50, lowpass payloads"
    )


def test_a_gate_for_another_model_or_a_broken_one_makes_the_network_unavailable(
    tmp_path: Path,
) -> None:
    model = write_model(tmp_path / "m.onnx", 3, version=VERSION)
    gate_file(model, RULES, version="someone-else")
    recovery = Recovery(model_path=model, threads=1)
    assert not recovery.network_available
    assert "measured for model 'someone-else'" in recovery.network_detail
    stages = recovery.run(decode(encode(sample(), Profile.auto(75))))
    assert stages.enhanced is None
    assert stages.enhanced_unavailable_reason == recovery.network_detail
    for broken in ("{", '{"format": "other"}', json.dumps({"format": FORMAT, "rules": []})):
        sidecar_path(model).write_text(broken)
        with pytest.raises(ModelUnavailableError, match="cannot read the network gate"):
            load_gate(sidecar_path(model), VERSION)
    bad_rule = {"profile": "lowpass", "apply": "false", "psnr_gain_db": -1}
    gate_file(model, [bad_rule])
    with pytest.raises(ModelUnavailableError, match="apply must be true or false"):
        load_gate(sidecar_path(model), VERSION)


def test_rules_match_kind_and_quality_first_match_wins() -> None:
    gate = Gate(
        VERSION,
        (
            GateRule("lowpass", False, -0.2, quality_min=80, quality_max=100),
            GateRule("lowpass", True, 0.1),
        ),
    )
    assert Gate.from_json(gate.to_json()) == gate
    at = {q: decode(encode(sample(), Profile.lowpass(q, 15, 6))) for q in (79, 80)}
    assert gate.skip_note(at[80]) is not None
    assert gate.skip_note(at[79]) is None
    # Custom tables carry no quality: a ranged rule cannot claim them.
    table = tuple([4] * 64)
    custom = decode(encode(sample(), Profile.lowpass(90, 15, 6, tables=(table, table))))
    assert custom.quality is None
    assert gate.rule_for(custom) == gate.rules[1]
    # A gain that is not negative but under the threshold is said as such.
    under = Gate(VERSION, (GateRule("lowpass", False, 0.001),), min_gain_db=0.01)
    assert under.skip_note(at[79]) == (
        "network skipped: it gains only +0.001 dB on lowpass payloads (on the validation"
        " photographs), not above the gate's +0.010 dB"
    )
    tiny = Gate(VERSION, (GateRule("lowpass", False, -0.00002),))
    assert "(-0.00002 dB" in (tiny.skip_note(at[79]) or "")


def test_the_note_reaches_the_stored_record_and_the_api(tmp_path: Path, gated: Recovery) -> None:
    settings = ReceiverSettings.model_validate(
        {"broker": {"enabled": False}, "store": {"data_dir": tmp_path / "data"}}
    )
    with TestClient(create_app(settings, recovery=gated)) as client:
        ids = {}
        for name, profile in (("off", Profile.auto(30)), ("on", Profile.auto(75))):
            payload = encode(sample(), profile, device_id=f"cam-{name}")
            response = client.post(
                "/api/v1/payloads",
                content=payload,
                headers={"Content-Type": "application/octet-stream"},
            )
            assert response.status_code == 201, response.text
            ids[name] = response.json()["id"]
        off = client.get(f"/api/v1/images/{ids['off']}").json()
        on = client.get(f"/api/v1/images/{ids['on']}").json()
        served = client.get(f"/api/v1/images/{ids['off']}/content?stage=enhanced").content
        classical = client.get(f"/api/v1/images/{ids['off']}/content?stage=classical").content
    assert off["stages"]["enhanced"]["available"] is True
    assert off["model_version"] == VERSION
    assert off["enhanced_note"].startswith("network skipped: it lowers PSNR on auto payloads")
    assert served == classical
    assert on["enhanced_note"] is None
    assert on["model_version"] == VERSION


def test_build_record_carries_the_note(gated: Recovery) -> None:
    decoded = decode(encode(sample(), Profile.lowpass(90, 15, 6)))
    stages = gated.run(decoded)
    record, pngs = build_record(
        decoded, stages, received_at=datetime.now(UTC), timings_s=stages.timings_s
    )
    assert record.enhanced_note == stages.enhanced_note is not None
    assert pngs["enhanced"] == pngs["classical"]


def test_an_index_from_before_the_note_column_gains_it(tmp_path: Path, gated: Recovery) -> None:
    # The images table as the receiver created it before enhanced_note existed.
    tmp_path.mkdir(exist_ok=True)
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    db.execute(
        "CREATE TABLE images (id TEXT PRIMARY KEY, device_id TEXT NOT NULL,"
        " captured_us INTEGER NOT NULL, received_us INTEGER NOT NULL, width INTEGER NOT NULL,"
        " height INTEGER NOT NULL, profile TEXT NOT NULL, quality INTEGER,"
        " layout TEXT NOT NULL, payload_bytes INTEGER NOT NULL, jpeg_bytes INTEGER,"
        " stages TEXT NOT NULL, timings TEXT NOT NULL, model_version TEXT)"
    )
    db.commit()
    db.close()
    store = LocalStore(tmp_path)
    try:
        decoded = decode(encode(sample(), Profile.lowpass(90, 15, 6)))
        stages = gated.run(decoded)
        record, pngs = build_record(
            decoded, stages, received_at=datetime.now(UTC), timings_s=stages.timings_s
        )
        assert store.put(record, b"payload", pngs)
        stored = store.get(record.id)
    finally:
        store.close()
    assert stored is not None
    assert stored.enhanced_note == stages.enhanced_note is not None


def test_a_kind_the_network_was_not_trained_on_is_off_with_its_own_note(tmp_path: Path) -> None:
    model = write_model(tmp_path / "m.onnx", 3, version=VERSION)
    untrained = {"profile": "lossless", "apply": False, "psnr_gain_db": 0.45, "trained": False,
                 "measured_at": "lossless-q75"}  # fmt: skip
    gate_file(model, [untrained])
    recovery = Recovery(model_path=model, threads=1)
    stages = recovery.run(decode(encode(sample(), Profile.lossless(75))))
    assert stages.enhanced is not None
    np.testing.assert_array_equal(stages.enhanced, stages.classical)
    assert stages.enhanced_note == (
        "network skipped: it was not trained on lossless payloads (it measured +0.450 dB on the"
        " validation photographs at lossless-q75, which is not trusted for such kinds)"
    )
    # A sidecar claiming to apply the network to a kind it never saw is refused.
    gate_file(model, [{**untrained, "apply": True}])
    with pytest.raises(ModelUnavailableError, match="not trained on"):
        load_gate(sidecar_path(model), VERSION)
    # Sidecars written before the flag existed mean "trained".
    assert GateRule("auto", True, 0.1).trained
