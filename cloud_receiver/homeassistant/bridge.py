"""Publishes Home Assistant discovery, pictures and savings for each stored image.

The pipeline calls :meth:`HomeAssistantBridge.stored` from its worker threads; the bridge's own
thread does the rest, so a slow JPEG or a disconnected broker never holds up ingest. Only the
newest image of each device waits there: an older one would be replaced at once anyway.
Everything goes through the receiver's own MQTT connection (``publish``), since the broker
keys sessions by login and a second connection would push the receiver's off.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from urllib.parse import quote

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.homeassistant.discovery import configs, topics
from cloud_receiver.imaging import convert
from cloud_receiver.store import ImageRecord, Store
from service_common.version import dctlink_version

log = logging.getLogger(__name__)

#: publish(topic, payload, retain)
Publish = Callable[[str, bytes, bool], None]


class HomeAssistantBridge:
    def __init__(self, settings: ReceiverSettings, store: Store, publish: Publish) -> None:
        self._settings = settings
        self._ha = settings.homeassistant
        self._store = store
        self._publish = publish
        self._announced: set[str] = set()
        self._pending: dict[str, ImageRecord] = {}
        self._lock = threading.Lock()
        # Held while a device's messages go out, so a removal's clears never land between
        # (and get undone by) the publishes of an image already being sent.
        self._sending = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="homeassistant", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(10)

    def stored(self, record: ImageRecord) -> None:
        """A new image was stored (any thread); the newest per device is published."""
        with self._lock:
            current = self._pending.get(record.device_id)
            if current is None or record.captured_at >= current.captured_at:
                self._pending[record.device_id] = record
        self._wake.set()

    def forget(self, device_id: str) -> None:
        """Clear the device's retained discovery, picture and state: Home Assistant drops it."""
        with self._sending:
            with self._lock:
                self._pending.pop(device_id, None)
                self._announced.discard(device_id)
            version = dctlink_version()
            for topic in configs(self._ha, self._settings.topic_prefix, device_id, version):
                self._publish(topic, b"", True)
            where = topics(self._settings.topic_prefix, device_id)
            for topic in (where.image, where.url, where.state):
                self._publish(topic, b"", True)

    # -- the bridge's thread ----------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            self._wake.clear()
            while not self._stop.is_set():
                # One device at a time, taken and sent under _sending: a removal then comes
                # wholly before or wholly after, never between taking and sending.
                with self._sending:
                    with self._lock:
                        if not self._pending:
                            break
                        _, record = self._pending.popitem()
                    try:
                        self._send(record)
                    except Exception:  # one bad image must not end the bridge
                        log.exception(
                            "home assistant publish failed",
                            extra={"fields": {"image_id": record.id}},
                        )

    def _send(self, record: ImageRecord) -> None:
        device = record.device_id
        if device not in self._announced:
            version = dctlink_version()
            for topic, config in configs(
                self._ha, self._settings.topic_prefix, device, version
            ).items():
                self._publish(topic, json.dumps(config).encode(), True)
            self._announced.add(device)
        where = topics(self._settings.topic_prefix, device)
        if self._ha.image == "bytes" or self._ha.camera:
            png = self._store.stage_png(record.id, record.best_stage())
            if png is not None:
                jpeg = convert(png, "jpeg", (self._ha.max_width, None))
                self._publish(where.image, jpeg, True)
        if self._ha.image == "url":
            self._publish(where.url, self._url(device, record.id).encode(), True)
        state = {
            "last_seen": record.received_at.isoformat(),
            "captured_at": record.captured_at.isoformat(),
            "image_id": record.id,
            "payload_bytes": record.payload_bytes,
            "jpeg_bytes": record.jpeg_bytes,
            "jpeg_bytes_basis": record.jpeg_bytes_basis,
            "bytes_saved": (
                None if record.jpeg_bytes is None else record.jpeg_bytes - record.payload_bytes
            ),
        }
        self._publish(where.state, json.dumps(state).encode(), True)

    def _url(self, device: str, image_id: str) -> str:
        """The latest URL; the image id in it changes the URL, which is what makes Home
        Assistant fetch again (the route ignores it)."""
        base = (self._ha.base_url or "").rstrip("/")
        url = f"{base}/api/v1/devices/{quote(device, safe='')}/latest?image={image_id}"
        if self._ha.url_key is not None:
            url += "&key=" + quote(self._ha.url_key.get_secret_value(), safe="")
        return url
