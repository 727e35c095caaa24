"""A test subscriber: collects what a device publishes, reassembling chunks."""

from __future__ import annotations

import json
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from shared.chunking import Reassembler
from shared.codec import Decoded, decode


class Collector:
    """Subscribes to ``<prefix>/<device>/#``; ``payloads`` are whole images (chunked or not).

    ``persistent`` keeps a session (fixed client id, clean session off), so the broker
    (with persistence on) keeps the subscription and queues messages across its own restart.
    """

    def __init__(
        self,
        url_port: int,
        topic: str,
        *,
        persistent: bool = False,
        username: str | None = None,
        password: str | None = None,
        ca_file: Path | None = None,
    ) -> None:
        self.payloads: list[bytes] = []
        self.status: list[dict[str, Any]] = []
        self.chunk_messages = 0
        self.barriers = 0
        self._reassembler = Reassembler()
        self._lock = threading.RLock()
        self._subscribed = threading.Event()
        self._topic = topic
        client_id = f"collector-{uuid.uuid4().hex[:8]}"
        # MQTT 3.1.1: clean_session=False is all a persistent session needs there.
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=not persistent,
        )
        if username:
            self._client.username_pw_set(username, password)
        if ca_file:
            self._client.tls_set(ca_certs=str(ca_file), cert_reqs=ssl.CERT_REQUIRED)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        self._client.reconnect_delay_set(1, 1)
        self._client.connect("localhost" if ca_file else "127.0.0.1", url_port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if not reason_code.is_failure:
            client.subscribe(self._topic, qos=1)
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        with self._lock:
            if message.topic.endswith("/status"):
                self.status.append(json.loads(message.payload))
            elif message.topic.endswith("/barrier"):
                self.barriers += 1  # the sender's proof that the broker saved what came before
            elif message.topic.endswith("/chunk"):
                self.chunk_messages += 1
                whole = self._reassembler.add(bytes(message.payload))
                if whole is not None:
                    self.payloads.append(whole)
            else:
                self.payloads.append(bytes(message.payload))

    def decoded(self) -> dict[uuid.UUID, Decoded]:
        with self._lock:
            return {d.image_id: d for d in (decode(p) for p in self.payloads)}

    def wait_for(self, condition: Callable[[Collector], bool], timeout_s: float = 20) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if condition(self):
                    return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
