"""GET /api/v1/devices/{id}/latest: the newest image of a camera for still-image clients."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from receiver_kit import payload_for, receiver_settings, unique

from cloud_receiver.api import create_app
from harness import Mosquitto, free_port, wait_until

API = "/api/v1"
START = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
KEYS = {"read_keys": ["viewer-secret"], "admin_keys": ["boss-secret"]}
ADMIN = {"Authorization": "Bearer boss-secret"}


@pytest.fixture
def client(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[TestClient]:
    with TestClient(create_app(receiver_settings(mosquitto, tmp_path, api=KEYS))) as client:
        yield client


def _post(client: TestClient, payload: bytes) -> str:
    response = client.post(f"{API}/payloads", content=payload, headers=ADMIN)
    assert response.status_code == 201, response.text
    image_id: str = response.json()["id"]
    return image_id


def _latest(client: TestClient, device: str, **params: str | int) -> httpx.Response:
    response: httpx.Response = client.get(
        f"{API}/devices/{device}/latest", params={"key": "viewer-secret", **params}
    )
    return response


def test_it_serves_the_newest_capture_as_a_jpeg_of_the_best_stage(client: TestClient) -> None:
    device = unique("cam")
    _post(client, payload_for(device, 0, captured_at=START))
    newest = _post(client, payload_for(device, 1, captured_at=START + timedelta(minutes=5)))
    # An older capture arriving later is not "the latest picture of the camera".
    _post(client, payload_for(device, 2, captured_at=START - timedelta(minutes=5)))
    response = _latest(client, device)
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.headers["x-dctlink-image-id"] == newest
    with Image.open(io.BytesIO(response.content)) as image:
        assert (image.format, image.size) == ("JPEG", (96, 64))
    stages = client.get(f"{API}/images/{newest}", headers=ADMIN).json()["stages"]
    best = next(s for s in ("enhanced", "classical", "received") if "url" in stages[s])
    stored = client.get(f"{API}/images/{newest}/content", params={"stage": best}, headers=ADMIN)
    with Image.open(io.BytesIO(stored.content)) as png:
        want = np.asarray(png.convert("L"), dtype=np.int16)
    with Image.open(io.BytesIO(response.content)) as jpeg:
        got = np.asarray(jpeg.convert("L"), dtype=np.int16)
    assert float(np.abs(want - got).mean()) < 4  # the same picture, only JPEG-coded


def test_format_stage_and_scaling_keep_the_aspect(client: TestClient) -> None:
    device = unique("cam")
    _post(client, payload_for(device, size=(96, 64)))
    png = _latest(client, device, format="png", stage="received", height=32)
    assert png.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(png.content)) as image:
        assert image.size == (48, 32)
    webp = _latest(client, device, format="webp", width=40, height=40)
    with Image.open(io.BytesIO(webp.content)) as image:
        assert (image.format, image.size) == ("WEBP", (40, 27))
    big = _latest(client, device, width=1000)  # never scaled up
    with Image.open(io.BytesIO(big.content)) as image:
        assert image.size == (96, 64)
    assert _latest(client, device, width=0).json()["code"] == "invalid_request"


def test_a_poller_gets_304_until_a_newer_image_arrives(client: TestClient) -> None:
    device = unique("cam")
    _post(client, payload_for(device, captured_at=START))
    first = _latest(client, device)
    etag, modified = first.headers["etag"], first.headers["last-modified"]
    same = client.get(
        f"{API}/devices/{device}/latest",
        params={"key": "viewer-secret"},
        headers={"If-None-Match": etag},
    )
    assert (same.status_code, same.content) == (304, b"")
    assert same.headers["etag"] == etag
    by_date = client.get(
        f"{API}/devices/{device}/latest",
        params={"key": "viewer-secret"},
        headers={"If-Modified-Since": modified},
    )
    assert by_date.status_code == 304
    # Another size is another representation, with its own tag.
    assert _latest(client, device, width=50).headers["etag"] != etag
    newer = _post(client, payload_for(device, 1, captured_at=START + timedelta(minutes=1)))
    again = client.get(
        f"{API}/devices/{device}/latest",
        params={"key": "viewer-secret"},
        headers={"If-None-Match": etag},
    )
    assert again.status_code == 200
    assert again.headers["x-dctlink-image-id"] == newer
    long_ago = format_datetime(START - timedelta(days=1), usegmt=True)
    stale = client.get(
        f"{API}/devices/{device}/latest",
        params={"key": "viewer-secret"},
        headers={"If-Modified-Since": long_ago},
    )
    assert stale.status_code == 200


def test_unknown_devices_and_bad_keys_get_json_errors(client: TestClient) -> None:
    missing = _latest(client, unique("nobody"))
    assert missing.status_code == 404
    assert missing.json()["code"] == "not_found"
    device = unique("cam")
    _post(client, payload_for(device))
    url = f"{API}/devices/{device}/latest"
    assert client.get(url).status_code == 401
    assert client.get(url, params={"key": "wrong"}).status_code == 401
    # The header is the key when both are sent.
    both = client.get(url, params={"key": "viewer-secret"}, headers={"Authorization": "Bearer no"})
    assert both.status_code == 401
    assert client.get(url, headers={"Authorization": "Bearer viewer-secret"}).status_code == 200
    # Only this route takes a key in the URL; the rest of the API still wants the header.
    assert client.get(f"{API}/images", params={"key": "viewer-secret"}).status_code == 401


@pytest.mark.integration
def test_curl_z_and_a_key_in_the_url_never_reach_the_log(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """As a user would poll it: `curl -z`, against `cloud-receiver serve` at DEBUG, whose
    access log writes every request line."""
    port = free_port()
    log_path = tmp_path / "receiver.log"
    command = [
        sys.executable, "-m", "cloud_receiver", "serve", "--broker", mosquitto.url,
        "--broker-client-id", unique("receiver"), "--data-dir", str(tmp_path / "data"),
        "--port", str(port), "--log-level", "DEBUG", "--log-format", "json",
        "--api-read-keys", "viewer-secret", "--api-admin-keys", "boss-secret",
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    with log_path.open("w") as log:
        process = subprocess.Popen(command, stderr=log, env={**os.environ})
        try:
            assert wait_until(lambda: _ready(base), timeout_s=30), log_path.read_text()[-2000:]
            device = unique("cam")
            stored = httpx.post(
                f"{base}{API}/payloads",
                content=payload_for(device, captured_at=START),
                headers=ADMIN,
                timeout=30,
            )
            assert stored.status_code == 201
            url = f"{base}{API}/devices/{device}/latest?key=viewer-secret"
            picture = tmp_path / "latest.jpg"
            fetched = _curl("-o", str(picture), url)
            assert fetched == "200"
            with Image.open(picture) as image:
                assert image.format == "JPEG"
            # -z with the file: only a newer picture is downloaded.
            assert _curl("-z", str(picture), "-o", str(tmp_path / "again.jpg"), url) == "304"
            assert _curl("-z", "1 Jan 2000 00:00:00 GMT", "-o", os.devnull, url) == "200"
        finally:
            process.terminate()
            process.wait(20)
    text = log_path.read_text()
    assert "/latest?key=[redacted]" in text  # the access log did write the request...
    assert "viewer-secret" not in text  # ...without the key


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def _curl(*arguments: str) -> str:
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--write-out", "%{http_code}", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout.strip()
