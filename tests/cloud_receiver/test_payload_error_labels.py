"""Rejections are counted and quarantined by the error's kind, never by words in its text."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from receiver_kit import payload_for, receiver_settings, unique

from cloud_receiver.api import create_app
from cloud_receiver.ingest import pipeline
from cloud_receiver.ingest.messages import reason_class
from shared.codec import PayloadError, PayloadErrorKind

# Each word the old text matching looked for, so any reading of the text gets a wrong label.
MISLEADING = "bad magic, version, checksum, exceeds, ends inside, too short, runs past"


@pytest.mark.parametrize("kind", list(PayloadErrorKind))
def test_the_label_is_the_kind_whatever_the_text_says(kind: PayloadErrorKind) -> None:
    assert reason_class(PayloadError(kind, MISLEADING)) == kind.value


def test_labels_are_the_metric_values_dashboards_select_on() -> None:
    assert {kind.value for kind in PayloadErrorKind} == {
        "not_dctlink",
        "version",
        "checksum",
        "limit",
        "truncated",
        "invalid",
    }


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(receiver_settings(None, tmp_path))) as client:
        yield client


def test_posted_rejection_is_counted_and_quarantined_by_kind(
    client: TestClient, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def corrupt(*_: object, **__: object) -> None:
        raise PayloadError(PayloadErrorKind.INVALID, f"checksum? {MISLEADING}", 40)

    monkeypatch.setattr(pipeline, "decode", corrupt)
    response = client.post("/api/v1/payloads", content=payload_for(unique("cam")))
    assert response.status_code == 422
    (sidecar,) = (tmp_path / "quarantine").glob("*.json")
    assert json.loads(sidecar.read_text())["reason_class"] == "invalid"
    metrics = client.get("/metrics").text
    assert 'dctlink_malformed_payloads_total{reason="invalid"} 1.0' in metrics
    assert 'dctlink_malformed_payloads_total{reason="checksum"}' not in metrics
