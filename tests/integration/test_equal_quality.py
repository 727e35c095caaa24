"""End to end: the edge sender's default (auto, quality 75) reaches the receiver's metadata as a
comparison with the JPEG of equal quality that the sender measured, not one the receiver guessed.

The real sender CLI publishes sample files through a real mosquitto to a receiver running in
process (``TestClient`` runs its lifespan); everything is then read back over REST.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from cloud_receiver.api import create_app
from cloud_receiver.config import ReceiverSettings
from edge_sender.cli import main as edge_sender
from harness import Mosquitto, wait_until
from shared.codec.reference import reference_jpeg_bytes

pytestmark = pytest.mark.integration

API = "/api/v1"
SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))[:2]


def test_default_auto_images_are_compared_with_the_senders_jpeg_of_equal_quality(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    prefix, device = f"t-{uuid.uuid4().hex[:8]}", f"cam-{uuid.uuid4().hex[:8]}"
    settings = ReceiverSettings.model_validate(
        {
            "topic_prefix": prefix,
            "broker": {"url": mosquitto.url, "client_id": f"receiver-{uuid.uuid4().hex[:8]}"},
            "store": {"data_dir": tmp_path / "receiver"},
            "recovery": {"iterations": 4, "model_path": tmp_path / "absent.onnx"},
        }
    )
    with TestClient(create_app(settings)) as client:
        assert wait_until(lambda: client.get("/readyz").status_code == 200, timeout_s=30)
        # No profile or quality given: what a user who reads nothing gets.
        flags = ["--broker", mosquitto.url, "--topic-prefix", prefix, "--device-id", device]
        flags += ["--spool-path", str(tmp_path / "spool.sqlite3"), "--no-progress"]
        assert edge_sender(["send", *map(str, SAMPLES), *flags, "--timeout", "30"]) == 0

        def listed() -> list[dict[str, object]]:
            items: list[dict[str, object]] = client.get(
                f"{API}/images", params={"device": device}
            ).json()["items"]
            return items

        assert wait_until(lambda: len(listed()) == len(SAMPLES), timeout_s=30)
        expected = {}
        for path in SAMPLES:
            with Image.open(path) as image:
                expected[reference_jpeg_bytes(np.asarray(image.convert("RGB")), 75)] = path
        items = listed()
        for item in items:
            assert (item["profile"], item["quality"]) == ("auto", 75)
            assert item["jpeg_bytes_basis"] == "equal_quality"
        # Each image's JPEG size is libjpeg's at the promised quality of that very file.
        assert sorted(int(str(item["jpeg_bytes"])) for item in items) == sorted(expected)

        # The sender reports the same comparison in its retained status, and the receiver
        # keeps that status: both sides agree on every byte.
        def sender_status() -> dict[str, object]:
            for entry in client.get(f"{API}/devices").json()["items"]:
                if entry["device_id"] == device and entry["status"]["state"] == "offline":
                    status: dict[str, object] = entry["status"]
                    return status
            return {}

        assert wait_until(lambda: bool(sender_status()), timeout_s=30)
        status = sender_status()
        assert status["equal_quality_jpeg_bytes_total"] == sum(expected)
        payload_bytes = sum(int(str(item["payload_bytes"])) for item in items)
        assert status["equal_quality_payload_bytes_total"] == payload_bytes
        assert status["payload_to_equal_quality_jpeg_ratio"] == round(
            payload_bytes / sum(expected), 4
        )
