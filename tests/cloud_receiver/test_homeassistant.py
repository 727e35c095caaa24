"""Home Assistant MQTT discovery, against a real mosquitto with a subscriber in HA's place.

The edge sender is the real one, so the availability the discovery config points at is the
device's own status topic with its real online/offline messages.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image
from pydantic import SecretStr
from receiver_kit import receiver_settings, unique

from cloud_receiver.api import create_app
from cloud_receiver.config import HomeAssistantSettings
from cloud_receiver.homeassistant.discovery import configs, object_id
from edge_sender.cli import main as edge_sender
from harness import Mosquitto, wait_until

pytestmark = pytest.mark.integration
SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "kodim23-half.png"
ADMIN = {"Authorization": "Bearer boss"}


class HomeAssistant:
    """Subscribes as Home Assistant does: discovery, then the topics the configs name."""

    def __init__(self, broker: Mosquitto, prefix: str) -> None:
        self.messages: dict[str, bytes] = {}
        self.lock = threading.Lock()
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("ha"))
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.topics = [(f"{prefix}/#", 1), (f"{prefix}-ha/#", 1), ("homeassistant/#", 1)]
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self.ready.wait(10)

    def _connected(self, client: mqtt.Client, *_: Any) -> None:
        client.subscribe(self.topics)
        self.ready.set()

    def _message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages[message.topic] = bytes(message.payload)

    def get(self, topic: str) -> bytes | None:
        with self.lock:
            return self.messages.get(topic)

    def json(self, topic: str) -> Any:
        data = self.get(topic)
        return None if not data else json.loads(data)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def setup(mosquitto: Mosquitto, tmp_path: Path) -> Iterator[tuple[TestClient, HomeAssistant, str]]:
    settings = receiver_settings(
        mosquitto,
        tmp_path,
        homeassistant={"enabled": True, "camera": True, "max_width": 160},
        api={"admin_keys": ["boss"]},
    )
    home = HomeAssistant(mosquitto, settings.topic_prefix)
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200, timeout_s=20)
        yield client, home, settings.topic_prefix
    home.close()


def test_each_camera_appears_with_its_picture_savings_and_availability(
    setup: tuple[TestClient, HomeAssistant, str], mosquitto: Mosquitto, tmp_path: Path
) -> None:
    client, home, prefix = setup
    device = f"cam-{uuid.uuid4().hex[:6]}"
    flags = ["--broker", mosquitto.url, "--device-id", device, "--topic-prefix", prefix]
    spool = ["--spool-path", str(tmp_path / "spool.db"), "--no-progress", "--timeout", "30"]
    assert edge_sender(["send", str(SAMPLE), *flags, *spool]) == 0

    node = object_id(device)
    image_config = f"homeassistant/image/{node}/config"
    last_config = f"homeassistant/sensor/{node}_bytes_saved/config"  # published last
    assert wait_until(lambda: home.json(last_config) is not None, timeout_s=20)
    config = home.json(image_config)
    assert config["unique_id"] == f"{node}_picture"
    assert config["device"]["identifiers"] == [node]
    assert config["device"]["manufacturer"] == "DCTLink"
    assert config["content_type"] == "image/jpeg"
    (availability,) = config["availability"]
    assert availability["topic"] == f"{prefix}/{device}/status"
    assert home.json(f"homeassistant/camera/{node}/config")["topic"] == config["image_topic"]
    sensors = {
        key: home.json(f"homeassistant/sensor/{node}_{key}/config")
        for key in ("last_seen", "payload_bytes", "bytes_saved")
    }
    assert all(s is not None and s["device"] == config["device"] for s in sensors.values())

    # The picture: a JPEG of the stored image, scaled to max_width with its aspect kept.
    assert wait_until(lambda: home.get(config["image_topic"]) is not None, timeout_s=20)
    with Image.open(io.BytesIO(home.get(config["image_topic"]) or b"")) as picture:
        assert (picture.format, picture.size) == ("JPEG", (160, 107))
    state = home.json(sensors["bytes_saved"]["state_topic"])
    listing = client.get("/api/v1/images", params={"device": device}, headers=ADMIN)
    stored = listing.json()["items"][0]
    assert state["image_id"] == stored["id"]
    assert state["payload_bytes"] == stored["payload_bytes"]
    assert state["bytes_saved"] == stored["jpeg_bytes"] - stored["payload_bytes"] > 0

    # Availability: what the value template reads from the status topic the config names.
    def available() -> str | None:
        status = home.json(availability["topic"])
        return None if status is None else status["state"]

    # The sender has finished: its status went offline when it disconnected.
    assert wait_until(lambda: available() == "offline", timeout_s=20)

    # Removing the device clears its retained discovery: Home Assistant deletes the entities.
    assert client.delete(f"/api/v1/devices/{device}", headers=ADMIN).status_code == 204
    assert wait_until(lambda: home.get(image_config) == b"", timeout_s=20)
    # The state topic is cleared last, and one client's publishes arrive in order: once it
    # is empty, every retained message of the device is gone from the broker.
    state_topic = sensors["bytes_saved"]["state_topic"]
    assert wait_until(lambda: home.get(state_topic) == b"", timeout_s=20)
    later = HomeAssistant(mosquitto, prefix)
    try:
        # A Home Assistant starting now finds nothing retained for the device.
        assert not wait_until(
            lambda: any(t.startswith("homeassistant/") and node in t for t in later.messages),
            timeout_s=2,
        )
    finally:
        later.close()


def test_url_mode_publishes_the_latest_url_with_its_key() -> None:
    settings = HomeAssistantSettings(
        enabled=True, image="url", base_url="http://receiver:8000/", url_key=SecretStr("ha key")
    )
    published = configs(settings, "dctlink", "gate/1", "1.0")
    (image,) = [c for t, c in published.items() if t.startswith("homeassistant/image/")]
    assert image["url_topic"] == "dctlink-ha/gate/1/url"
    assert "image_topic" not in image
    assert all("dctlink_gate_1" in topic for topic in published)


def test_url_mode_needs_a_base_url() -> None:
    with pytest.raises(ValueError, match="base_url"):
        HomeAssistantSettings(enabled=True, image="url")
