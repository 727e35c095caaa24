"""Hostile payloads against a real `cloud-receiver serve` on a real mosquitto, default limits.

Each test stands for one attack measured on the receiver before these bounds existed: a tiny
payload claiming a huge image (2 GB peak), a sparse-anchor ``paper`` payload (190 s of DC
solve), a flood from one device while another waits (88 s), chunk claims from many devices
(1.3 GB), and a payload that kills the receiver being redelivered forever.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from receiver_kit import Publisher, payload_for, unique

from bench.hostile import flat, image_id_of, noisy, sparse_anchors, with_image_id
from harness import Mosquitto, free_port, wait_until
from shared.chunking import ChunkHeader, pack_chunk
from shared.codec import Layout

pytestmark = pytest.mark.integration


@dataclass
class Served:
    base: str
    prefix: str
    process: subprocess.Popen[str]
    data_dir: Path

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.base}/metrics").text
        wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
        pattern = rf"^{name}\{{{wanted}\}} (\S+)$" if labels else rf"^{name} (\S+)$"
        match = re.search(pattern, text, re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def peak_rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def rss_mb(self) -> float:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]

    def stored(self, image_id: str) -> bool:
        return httpx.get(f"{self.base}/api/v1/images/{image_id}").status_code == 200


def _serve(
    mosquitto: Mosquitto, data_dir: Path, client_id: str | None = None, **env: str
) -> Served:
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
            client_id or unique("receiver"),
            "--topic-prefix",
            prefix,
            "--data-dir",
            str(data_dir),
            "--port",
            str(port),
            "--log-format",
            "json",
        ],
        env={**os.environ, **{f"DCTLINK_RECEIVER__{k}": v for k, v in env.items()}},
        stderr=subprocess.DEVNULL,
        text=True,
    )
    served = Served(f"http://127.0.0.1:{port}", prefix, process, data_dir)

    def ready() -> bool:
        try:
            return httpx.get(f"{served.base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    if not wait_until(ready, timeout_s=60):
        process.kill()
        raise AssertionError("receiver did not become ready")
    return served


@pytest.fixture
def serve(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[Served]:
    served = _serve(mosquitto, tmp_path / "data")
    try:
        yield served
    finally:
        served.process.terminate()
        served.process.wait(timeout=30)


def test_a_tiny_payload_claiming_a_huge_image_is_refused_from_its_header(
    serve: Served, mosquitto: Mosquitto
) -> None:
    """80 bytes claiming 4096x3072 in 4:4:4 (before: decoded, 2 GB at 8192x4096)."""
    attack = flat("cam-a", 4096, 3072, Layout.YCBCR444)
    # Real bytes for as many pixels, but 4:4:4: the received stage alone would pass the budget.
    heavy = noisy("cam-a", 3072, 2304)
    publisher = Publisher(mosquitto)
    try:
        publisher.publish(f"{serve.prefix}/cam-a/image", [attack, heavy])
        assert wait_until(
            lambda: serve.metric("dctlink_malformed_payloads_total", reason="limit") == 2
        )
    finally:
        publisher.close()
    assert serve.peak_rss_mb() < 1000
    kept = sorted((serve.data_dir / "quarantine").glob("*.json"))
    reasons = " ".join(path.read_text() for path in kept)
    assert "pixels per payload byte" in reasons
    assert "memory budget" in reasons


def test_a_costly_payload_is_stored_with_the_stages_the_budget_allows(
    serve: Served, mosquitto: Mosquitto
) -> None:
    """A 2048x2048 paper payload with anchors every 255 blocks (before: 190 s at 4096x4096)."""
    attack = sparse_anchors("cam-a", 2048, 2048)
    image_id = str(image_id_of(attack))
    publisher = Publisher(mosquitto)
    started = time.monotonic()
    try:
        publisher.publish(f"{serve.prefix}/cam-a/image", [attack])
        assert wait_until(lambda: serve.stored(image_id), timeout_s=30)
    finally:
        publisher.close()
    took = time.monotonic() - started
    record = httpx.get(f"{serve.base}/api/v1/images/{image_id}").json()
    assert record["stages"]["received"]["url"]
    assert "recovery budget" in record["stages"]["classical"]["reason"]
    assert took < 10, f"stored after {took:.1f} s"


def test_a_flood_from_one_device_delays_another_device_by_seconds_at_most(
    serve: Served, mosquitto: Mosquitto
) -> None:
    """20 of the costliest payloads the limits admit from cam-a, then one image from cam-b."""
    # 2592x1944 4:2:0 is the largest image whose classical stage fits the default budget.
    costly = flat("cam-a", 2592, 1944)
    flood = [with_image_id(costly, uuid.uuid4()) for _ in range(20)]
    good = payload_for("cam-b", size=(768, 512))
    good_id = str(image_id_of(good))
    publisher = Publisher(mosquitto)
    try:
        publisher.publish(f"{serve.prefix}/cam-a/image", flood)
        time.sleep(1.0)  # the flood is in the receiver's hands
        sent = time.monotonic()
        publisher.publish(f"{serve.prefix}/cam-b/image", [good])
        assert wait_until(lambda: serve.stored(good_id), timeout_s=60)
        delay = time.monotonic() - sent
    finally:
        publisher.close()
    print(f"\ngood image stored {delay:.2f} s after it was sent; peak {serve.peak_rss_mb():.0f} MB")
    assert delay < 5, f"the good image waited {delay:.1f} s behind the flood"
    assert serve.peak_rss_mb() < 1000


def test_chunk_claims_from_many_devices_hold_almost_no_memory(
    serve: Served, mosquitto: Mosquitto
) -> None:
    """100 devices, one 42-byte chunk each claiming 16 MiB (before: +1.3 GB)."""
    before = serve.rss_mb()
    publisher = Publisher(mosquitto)
    try:
        for device in range(100):
            claim = pack_chunk(ChunkHeader(uuid.uuid4(), 0, 2, 16 * 2**20 - 1, 0), b"x" * 10)
            publisher.publish(f"{serve.prefix}/dev-{device}/chunk", [claim])
        probe = payload_for("cam-probe")  # everything before it has been handled
        publisher.publish(f"{serve.prefix}/cam-probe/image", [probe])
        assert wait_until(lambda: serve.stored(str(image_id_of(probe))))
    finally:
        publisher.close()
    assert serve.rss_mb() - before < 100


def test_a_payload_that_killed_the_receiver_twice_is_quarantined_not_retried(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """As left by two OOM kills mid-recovery: in the inbox with two attempts started."""
    data_dir = tmp_path / "data"
    receiver = unique("receiver")
    inbox = data_dir / "inbox" / receiver  # each replica's own, by its login or client id
    inbox.mkdir(parents=True)
    prefix_placeholder = "t/cam-a/image"
    payload = payload_for("cam-a")
    topic = prefix_placeholder.encode()
    (inbox / "000000000007.2.msg").write_bytes(len(topic).to_bytes(2, "big") + topic + payload)
    served = _serve(mosquitto, data_dir, receiver)
    try:
        assert wait_until(
            lambda: served.metric("dctlink_malformed_payloads_total", reason="failed_twice") == 1
        )
        assert not list(inbox.glob("*.msg"))
        assert not served.stored(str(image_id_of(payload)))
    finally:
        served.process.terminate()
        served.process.wait(timeout=30)
