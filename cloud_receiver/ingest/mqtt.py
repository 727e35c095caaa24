"""The MQTT adapter: the only receiver module that knows paho (docs/architecture.md, 1 and 4).

A persistent session so the broker queues images while we are away: a fixed client id and, with
MQTT 5, clean start off and a session expiry > 0; with MQTT 3.1.1, clean session off (how long
the broker keeps that session is its own setting, e.g. mosquitto's persistent_client_expiration).
Acknowledgements are manual: ``handler`` gets an ``ack`` callable and calls it once a message is
dealt with (stored, a duplicate, or rejected), so an image in a worker's hands when the process
dies is delivered again on the next session. The client counts as connected only after a
CONNACK with reason code 0.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from cloud_receiver.config import BrokerSettings
from service_common.mqtt import build_client

log = logging.getLogger(__name__)

#: handler(topic, payload, ack); runs on paho's network thread, so it must not block long.
Handler = Callable[[str, bytes, Callable[[], None]], None]


class MqttSubscriber:
    """subscribe / close over one paho client; paho's loop reconnects on its own."""

    def __init__(self, broker: BrokerSettings, topics: list[str], handler: Handler) -> None:
        self._broker = broker
        self._topics = topics
        self._handler = handler
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._closing = threading.Event()
        self._v5 = broker.protocol == "5"
        self._client = self._build_client()

    def _build_client(self) -> mqtt.Client:
        client = build_client(
            self._broker,
            self._broker.client_id,
            protocol=mqtt.MQTTv5 if self._v5 else mqtt.MQTTv311,
            clean_session=None if self._v5 else False,
            manual_ack=True,
        )
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background; paho retries until the broker answers."""
        broker = self._broker
        if self._v5:
            # paho's Properties has no annotations.
            properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            properties.SessionExpiryInterval = broker.session_expiry_s
            self._client.connect_async(
                broker.host,
                broker.port,
                broker.keepalive_s,
                clean_start=False,
                properties=properties,
            )
        else:  # 3.1.1: the client was built with clean_session=False
            self._client.connect_async(broker.host, broker.port, broker.keepalive_s)
        self._client.loop_start()

    def publish(self, topic: str, payload: bytes, retain: bool) -> None:
        """QoS 1 on this connection (the Home Assistant bridge); paho queues it while the
        broker is away, and drops it if this process ends first (the bridge republishes
        with the next image)."""
        self._client.publish(topic, payload, qos=1, retain=retain)

    def stop_receiving(self) -> None:
        """Leave messages that arrive from now on unacknowledged: the next session gets them."""
        self._closing.set()

    def close(self) -> None:
        """Disconnect normally; the session (and what the broker queues for it) lives on."""
        self._closing.set()
        self._client.disconnect()
        self._client.loop_stop()
        self.connected.clear()

    # -- paho callbacks (paho's network thread) ------------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            self.last_error = f"broker refused the connection: {reason_code}"
            log.warning(self.last_error, extra={"fields": {"broker": self._broker.url}})
            return
        client.subscribe([(topic, 1) for topic in self._topics])
        self.connected.set()
        self.last_error = None
        log.info(
            "connected",
            extra={
                "fields": {
                    "broker": self._broker.url,
                    "session_present": flags.session_present,
                    "topics": self._topics,
                }
            },
        )

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.last_error = "broker unreachable"
        log.warning("broker unreachable, retrying", extra={"fields": {"broker": self._broker.url}})

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if was_connected and not self._closing.is_set():
            self.last_error = f"disconnected: {reason_code}"
            log.warning("disconnected, reconnecting", extra={"fields": {"reason": self.last_error}})

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        if self._closing.is_set():
            return
        mid, qos = message.mid, message.qos

        def ack() -> None:
            client.ack(mid, qos)

        self._handler(message.topic, bytes(message.payload), ack)
