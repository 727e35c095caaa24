"""Home Assistant MQTT discovery messages for one DCTLink device (pure: settings in, JSON out).

For each device the receiver announces, as retained messages under the discovery prefix, one
Home Assistant device (identifier ``dctlink_<device>``) holding:

- an ``image`` entity: the newest picture, as JPEG bytes on ``<prefix>-ha/<device>/image`` or
  as a URL on ``<prefix>-ha/<device>/url``;
- optionally a ``camera`` entity on the same picture topic;
- three ``sensor`` entities read from the retained JSON on ``<prefix>-ha/<device>/state``:
  when the newest picture arrived, its payload bytes, and the bytes it saved against the JPEG
  it replaces (``jpeg_bytes - payload_bytes``, see ``jpeg_bytes_basis`` in the README).

Every entity is available while the device's own retained status topic
(``<prefix>/<device>/status``, docs/architecture.md section 4) says ``online``: the sender
sets it on connect, and its Last Will sets ``offline``.

The picture and state topics sit under ``<prefix>-ha``, not ``<prefix>``: devices may write
anywhere under ``<prefix>/<their id>/`` (the broker ACL), so a device named ``ha`` could
otherwise publish pictures for the others. Object ids put the device id through
:func:`object_id`, since discovery topics allow only ``[a-zA-Z0-9_-]``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from cloud_receiver.config import HomeAssistantSettings

MANUFACTURER = "DCTLink"
_UNSAFE = re.compile(r"[^a-zA-Z0-9_-]")


def object_id(device_id: str) -> str:
    """``dctlink_<device>`` with every character discovery topics refuse replaced by ``_``."""
    return "dctlink_" + _UNSAFE.sub("_", device_id)


@dataclass(frozen=True)
class Topics:
    """Where the bridge publishes for one device."""

    image: str
    url: str
    state: str
    status: str  # the device's own status topic, read by Home Assistant for availability


def topics(topic_prefix: str, device_id: str) -> Topics:
    base = f"{topic_prefix}-ha/{device_id}"
    return Topics(
        f"{base}/image", f"{base}/url", f"{base}/state", f"{topic_prefix}/{device_id}/status"
    )


SENSORS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("last_seen", "Last picture", {"device_class": "timestamp"}),
    (
        "payload_bytes",
        "Payload size",
        {"device_class": "data_size", "unit_of_measurement": "B", "state_class": "measurement"},
    ),
    (
        "bytes_saved",
        "Bytes saved",
        {"device_class": "data_size", "unit_of_measurement": "B", "state_class": "measurement"},
    ),
)


def configs(
    settings: HomeAssistantSettings, topic_prefix: str, device_id: str, version: str
) -> dict[str, dict[str, Any]]:
    """Each discovery topic of the device and its config."""
    node = object_id(device_id)
    where = topics(topic_prefix, device_id)
    common: dict[str, Any] = {
        "device": {
            "identifiers": [node],
            "name": device_id,
            "manufacturer": MANUFACTURER,
            "model": "DCTLink camera",
            "sw_version": version,
        },
        "availability": [{"topic": where.status, "value_template": "{{ value_json.state }}"}],
        "payload_available": "online",
        "payload_not_available": "offline",
        "origin": {"name": "DCTLink receiver", "sw_version": version},
    }
    prefix = settings.discovery_prefix
    out: dict[str, dict[str, Any]] = {}
    image: dict[str, Any] = {**common, "name": "Picture", "unique_id": f"{node}_picture"}
    if settings.image == "bytes":
        image |= {"image_topic": where.image, "content_type": "image/jpeg"}
    else:
        image |= {"url_topic": where.url}
    out[f"{prefix}/image/{node}/config"] = image
    if settings.camera:
        camera = {**common, "name": "Camera", "unique_id": f"{node}_camera", "topic": where.image}
        out[f"{prefix}/camera/{node}/config"] = camera
    for key, name, extra in SENSORS:
        out[f"{prefix}/sensor/{node}_{key}/config"] = {
            **common,
            **extra,
            "name": name,
            "unique_id": f"{node}_{key}",
            "state_topic": where.state,
            "value_template": f"{{{{ value_json.{key} }}}}",
        }
    return out
