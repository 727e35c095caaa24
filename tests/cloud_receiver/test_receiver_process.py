"""The receiver as it is deployed: `cloud-receiver serve` in its own process (uvicorn)."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from receiver_kit import Publisher, payload_for, unique

from harness import Mosquitto, free_port, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def server(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[str, str]]:
    port = free_port()
    prefix = unique("t")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloud_receiver",
            "serve",
            "--broker",
            mosquitto.url,
            "--broker-client-id",
            unique("receiver"),
            "--topic-prefix",
            prefix,
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--recovery-iterations",
            "8",
            "--log-format",
            "json",
        ],
        env={**os.environ, "DCTLINK_RECEIVER__INGEST__WORKERS": "1"},
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return process.poll() is None and False

    try:
        assert wait_until(ready, timeout_s=30), "receiver did not become ready"
        yield base, prefix
    finally:
        process.terminate()
        _, stderr = process.communicate(timeout=20)
    # uvicorn shuts down gracefully on SIGTERM, then re-raises it as its exit status.
    assert process.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert '"message": "receiver stopped"' in stderr


def test_served_process_streams_an_event_for_each_image_from_mqtt(
    server: tuple[str, str], mosquitto: Mosquitto
) -> None:
    base, prefix = server
    device = unique("cam")
    events: list[dict[str, object]] = []
    subscribed = threading.Event()

    def listen() -> None:
        with httpx.stream("GET", f"{base}/api/v1/events", timeout=30) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            name = None
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    subscribed.set()
                elif line.startswith("event: "):
                    name = line.removeprefix("event: ")
                elif line.startswith("data: ") and name == "image":
                    events.append(json.loads(line.removeprefix("data: ")))
                    return

    listener = threading.Thread(target=listen, daemon=True)
    listener.start()
    assert subscribed.wait(10)
    publisher = Publisher(mosquitto)
    try:
        publisher.publish(f"{prefix}/{device}/image", [payload_for(device)])
    finally:
        publisher.close()
    listener.join(30)
    assert len(events) == 1
    event = events[0]
    assert event["device_id"] == device
    meta = httpx.get(f"{base}/api/v1/images/{event['id']}").json()
    assert meta == event
    content = httpx.get(f"{base}{meta['stages']['classical']['url']}&format=jpeg")
    assert content.headers["content-type"] == "image/jpeg"


def test_sigterm_ends_a_served_receiver_while_an_event_stream_is_open(tmp_path: Path) -> None:
    # uvicorn waits for open responses before running the lifespan shutdown that would end
    # the streams; api.shutdown_timeout_s (default 3 s) bounds that wait.
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloud_receiver",
            "serve",
            "--no-broker-enabled",
            "--data-dir",
            str(tmp_path / "data"),
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    subscribed = threading.Event()

    def listen() -> None:
        with (
            contextlib.suppress(httpx.HTTPError),
            httpx.stream("GET", f"{base}/api/v1/events", timeout=60) as response,
        ):
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    subscribed.set()

    def ready() -> bool:
        try:
            return httpx.get(f"{base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    listener = threading.Thread(target=listen, daemon=True)
    try:
        assert wait_until(ready, timeout_s=30), "receiver did not become ready"
        listener.start()
        assert subscribed.wait(10)
        started = time.monotonic()
        process.terminate()
        _, stderr = process.communicate(timeout=15)
        elapsed = time.monotonic() - started
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert elapsed < 10, f"SIGTERM took {elapsed:.1f} s with an event stream open"
    assert process.returncode in (0, -signal.SIGTERM), stderr[-2000:]
    assert '"message": "receiver stopped"' in stderr
