"""Chunked images survive a receiver killed half way and a $share group of replicas.

Real parts: mosquitto, `cloud-receiver serve` processes over one data_dir, SQLite. Chunks are
acknowledged once they are in the chunk journal on disk (issue 13, item 2); before, they were
held in memory, so a kill -9 lost every image still being reassembled, and replicas of a
shared group each saw only some chunks of an image and stored none.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
from receiver_kit import Publisher, payload_for, unique

from harness import Mosquitto, free_port, wait_until
from shared.chunking import split_payload
from shared.codec import decode


class Serve:
    """One `cloud-receiver serve` process; ``kill()`` is kill -9, nothing cleaned up."""

    def __init__(
        self, mosquitto: Mosquitto, data_dir: Path, prefix: str, client_id: str, *extra: str
    ) -> None:
        self.base = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cloud_receiver",
                "serve",
                "--broker",
                mosquitto.url,
                "--broker-client-id",
                client_id,
                "--topic-prefix",
                prefix,
                "--data-dir",
                str(data_dir),
                "--port",
                self.base.rsplit(":", 1)[1],
                "--recovery-iterations",
                "8",
                *extra,
            ],
            env=os.environ.copy(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self._ready, timeout_s=60):
            self.process.kill()
            raise AssertionError("receiver did not become ready")

    def _ready(self) -> bool:
        try:
            return httpx.get(f"{self.base}/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def stored(self, device: str) -> list[str]:
        items = httpx.get(
            f"{self.base}/api/v1/images", params={"device": device, "limit": 100}
        ).json()["items"]
        return [item["id"] for item in items]

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as stack:
        yield stack


def _chunked(device: str, count: int) -> tuple[list[list[bytes]], set[str]]:
    payloads = [payload_for(device, index=n) for n in range(count)]
    chunks = [split_payload(p, decode(p).image_id, 96) for p in payloads]
    assert all(len(c) >= 3 for c in chunks)
    return chunks, {str(decode(p).image_id) for p in payloads}


def test_chunks_acknowledged_before_a_kill_9_complete_their_images_after_restart(
    mosquitto: Mosquitto, tmp_path: Path, stack: ExitStack
) -> None:
    data, prefix, client_id, device = tmp_path / "data", unique("t"), unique("rx"), unique("cam")
    chunks, ids = _chunked(device, 10)
    first = Serve(mosquitto, data, prefix, client_id)
    stack.callback(first.stop)
    publisher = Publisher(mosquitto)
    stack.callback(publisher.close)
    topic = f"{prefix}/{device}/chunk"
    publisher.publish(topic, [c for image in chunks for c in image[:-1]])  # all PUBACKed
    first.kill()  # every chunk published so far was acknowledged: the sender let them go
    second = Serve(mosquitto, data, prefix, client_id)
    stack.callback(second.stop)
    publisher.publish(topic, [image[-1] for image in chunks])
    assert wait_until(lambda: set(second.stored(device)) == ids, timeout_s=60)
    assert wait_until(lambda: list((data / "chunks").iterdir()) == [])


def test_two_replicas_of_a_shared_group_store_every_chunked_image_once(
    mosquitto: Mosquitto, tmp_path: Path, stack: ExitStack
) -> None:
    data, prefix, device = tmp_path / "data", unique("t"), unique("cam")
    chunks, ids = _chunked(device, 10)
    group = f"g{uuid.uuid4().hex[:6]}"
    replicas = [
        Serve(mosquitto, data, prefix, unique("rx"), "--broker-shared-group", group)
        for _ in range(2)
    ]
    for replica in replicas:
        stack.callback(replica.stop)
    publisher = Publisher(mosquitto)
    stack.callback(publisher.close)
    publisher.publish(f"{prefix}/{device}/chunk", [c for image in chunks for c in image])
    assert wait_until(lambda: set(replicas[0].stored(device)) == ids, timeout_s=60)
    assert sorted(replicas[1].stored(device)) == sorted(ids)  # once each: ids are unique
    assert wait_until(lambda: list((data / "chunks").iterdir()) == [])


def test_a_replica_killed_midway_loses_no_chunked_image_of_its_group(
    mosquitto: Mosquitto, tmp_path: Path, stack: ExitStack
) -> None:
    data, prefix, device = tmp_path / "data", unique("t"), unique("cam")
    chunks, ids = _chunked(device, 10)
    group, names = f"g{uuid.uuid4().hex[:6]}", [unique("rx"), unique("rx")]
    replicas = [Serve(mosquitto, data, prefix, n, "--broker-shared-group", group) for n in names]

    def stop_all() -> None:
        for replica in replicas:  # the list, not its first contents: one is replaced below
            replica.stop()

    stack.callback(stop_all)
    publisher = Publisher(mosquitto)
    stack.callback(publisher.close)
    topic = f"{prefix}/{device}/chunk"
    publisher.publish(topic, [c for image in chunks for c in image[: len(image) // 2]])
    replicas[0].kill()
    publisher.publish(topic, [c for image in chunks for c in image[len(image) // 2 :]])
    replicas[0] = Serve(mosquitto, data, prefix, names[0], "--broker-shared-group", group)
    assert wait_until(lambda: set(replicas[1].stored(device)) == ids, timeout_s=90)
    assert sorted(replicas[0].stored(device)) == sorted(ids)
