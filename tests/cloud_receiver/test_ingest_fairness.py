"""The fairness parts (rate limiter, round-robin queue), the inbox, and the recovery budget."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from receiver_kit import payload_for, receiver_settings

from cloud_receiver.api import create_app
from cloud_receiver.ingest.fairness import DeviceLimiter, FairQueue, QueueClosedError
from cloud_receiver.ingest.inbox import Inbox, InboxFullError
from cloud_receiver.recovery.budget import Budget, estimate
from harness import wait_until
from shared.chunking import ChunkHeader, pack_chunk
from shared.codec import Layout


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_device_past_its_rate_is_refused_and_others_are_not() -> None:
    clock = Clock()
    limiter = DeviceLimiter(
        images_per_s=2, burst_images=3, bytes_per_s=1000, burst_bytes=5000, clock=clock
    )
    assert [limiter.take("cam-a", 10) for _ in range(3)] == [None] * 3
    refused = limiter.take("cam-a", 10)
    assert refused is not None
    assert "2 images/s" in refused
    assert limiter.take("cam-b", 10) is None
    clock.now = 0.5  # one image's worth of tokens back
    assert limiter.take("cam-a", 10) is None
    assert limiter.take("cam-a", 10) is not None
    clock.now = 10
    bytes_refused = limiter.take("cam-a", 6000)
    assert bytes_refused is not None
    assert "bytes/s" in bytes_refused


def test_the_queue_serves_devices_round_robin_and_the_idle_device_first() -> None:
    queue: FairQueue[str] = FairQueue()
    for n in range(3):
        queue.put("flood", f"f{n}")
    first = queue.get(0)
    assert first == ("flood", "f0")  # running now, not done
    queue.put("quiet", "q0")
    # A second worker takes the device with fewer jobs running, not the next of the flood.
    assert queue.get(0) == ("quiet", "q0")
    queue.done("quiet")
    assert queue.get(0) == ("flood", "f1")
    assert queue.waiting() == 1
    assert queue.close() == ["f2"]
    with pytest.raises(QueueClosedError):
        queue.get(0)


def test_the_inbox_keeps_payloads_across_a_restart_and_counts_attempts(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, max_bytes=10_000, max_bytes_per_device=1000, max_files_per_device=3)
    first = inbox.put("cam-a", "p/cam-a/image", b"one")
    inbox.put("cam-a", "p/cam-a/image", b"two")
    started = inbox.begin(first)
    assert started.attempts == 1
    again = Inbox(tmp_path, max_bytes=10_000, max_bytes_per_device=1000, max_files_per_device=3)
    left = again.recover()
    assert [(e.device_id, e.attempts, Inbox.read(e)) for e in left] == [
        ("cam-a", 1, ("p/cam-a/image", b"one")),
        ("cam-a", 0, ("p/cam-a/image", b"two")),
    ]
    assert again.device_bytes("cam-a") == 6
    third = again.put("cam-a", "p/cam-a/image", b"three")
    assert third.path.name.startswith("000000000002.")  # sequence continues after restart
    for entry in [*left, third]:
        again.remove(entry)
    assert (again.bytes, list(tmp_path.glob("*.msg"))) == (0, [])


def test_the_inbox_refuses_past_a_device_share_and_waits_when_full(tmp_path: Path) -> None:
    inbox = Inbox(tmp_path, max_bytes=100, max_bytes_per_device=60, max_files_per_device=2)
    inbox.put("cam-a", "p/cam-a/image", b"x" * 50)
    with pytest.raises(InboxFullError, match="bytes waiting"):
        inbox.put("cam-a", "p/cam-a/image", b"x" * 20)
    held = inbox.put("cam-b", "p/cam-b/image", b"x" * 45)
    # Full over all devices: the next put waits (back-pressure) until space is freed.
    done = threading.Event()

    def put() -> None:
        inbox.put("cam-c", "p/cam-c/image", b"x" * 20)
        done.set()

    thread = threading.Thread(target=put)
    thread.start()
    assert not done.wait(0.3)
    inbox.remove(held)
    assert done.wait(5)
    thread.join()


def test_the_budget_estimates_grow_with_the_claim() -> None:
    small = estimate(768, 512, Layout.YCBCR420, dc_missing=False)
    large = estimate(4096, 3072, Layout.YCBCR444, dc_missing=False)
    anchored = estimate(2048, 2048, Layout.GRAY, dc_missing=True)
    budget = Budget(320 * 2**20, 2.5)
    assert small.classical_bytes < budget.memory_bytes
    assert small.classical_seconds < budget.seconds
    assert large.received_bytes > budget.memory_bytes
    assert anchored.classical_seconds > budget.seconds


def test_http_ingest_answers_429_past_a_device_rate_and_expires_chunks_on_a_timer(
    tmp_path: Path,
) -> None:
    settings = receiver_settings(
        None,
        tmp_path,
        ingest={"device_burst_images": 2, "device_images_per_s": 0.01, "chunk_timeout_s": 0.5},
    )
    with TestClient(create_app(settings)) as client:
        responses = [
            client.post(
                "/api/v1/payloads",
                content=payload_for("cam-a", index=n),
                headers={"Content-Type": "application/octet-stream"},
            )
            for n in range(3)
        ]
        assert [r.status_code for r in responses] == [201, 201, 429]
        assert responses[2].json()["code"] == "rate_limited"
        assert responses[2].headers["retry-after"] == "1"
        other = client.post(
            "/api/v1/payloads",
            content=payload_for("cam-b"),
            headers={"Content-Type": "application/octet-stream"},
        )
        assert other.status_code == 201
        # A chunked image whose sender stopped: dropped by the timer, no further chunk needed.
        pipeline = client.app.state.receiver.ingest.pipeline  # type: ignore[attr-defined]
        claim = pack_chunk(ChunkHeader(uuid.uuid4(), 0, 2, 1000, 0), b"x" * 10)
        pipeline.add_chunk(claim, topic="t/cam-a/chunk", device_id="cam-a")
        assert pipeline.chunks_pending == 1
        assert wait_until(lambda: pipeline.chunks_pending == 0, timeout_s=5)
