"""End to end: ``python -m demo`` starts a broker, the receiver and a sender; images arrive."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GALLERY = re.compile(r"^gallery\s+(http://\S+)/$", re.MULTILINE)


def _start_demo(tmp_path: Path, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
    output = tmp_path / "demo.out"
    with output.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "demo", "--port", "0", "--summary-every", "2", *args],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    return process, output


def _wait_for_images(
    process: subprocess.Popen[bytes], output: Path, timeout_s: float
) -> list[dict[str, Any]]:
    """Read the gallery URL the demo prints, then poll the API until an image is listed."""
    deadline = time.monotonic() + timeout_s
    base_url: str | None = None
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the demo exited early:\n{output.read_text()}"
        if base_url is None:
            found = GALLERY.search(output.read_text())
            base_url = found.group(1) if found else None
        else:
            with urllib.request.urlopen(f"{base_url}/api/v1/images", timeout=5) as response:
                items: list[dict[str, Any]] = json.loads(response.read())["items"]
            if items:
                return items
        time.sleep(0.2)
    pytest.fail(f"no image listed within {timeout_s} s:\n{output.read_text()}")


def _finish(process: subprocess.Popen[bytes], output: Path, timeout_s: float) -> str:
    try:
        process.wait(timeout_s)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    return output.read_text()


@pytest.mark.integration
def test_demo_runs_for_its_duration_and_delivers_images(tmp_path: Path) -> None:
    process, output = _start_demo(tmp_path, "--duration", "6", "--interval", "0.5")
    items = _wait_for_images(process, output, timeout_s=20)
    assert items[0]["device_id"] == "demo-cam"
    assert items[0]["payload_bytes"] > 0
    # The demo's sender runs the defaults: auto at 75, compared with the JPEG of equal quality.
    assert (items[0]["profile"], items[0]["quality"]) == ("auto", 75)
    assert items[0]["jpeg_bytes_basis"] == "equal_quality"
    text = _finish(process, output, timeout_s=25)
    assert process.returncode == 0, text
    assert re.search(r"\] [1-9]\d* images received: ", text), text
    assert re.search(r"kB of payloads, \d+\.\dx smaller than the JPEG of equal quality", text)
    assert "quality not matched" not in text, text
    assert "stopping: sender, receiver, broker" in text
    assert "note:" not in text, text  # every child stopped cleanly


@pytest.mark.integration
def test_demo_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    process, output = _start_demo(tmp_path, "--data-dir", str(data))
    _wait_for_images(process, output, timeout_s=20)
    process.send_signal(signal.SIGINT)
    text = _finish(process, output, timeout_s=25)
    assert process.returncode == 0, text
    assert "note:" not in text, text
    assert "stopped" in text.splitlines()[-1]
    assert (data / "receiver" / "index.sqlite3").exists()  # a given --data-dir is kept
    assert (data / "logs" / "receiver.log").exists()


@pytest.mark.integration
def test_demo_on_the_embedded_broker_delivers_images(tmp_path: Path) -> None:
    """--broker embedded: amqtt (pure Python) and both services on MQTT 3.1.1, no mosquitto."""
    pytest.importorskip("amqtt", reason="the demo extra (amqtt) is not installed")
    process, output = _start_demo(
        tmp_path, "--broker", "embedded", "--duration", "6", "--interval", "0.5"
    )
    items = _wait_for_images(process, output, timeout_s=25)
    assert items[0]["device_id"] == "demo-cam"
    text = _finish(process, output, timeout_s=25)
    assert process.returncode == 0, text
    assert "broker    amqtt (embedded, MQTT 3.1.1) on mqtt://127.0.0.1:" in text, text
    assert re.search(r"\] [1-9]\d* images received: ", text), text
    assert "stopping: sender, receiver, broker (amqtt)" in text
    assert "note:" not in text, text
