"""Helpers the receiver tests share: settings for a test broker, small payloads, a publisher."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from PIL import Image

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.store.base import ImageRecord
from harness import Mosquitto
from shared.codec import Profile, encode

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
#: The tests' usual payload profile: its table quality makes the receiver estimate a JPEG.
LOWPASS = Profile.lowpass(90, 15, 6)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def receiver_settings(
    mosquitto: Mosquitto | None, data_dir: Path, **sections: dict[str, Any]
) -> ReceiverSettings:
    """Settings on a test broker with a unique topic prefix and client id (tests stay apart)."""
    broker_section: dict[str, Any] = {"enabled": False}
    if mosquitto is not None:
        broker_section = {"url": mosquitto.url, "client_id": unique("receiver")}
    broker_section.update(sections.pop("broker", {}))
    return ReceiverSettings.model_validate(
        {
            "topic_prefix": unique("t"),
            "broker": broker_section,
            "store": {"data_dir": data_dir},
            "recovery": {"iterations": 8},  # fewer than the default: these tests check plumbing
            "ingest": {"workers": 2, **sections.pop("ingest", {})},
            **sections,
        }
    )


def sample_pixels(index: int = 0, size: tuple[int, int] = (96, 64)) -> npt.NDArray[np.uint8]:
    """A crop of a bundled Kodak image (small, so recovery is quick)."""
    path = sorted(SAMPLES.glob("*.png"))[index % 4]
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB").crop((0, 0, *size)))


def payload_for(
    device: str,
    index: int = 0,
    size: tuple[int, int] = (96, 64),
    profile: Profile = LOWPASS,
    **kwargs: Any,
) -> bytes:
    return encode(sample_pixels(index, size), profile, device_id=device, **kwargs)


class Publisher:
    """A plain paho client publishing QoS 1 messages and waiting for their PUBACKs."""

    def __init__(self, broker: Mosquitto) -> None:
        self._connected = threading.Event()
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique("pub"))
        self._client.on_connect = lambda *args: self._connected.set()
        self._client.max_inflight_messages_set(100)
        self._client.connect("127.0.0.1", broker.port)
        self._client.loop_start()
        if not self._connected.wait(10):
            raise RuntimeError("test publisher could not connect")

    def publish(self, topic: str, payloads: list[bytes], *, retain: bool = False) -> None:
        infos = [self._client.publish(topic, p, qos=1, retain=retain) for p in payloads]
        for info in infos:
            info.wait_for_publish(30)

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


RECORD_T0 = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def make_record(device: str, minutes: float, image_id: str | None = None) -> ImageRecord:
    """A small stored-image record captured ``minutes`` after RECORD_T0."""
    return ImageRecord(
        id=image_id or str(uuid.uuid4()),
        device_id=device,
        captured_at=RECORD_T0 + timedelta(minutes=minutes),
        received_at=RECORD_T0,
        width=8,
        height=8,
        profile="lowpass",
        quality=90,
        layout="gray",
        payload_bytes=10,
        jpeg_bytes=20,
        jpeg_bytes_basis="same_quality_setting",
        stages={"received": None, "classical": None, "enhanced": "no network"},
        timings_s={"decode": 0.001},
        model_version=None,
    )
