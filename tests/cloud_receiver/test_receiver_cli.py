"""`cloud-receiver` commands, called through main(argv) as the console script does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from receiver_kit import payload_for, receiver_settings, unique
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # untyped

from cloud_receiver.api import create_app
from cloud_receiver.cli import ExitCode, main
from cloud_receiver.config import ReceiverSettings


def test_help_documents_every_option_and_its_env_var(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for section, model in ReceiverSettings.model_fields.items():
        annotation = model.annotation
        names = (
            [f"{section}__{n}" for n in annotation.model_fields]  # type: ignore[union-attr]
            if hasattr(annotation, "model_fields")
            else [section]
        )
        for name in names:
            assert f"DCTLINK_RECEIVER__{name.upper()}" in text


def test_decode_writes_every_stage(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    blas_threads_in_recovery: dict[str, set[int]],
) -> None:
    payload = tmp_path / "p.dctl"
    payload.write_bytes(payload_for("cam-1"))
    out = tmp_path / "out"
    assert main(["decode", str(payload), "--out", str(out), "--recovery-iterations", "4"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["device_id"] == "cam-1"
    # The committed network is installed, so a fresh clone writes all three stages.
    assert summary["stages"] == ["classical", "enhanced", "received"]
    for stage in summary["stages"]:
        with Image.open(out / f"{stage}.png") as image:
            assert image.size == (96, 64)
    assert blas_threads_in_recovery
    assert all(threads == {1} for threads in blas_threads_in_recovery.values()), (
        blas_threads_in_recovery
    )


def test_decode_reports_a_malformed_payload(tmp_path: Path) -> None:
    payload = tmp_path / "bad"
    payload.write_bytes(b"garbage")
    assert main(["decode", str(payload), "--out", str(tmp_path / "o")]) == ExitCode.MALFORMED


def test_decode_of_a_missing_file_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to log a traceback inside a JSON line and exit 1, as for a bug."""
    missing = tmp_path / "missing.dctl"
    assert main(["decode", str(missing), "--out", str(tmp_path / "o")]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert err == f"cloud-receiver: cannot read {missing}: No such file or directory\n"


def test_bad_settings_exit_with_usage(tmp_path: Path) -> None:
    assert main(["decode", str(tmp_path), "--out", str(tmp_path), "--broker", "http://x"]) == 2


def test_reprocess_reruns_recovery_over_the_store(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    blas_threads_in_recovery: dict[str, set[int]],
) -> None:
    settings = receiver_settings(None, tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        for index in range(3):
            response = client.post("/api/v1/payloads", content=payload_for(unique("cam"), index))
            assert response.status_code == 201
        before = client.get("/api/v1/images").json()["items"]
    flags = ["--data-dir", str(tmp_path / "data"), "--recovery-iterations", "2"]
    # Two BLAS threads around the command (the app above may have left one), so that only
    # the command's own limit can make recovery see one.
    with threadpool_limits(2, user_api="blas"):
        assert main(["reprocess", *flags]) == 0
    assert blas_threads_in_recovery
    assert all(threads == {1} for threads in blas_threads_in_recovery.values()), (
        blas_threads_in_recovery
    )
    assert json.loads(capsys.readouterr().out) == {"reprocessed": 3, "failed": 0}
    with TestClient(create_app(settings)) as client:
        after = client.get("/api/v1/images").json()["items"]
    assert [i["id"] for i in after] == [i["id"] for i in before]
    assert [i["received_at"] for i in after] == [i["received_at"] for i in before]
