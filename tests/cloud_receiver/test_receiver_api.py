"""The REST API, in process: TestClient runs the lifespan against a real mosquitto and SQLite."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from PIL.JpegImagePlugin import JpegImageFile
from receiver_kit import payload_for, receiver_settings, unique

from cloud_receiver.api import create_app
from cloud_receiver.imaging import equivalent_jpeg_bytes
from harness import Mosquitto, wait_until
from shared.codec import Profile, decode

API = "/api/v1"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def client(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(receiver_settings(mosquitto, tmp_path))) as client:
        yield client


@pytest.fixture
def client_without_model(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[TestClient]:
    settings = receiver_settings(
        mosquitto, tmp_path, recovery={"iterations": 8, "model_path": tmp_path / "absent.onnx"}
    )
    with TestClient(create_app(settings)) as client:
        yield client


def _post(client: TestClient, payload: bytes, key: str | None = None) -> dict[str, object]:
    headers = {"Content-Type": "application/octet-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    response = client.post(f"{API}/payloads", content=payload, headers=headers)
    assert response.status_code in (200, 201), response.text
    body: dict[str, object] = response.json()
    return body


def test_posted_payload_is_recovered_stored_and_described(client: TestClient) -> None:
    device = unique("cam")
    payload = payload_for(device, captured_at=START)
    stored = _post(client, payload)
    assert stored["outcome"] == "stored"

    meta = client.get(f"{API}/images/{stored['id']}").json()
    assert meta["device_id"] == device
    assert (meta["width"], meta["height"]) == (96, 64)
    assert meta["profile"] == "lowpass"
    assert meta["quality"] == 90
    assert meta["layout"] == "ycbcr420"
    assert meta["payload_bytes"] == len(payload)
    assert meta["jpeg_bytes"] > 0
    assert meta["jpeg_bytes_basis"] == "same_quality_setting"
    assert datetime.fromisoformat(meta["captured_at"]) == START
    assert meta["stages"]["received"]["available"] is True
    assert meta["stages"]["classical"]["url"].endswith("stage=classical")
    # The committed network was never trained on lowpass payloads: its gate keeps it off them,
    # so enhanced is the classical image and the metadata says why.
    assert meta["stages"]["enhanced"]["available"] is True
    assert meta["stages"]["enhanced"]["url"].endswith("stage=enhanced")
    assert "enhanced" not in meta["timings_ms"]
    assert "not trained on lowpass payloads" in meta["enhanced_note"]
    assert meta["model_version"] == "dctlink-residual-v3"  # the model loaded, ran or not


def test_an_auto_payload_is_compared_with_the_senders_jpeg_of_equal_quality(
    client: TestClient,
) -> None:
    device = unique("cam")
    payload = payload_for(device, profile=Profile.auto(75))
    reference = decode(payload).reference_jpeg_bytes
    assert reference is not None
    meta = client.get(f"{API}/images/{_post(client, payload)['id']}").json()
    assert (meta["profile"], meta["quality"]) == ("auto", 75)
    # The sender's measurement, as it travelled: the receiver estimates nothing for auto.
    assert (meta["jpeg_bytes"], meta["jpeg_bytes_basis"]) == (reference, "equal_quality")
    metrics = client.get("/metrics").text
    assert f'dctlink_equivalent_jpeg_bytes_total{{basis="equal_quality"}} {reference:.1f}' in (
        metrics
    )
    assert (
        f'dctlink_payload_bytes_received_total{{basis="equal_quality"}} {len(payload):.1f}'
        in metrics
    )
    # The same bytes per device (Grafana's per-device savings), and the quality it promised.
    labels = f'basis="equal_quality",device="{device}"'
    assert f"dctlink_device_payload_bytes_total{{{labels}}} {len(payload):.1f}" in metrics
    assert f"dctlink_device_jpeg_bytes_total{{{labels}}} {reference:.1f}" in metrics
    assert f'dctlink_device_promised_quality{{device="{device}"}} 75.0' in metrics


def test_other_payloads_say_their_jpeg_only_matches_a_setting(
    client_without_model: TestClient,
) -> None:
    client = client_without_model
    lowpass = client.get(f"{API}/images/{_post(client, payload_for(unique('cam')))['id']}").json()
    adaptive_payload = payload_for(unique("cam"), profile=Profile.adaptive(2000))
    adaptive = client.get(f"{API}/images/{_post(client, adaptive_payload)['id']}").json()
    assert lowpass["jpeg_bytes_basis"] == "same_quality_setting"
    # adaptive's own tables promise no quality: the estimate assumes 90, and says so.
    assert (adaptive["quality"], adaptive["jpeg_bytes_basis"]) == (None, "assumed_quality_90")
    # ...but the API says what its tables amount to, instead of a bare null.
    assert adaptive["tables_quality"] == decode(adaptive_payload).tables_quality
    assert lowpass["tables_quality"] is None  # its quality says it already
    classical = client.get(
        f"{API}/images/{adaptive['id']}/content", params={"stage": "classical"}
    ).content
    pixels = np.asarray(Image.open(io.BytesIO(classical)))
    assert adaptive["jpeg_bytes"] == equivalent_jpeg_bytes(pixels, 90)
    metrics = client.get("/metrics").text
    assert 'dctlink_equivalent_jpeg_bytes_total{basis="assumed_quality_90"}' in metrics
    assert 'dctlink_equivalent_jpeg_bytes_total{basis="equal_quality"}' not in metrics


def test_a_jpeg_inputs_own_tables_are_named_by_the_nearest_quality(
    client_without_model: TestClient,
) -> None:
    """A camera JPEG keeps its own tables; "quality": null alone told a user nothing."""
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), (90, 120, 150)).save(buffer, "JPEG", quality=62)
    with Image.open(buffer) as jpeg:
        assert isinstance(jpeg, JpegImageFile)
        tables = (tuple(jpeg.quantization[0]), tuple(jpeg.quantization[1]))
    payload = payload_for(unique("cam"), profile=Profile.lowpass(75, 15, 6, tables=tables))
    stored = client_without_model.get(
        f"{API}/images/{_post(client_without_model, payload)['id']}"
    ).json()
    assert (stored["quality"], stored["tables_quality"]) == (None, 62)


def test_without_a_model_the_enhanced_stage_says_why(client_without_model: TestClient) -> None:
    client = client_without_model
    stored = _post(client, payload_for(unique("cam")))
    meta = client.get(f"{API}/images/{stored['id']}").json()
    assert meta["stages"]["enhanced"] == {
        "available": False,
        "reason": meta["stages"]["enhanced"]["reason"],
    }
    assert "absent.onnx" in meta["stages"]["enhanced"]["reason"]
    assert meta["model_version"] is None
    enhanced = client.get(f"{API}/images/{stored['id']}/content", params={"stage": "enhanced"})
    assert enhanced.status_code == 404
    assert enhanced.json()["code"] == "stage_unavailable"
    # No model installed: reported, but the service is still ready.
    assert wait_until(lambda: client.get("/readyz").status_code == 200)
    assert client.get("/readyz").json()["checks"]["model"]["loaded"] is False


def test_duplicate_is_acknowledged_and_counted_not_stored_twice(client: TestClient) -> None:
    payload = payload_for(unique("cam"))
    first = _post(client, payload)
    again = client.post(f"{API}/payloads", content=payload)
    assert again.status_code == 200
    assert again.json() == {**first, "outcome": "duplicate"}
    assert len(client.get(f"{API}/images").json()["items"]) == 1
    assert "dctlink_duplicate_images_total 1.0" in client.get("/metrics").text


def test_malformed_payload_is_rejected_quarantined_and_counted(
    client: TestClient, tmp_path: Path
) -> None:
    payload = bytearray(payload_for(unique("cam")))
    payload[len(payload) // 2] ^= 0xFF
    response = client.post(f"{API}/payloads", content=bytes(payload))
    assert response.status_code == 422
    assert response.json()["code"] == "payload_rejected"
    assert "checksum" in response.json()["message"]
    sidecars = list((tmp_path / "quarantine").glob("*.json"))
    assert len(sidecars) == 1
    sidecar = json.loads(sidecars[0].read_text())
    assert sidecar["reason_class"] == "checksum"
    assert {"reason", "offset", "topic", "time"} <= set(sidecar)
    assert sidecars[0].with_suffix(".bin").read_bytes() == bytes(payload)
    assert 'dctlink_malformed_payloads_total{reason="checksum"} 1.0' in client.get("/metrics").text
    assert client.get("/readyz").status_code == 200


def test_list_is_newest_first_with_cursor_pages_and_filters(client: TestClient) -> None:
    cams = [unique("cam"), unique("cam")]
    ids = [
        _post(client, payload_for(cams[i % 2], i, captured_at=START + timedelta(minutes=i)))["id"]
        for i in range(5)
    ]
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, str | int] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = client.get(f"{API}/images", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ids[::-1]

    by_device = client.get(f"{API}/images", params={"device": cams[1]}).json()["items"]
    assert [i["id"] for i in by_device] == [ids[3], ids[1]]
    window = {
        "since": (START + timedelta(minutes=1)).isoformat(),
        "until": (START + timedelta(minutes=3)).isoformat(),
    }
    assert [i["id"] for i in client.get(f"{API}/images", params=window).json()["items"]] == [
        ids[2],
        ids[1],
    ]
    bad = client.get(f"{API}/images", params={"cursor": "not-a-cursor"})
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("query", "accept", "media", "pil_format"),
    [
        ({}, None, "image/png", "PNG"),
        ({"format": "jpeg"}, None, "image/jpeg", "JPEG"),
        ({"format": "webp"}, None, "image/webp", "WEBP"),
        ({}, "image/webp,image/*;q=0.8", "image/webp", "WEBP"),
        ({}, "image/jpeg", "image/jpeg", "JPEG"),
        ({"format": "png"}, "image/jpeg", "image/png", "PNG"),
    ],
)
def test_content_in_each_format_by_query_or_accept(
    client: TestClient,
    query: dict[str, str],
    accept: str | None,
    media: str,
    pil_format: str,
) -> None:
    image_id = _post(client, payload_for(unique("cam")))["id"]
    headers = {"Accept": accept} if accept else {}
    for stage in ("received", "classical", "enhanced"):
        response = client.get(
            f"{API}/images/{image_id}/content", params={"stage": stage, **query}, headers=headers
        )
        assert response.status_code == 200
        assert response.headers["content-type"] == media
        with Image.open(io.BytesIO(response.content)) as image:
            assert image.format == pil_format
            assert image.size == (96, 64)


def test_content_errors_are_json(client: TestClient) -> None:
    image_id = _post(client, payload_for(unique("cam")))["id"]
    url = f"{API}/images/{image_id}/content"
    unknown_stage = client.get(url, params={"stage": "sharpened"})
    assert unknown_stage.status_code == 422
    assert unknown_stage.json()["code"] == "invalid_request"
    assert client.get(url, headers={"Accept": "application/json"}).status_code == 406
    assert client.get(url, params={"format": "gif"}).json()["code"] == "invalid_request"
    missing = client.get(f"{API}/images/00000000-0000-0000-0000-000000000000")
    assert missing.status_code == 404
    assert missing.json() == {
        "code": "not_found",
        "message": "no image 00000000-0000-0000-0000-000000000000",
    }


def test_health_metrics_and_docs(client: TestClient) -> None:
    assert client.get("/livez").json() == {"status": "ok"}
    assert wait_until(lambda: client.get("/readyz").status_code == 200)
    ready = client.get("/readyz").json()
    assert ready["checks"]["broker"]["ok"] is True
    assert ready["checks"]["store"]["ok"] is True
    assert ready["checks"]["model"]["loaded"] is True
    text = client.get("/metrics").text
    for name in (
        "dctlink_images_received_total",
        "dctlink_payload_bytes_received_total",
        "dctlink_equivalent_jpeg_bytes_total",
        "dctlink_devices_online",
        "dctlink_stage_duration_seconds",
    ):
        assert name in text
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "cdn." not in docs.text  # the assets come from the package (routes/docs.py)
    assert client.get("/static/swagger-ui/swagger-ui-bundle.js").status_code == 200
    openapi = client.get("/openapi.json").json()
    paths = openapi["paths"]
    assert {f"{API}/images", f"{API}/payloads", f"{API}/devices", f"{API}/events"} <= set(paths)
    basis = openapi["components"]["schemas"]["ImageOut"]["properties"]["jpeg_bytes_basis"]
    assert basis["anyOf"][0]["enum"] == [
        "equal_quality",
        "same_quality_setting",
        "assumed_quality_90",
    ]
    assert "measured by the sender" in basis["description"]


def test_not_ready_while_the_broker_is_unreachable(tmp_path: Path) -> None:
    settings = receiver_settings(
        None, tmp_path, broker={"enabled": True, "url": "mqtt://127.0.0.1:9"}
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["broker"]["ok"] is False
        assert client.get("/livez").status_code == 200


def test_api_keys_read_and_admin_scopes(mosquitto: Mosquitto, tmp_path: Path) -> None:
    settings = receiver_settings(
        mosquitto, tmp_path, api={"read_keys": ["reader"], "admin_keys": ["boss"]}
    )
    payload = payload_for(unique("cam"))
    with TestClient(create_app(settings)) as client:
        anonymous = client.get(f"{API}/images")
        assert anonymous.status_code == 401
        assert anonymous.json()["code"] == "unauthorized"
        assert anonymous.headers["www-authenticate"] == "Bearer"
        wrong = {"Authorization": "Bearer nope"}
        assert client.get(f"{API}/images", headers=wrong).status_code == 401
        reader = {"Authorization": "Bearer reader"}
        assert client.get(f"{API}/images", headers=reader).status_code == 200
        assert client.get(f"{API}/devices", headers=reader).status_code == 200
        denied = client.post(f"{API}/payloads", content=payload, headers=reader)
        assert denied.status_code == 403
        assert denied.json()["code"] == "forbidden"
        image_id = _post(client, payload, key="boss")["id"]
        boss = {"Authorization": "Bearer boss"}
        assert client.get(f"{API}/images/{image_id}", headers=boss).status_code == 200
        content = client.get(f"{API}/images/{image_id}/content", headers=reader)
        assert content.status_code == 200
        # The raw payload is evidence for an admin, not something a viewer needs.
        raw = f"{API}/images/{image_id}/payload"
        assert client.get(raw, headers=reader).status_code == 403
        download = client.get(raw, headers=boss)
        assert download.status_code == 200
        assert download.content == payload
        assert download.headers["content-disposition"] == f'attachment; filename="{image_id}.dctl"'
        assert client.get(f"{API}/images/..%2E/payload", headers=boss).status_code == 404
        # Probes and scraping stay open.
        assert client.get("/livez").status_code == 200
        assert client.get("/metrics").status_code == 200


def test_gallery_page_is_served_when_installed(client: TestClient) -> None:
    response = client.get("/")
    # The page itself belongs to the gallery; here only that / serves it (or says it is absent).
    assert response.status_code in (200, 404)
    if response.status_code == 200:
        assert response.headers["content-type"].startswith("text/html")
    else:
        assert response.json()["code"] == "not_found"
