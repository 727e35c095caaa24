"""End to end through a real mosquitto: edge sender or plain client -> receiver -> REST."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from conftest import MosquittoFactory
from fastapi.testclient import TestClient
from PIL import Image
from receiver_kit import (
    Publisher,
    payload_for,
    receiver_settings,
    sample_pixels,
    unique,
)

from cloud_receiver.api import create_app
from cloud_receiver.config import ReceiverSettings
from cloud_receiver.recovery import Recovery
from edge_sender.cli import main as edge_main
from harness import Mosquitto, wait_until
from shared.chunking import split_payload
from shared.codec import Profile, decode, encode
from shared.metrics import psnr

pytestmark = pytest.mark.integration
API = "/api/v1"


def _items(client: TestClient, **params: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = client.get(
        f"{API}/images", params={"limit": 200, **params}
    ).json()["items"]
    return items


def _png(client: TestClient, image_id: object, stage: str) -> npt.NDArray[np.uint8]:
    response = client.get(f"{API}/images/{image_id}/content", params={"stage": stage})
    assert response.status_code == 200
    with Image.open(io.BytesIO(response.content)) as image:
        return np.asarray(image)


@pytest.fixture
def receiver(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[TestClient, ReceiverSettings]]:
    settings = receiver_settings(mosquitto, tmp_path / "data")
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
        yield client, settings


def _metric(client: TestClient, line_start: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.split()[-1])
    return 0.0


def test_edge_sender_image_arrives_with_the_offline_pipelines_quality(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client, settings = receiver
    device = unique("cam")
    source = tmp_path / "frame.png"
    Image.fromarray(sample_pixels(1, (128, 96))).save(source)
    flags = [
        "--broker",
        mosquitto.url,
        "--device-id",
        device,
        "--topic-prefix",
        settings.topic_prefix,
    ]
    assert (
        edge_main(
            [
                "send",
                str(source),
                *flags,
                "--spool-path",
                str(tmp_path / "s.db"),
                "--timeout",
                "30",
                "--no-progress",
            ]
        )
        == 0
    )
    assert wait_until(lambda: len(_items(client, device=device)) == 1)
    meta = _items(client, device=device)[0]

    # The offline pipeline: the same payload (the sender's default, auto at 75), decoded and
    # recovered.
    original = sample_pixels(1, (128, 96))
    decoded_meta = decode(
        encode(
            original,
            Profile.auto(75),
            device_id=device,
            image_id=uuid.UUID(str(meta["id"])),
        )
    )
    offline = Recovery(iterations=settings.recovery.iterations).run(decoded_meta)
    served = _png(client, meta["id"], "classical")
    assert abs(psnr(original, served) - psnr(original, offline.classical)) < 0.01
    assert (
        abs(psnr(original, _png(client, meta["id"], "received")) - psnr(original, offline.received))
        < 0.01
    )


def test_chunked_payload_is_reassembled(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto
) -> None:
    client, settings = receiver
    device = unique("cam")
    payload = payload_for(device, 2, (160, 120))
    decoded = decode(payload)
    chunks = split_payload(payload, decoded.image_id, 1024)
    assert len(chunks) > 2
    publisher = Publisher(mosquitto)
    try:
        # Out of order and one chunk twice: harmless by design.
        publisher.publish(f"{settings.topic_prefix}/{device}/chunk", [*chunks[::-1], chunks[0]])
        assert wait_until(lambda: len(_items(client, device=device)) == 1)
    finally:
        publisher.close()
    meta = _items(client, device=device)[0]
    assert meta["id"] == str(decoded.image_id)
    assert meta["payload_bytes"] == len(payload)


def test_duplicates_and_foreign_device_ids_over_mqtt(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client, settings = receiver
    device, other = unique("cam"), unique("cam")
    payload = payload_for(device)
    publisher = Publisher(mosquitto)
    try:
        publisher.publish(f"{settings.topic_prefix}/{device}/image", [payload, payload, payload])
        # A device publishing another's payload under its own topic is rejected.
        publisher.publish(f"{settings.topic_prefix}/{other}/image", [payload_for(device, 1)])
        assert wait_until(lambda: _metric(client, "dctlink_duplicate_images_total") == 2)
        assert wait_until(
            lambda: (
                _metric(client, 'dctlink_malformed_payloads_total{reason="device_mismatch"}') == 1
            )
        )
    finally:
        publisher.close()
    assert len(_items(client, device=device)) == 1
    assert _metric(client, "dctlink_images_received_total") == 1


def test_device_status_updates_the_devices_list(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto
) -> None:
    client, settings = receiver
    device = unique("cam")
    publisher = Publisher(mosquitto)
    topic = f"{settings.topic_prefix}/{device}/status"

    def state() -> dict[str, object] | None:
        devices = client.get(f"{API}/devices").json()["items"]
        return next((d for d in devices if d["device_id"] == device), None)

    try:
        publisher.publish(topic, [b'{"state": "online", "spool_depth": 3}'], retain=True)
        assert wait_until(lambda: (s := state()) is not None and s["online"] is True)
        assert state()["status"]["spool_depth"] == 3  # type: ignore[index]
        assert _metric(client, "dctlink_devices_online") >= 1
        publisher.publish(topic, [b'{"state": "offline"}'], retain=True)
        assert wait_until(lambda: (s := state()) is not None and s["online"] is False)
        publisher.publish(topic, [b""], retain=True)  # clears the retained message
    finally:
        publisher.close()


def test_a_thousand_malformed_payloads_are_quarantined_and_the_service_stays_up(
    receiver: tuple[TestClient, ReceiverSettings], mosquitto: Mosquitto
) -> None:
    client, settings = receiver
    device = unique("cam")
    garbage = [b"DCTL" + i.to_bytes(4, "big") + bytes(8) for i in range(500)]
    garbage += [bytes([i % 251]) * (1 + i % 40) for i in range(500)]
    publisher = Publisher(mosquitto)
    try:
        publisher.publish(f"{settings.topic_prefix}/{device}/image", garbage)

        def rejected() -> float:
            text = client.get("/metrics").text
            return sum(
                float(line.split()[-1])
                for line in text.splitlines()
                if line.startswith("dctlink_malformed_payloads_total{")
            )

        assert wait_until(lambda: rejected() == 1000, timeout_s=60)
        quarantine = settings.store.data_dir / "quarantine"
        assert len(list(quarantine.glob("*.bin"))) == 1000
        assert len(list(quarantine.glob("*.json"))) == 1000
        assert client.get("/readyz").status_code == 200
        # Still ingesting: a good payload after all that is stored.
        publisher.publish(f"{settings.topic_prefix}/{device}/image", [payload_for(device)])
        assert wait_until(lambda: len(_items(client, device=device)) == 1)
    finally:
        publisher.close()


def test_images_published_while_the_receiver_is_down_arrive_after_restart(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    broker = mosquitto_factory(persistence=True)
    settings = receiver_settings(broker, tmp_path / "data")
    device = unique("cam")
    with TestClient(create_app(settings)) as client:
        # The first session creates the subscription the broker keeps for us.
        assert wait_until(lambda: client.get("/readyz").status_code == 200)
    publisher = Publisher(broker)
    try:
        publisher.publish(
            f"{settings.topic_prefix}/{device}/image", [payload_for(device, i) for i in range(5)]
        )
    finally:
        publisher.close()
    broker.stop()  # and the broker restarts too: its persistence keeps the queue
    broker.start()
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: len(_items(client, device=device)) == 5)


def test_over_mqtt_3_1_1_images_arrive_and_wait_for_a_restarted_receiver(
    mosquitto_factory: MosquittoFactory, tmp_path: Path
) -> None:
    """Protocol 3.1.1: clean session off with the fixed client id keeps the queue meanwhile."""
    broker = mosquitto_factory(persistence=True)
    settings = receiver_settings(broker, tmp_path / "data", broker={"protocol": "3.1.1"})
    device = unique("cam")
    topic = f"{settings.topic_prefix}/{device}/image"
    publisher = Publisher(broker)
    try:
        with TestClient(create_app(settings)) as client:
            assert wait_until(lambda: client.get("/readyz").status_code == 200)
            # Readiness is set when SUBSCRIBE is sent: re-send one image (one id, so stored
            # once) until the subscription is live.
            first = payload_for(device, 0, image_id=uuid.uuid4())
            for _ in range(100):
                publisher.publish(topic, [first])
                if wait_until(lambda: len(_items(client, device=device)) == 1, timeout_s=0.2):
                    break
            assert len(_items(client, device=device)) == 1
        # The receiver is down (a normal disconnect): images published now wait in its session.
        publisher.publish(topic, [payload_for(device, i) for i in range(1, 4)])
        with TestClient(create_app(settings)) as client:
            assert wait_until(lambda: len(_items(client, device=device)) == 4)
    finally:
        publisher.close()
