"""Two receivers in one shared subscription group split a device's images: none lost, none doubled.

Both run in process (``TestClient`` runs each app's lifespan) against one real mosquitto, each
with its own client id and its own local store, subscribed as ``$share/<group>/<prefix>/+/...``.
A plain paho client publishes the images at QoS 1; the union of the two stores must be exactly
the published set, and each receiver must have taken a share. Over MQTT 5 and 3.1.1 both:
mosquitto accepts ``$share/`` from 3.1.1 clients too (shared subscriptions are an MQTT 5
feature that mosquitto extends to older clients).
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion

from cloud_receiver.api import create_app
from cloud_receiver.config import ReceiverSettings
from harness import Mosquitto, wait_until
from shared.codec import Profile, encode

pytestmark = pytest.mark.integration

IMAGES = 40
API = "/api/v1"


def _settings(
    broker: Mosquitto, data_dir: Path, prefix: str, group: str, protocol: str
) -> ReceiverSettings:
    return ReceiverSettings.model_validate(
        {
            "topic_prefix": prefix,
            "broker": {
                "url": broker.url,
                "client_id": f"receiver-{uuid.uuid4().hex[:8]}",  # one per replica
                "shared_group": group,
                "protocol": protocol,
            },
            "store": {"data_dir": data_dir},
            "recovery": {"iterations": 4},  # this test counts images, not pixels
            "ingest": {"workers": 1},
        }
    )


def _payload(device: str, image_id: uuid.UUID, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (32, 48, 3), dtype=np.uint8)
    return encode(pixels, Profile.lowpass(90, 15, 6), device_id=device, image_id=image_id)


def _stored(client: TestClient, device: str) -> list[str]:
    response = client.get(f"{API}/images", params={"device": device, "limit": 200})
    assert response.status_code == 200, response.text
    return [item["id"] for item in response.json()["items"]]


class _Publisher:
    def __init__(self, broker: Mosquitto) -> None:
        connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4()}")
        self._client.on_connect = lambda *args: connected.set()
        self._client.max_inflight_messages_set(100)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        assert connected.wait(10), "test publisher could not connect"

    def publish(self, topic: str, payloads: list[bytes]) -> None:
        infos = [self._client.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


@pytest.fixture
def publisher(mosquitto: Mosquitto) -> Iterator[_Publisher]:
    client = _Publisher(mosquitto)
    yield client
    client.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_two_replicas_in_one_group_store_each_image_exactly_once(
    mosquitto: Mosquitto, publisher: _Publisher, tmp_path: Path, protocol: str
) -> None:
    prefix, group = f"t-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    settings = [_settings(mosquitto, tmp_path / f"r{i}", prefix, group, protocol) for i in range(2)]
    assert settings[0].broker.client_id != settings[1].broker.client_id
    assert all(s.subscriptions()[0].startswith(f"$share/{group}/{prefix}/") for s in settings)

    with ExitStack() as stack:
        replicas = [stack.enter_context(TestClient(create_app(s))) for s in settings]
        assert wait_until(
            lambda: all(r.get("/readyz").status_code == 200 for r in replicas), timeout_s=30
        )

        # Readiness is set when SUBSCRIBE is sent; probes prove both subscriptions are live
        # before the counted images go out (each probe reaches one member of the group).
        probe_device = f"probe-{uuid.uuid4().hex[:6]}"
        seed = 0
        while not all(_stored(r, probe_device) for r in replicas):
            assert seed < 100, "both replicas never received a probe"
            seed += 1
            publisher.publish(
                f"{prefix}/{probe_device}/image", [_payload(probe_device, uuid.uuid4(), seed)]
            )
            time.sleep(0.1)

        device = f"cam-{uuid.uuid4().hex[:6]}"
        ids = [uuid.uuid4() for _ in range(IMAGES)]
        payloads = [_payload(device, image_id, 1000 + i) for i, image_id in enumerate(ids)]
        publisher.publish(f"{prefix}/{device}/image", payloads)

        expected = {str(image_id) for image_id in ids}
        assert wait_until(
            lambda: sum(len(_stored(r, device)) for r in replicas) >= IMAGES, timeout_s=60
        )
        time.sleep(0.5)  # a late duplicate would land now
        first, second = (_stored(r, device) for r in replicas)

    assert set(first).isdisjoint(second), "an image was stored by both replicas"
    assert len(first) + len(second) == IMAGES
    assert set(first) | set(second) == expected, "an image was lost"
    assert first, "the first replica got no share"
    assert second, "the second replica got no share"
    print(f"split {len(first)} / {len(second)}")
