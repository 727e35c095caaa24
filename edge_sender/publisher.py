"""The MQTT adapter: the only sender module that knows paho (docs/architecture.md sections 1 and 4).

paho keeps unacknowledged messages in memory only, so this class does not try to be durable:
it reports each PUBACK (with its reason code) to ``on_ack`` and the sender's spool decides
what is safe to forget. It counts as connected only after a CONNACK with reason code 0.
"""

from __future__ import annotations

import contextlib
import json
import logging
import ssl
import threading
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_sender.config import EdgeSettings
from edge_sender.reasons import PERMANENT_CONNACK, connack_is_permanent
from service_common.mqtt import build_client

log = logging.getLogger(__name__)

# Said once at start: nothing later in a 3.1.1 session can reveal an ACL denial.
ACL_BLIND_WARNING = (
    "MQTT 3.1.1: the broker acknowledges a publish its ACL denies exactly like a delivered one,"
    " so such an image leaves the spool undelivered and unreported; use --broker-protocol 5"
    " where the broker supports it, and make sure the ACL lets this user write its topics"
)


class PublisherError(RuntimeError):
    """The broker refused us in a way retrying will not fix; ``code`` is its reason code."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def puback_reason(code: int) -> str:
    """A PUBACK reason code in words, for logs and errors."""
    # paho names only the codes MQTT 5 allows in a PUBACK; a log line must not fail on others.
    try:
        return str(ReasonCode(PacketTypes.PUBACK, identifier=code))
    except ValueError:
        return f"reason code 0x{code:02X}"


def _reason_text(code: ReasonCode | int) -> str:
    return str(code) if isinstance(code, ReasonCode) else mqtt.error_string(code)


class MqttPublisher:
    """publish / close over one paho client; reconnects with exponential backoff."""

    def __init__(
        self,
        settings: EdgeSettings,
        on_ack: Callable[[int, int], None],
        status: Callable[[], dict[str, Any]] = dict,
    ) -> None:
        self._settings = settings
        self._broker = settings.broker
        self._on_ack = on_ack
        self._status = status
        self._stop = threading.Event()
        self.connected = threading.Event()
        self.generation = 0  # bumped on every accepted CONNACK; the sender re-sends on change
        self.fatal: PublisherError | None = None
        self.last_error: str | None = None
        self._thread: threading.Thread | None = None
        self._client = self._build_client()

    def _build_client(self) -> mqtt.Client:
        broker = self._broker
        v5 = broker.protocol == "5"
        client = build_client(
            broker,
            self._settings.device_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            # The spool is our durability; a broker-side session would only add duplicates.
            clean_session=None if v5 else True,
        )
        client.will_set(
            self._settings.topic("status"),
            json.dumps(
                {
                    "state": "offline",
                    "device_id": self._settings.device_id,
                    "reason": "connection lost",
                }
            ),
            qos=1,
            retain=True,
        )
        client.reconnect_delay_set(
            max(1, int(broker.reconnect_min_s)), max(1, int(broker.reconnect_max_s))
        )
        client.max_inflight_messages_set(broker.max_inflight)
        client.max_queued_messages_set(0)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background; images keep spooling while the broker is away."""
        if self._broker.protocol == "3.1.1":
            log.warning(
                ACL_BLIND_WARNING,
                extra={"fields": {"broker": self._broker.url, "user": self._broker.username}},
            )
        self._thread = threading.Thread(
            target=self._first_connect, name="mqtt-connect", daemon=True
        )
        self._thread.start()

    def _first_connect(self) -> None:
        # paho's own loop retries later reconnects, but it swallows the reason a first attempt
        # failed; doing the first one ourselves lets the logs say "certificate verify failed".
        broker = self._broker
        delay = broker.reconnect_min_s
        while not self._stop.is_set():
            try:
                if broker.protocol == "5":
                    self._client.connect(
                        broker.host, broker.port, broker.keepalive_s, clean_start=True
                    )
                else:
                    self._client.connect(broker.host, broker.port, broker.keepalive_s)
            except ssl.SSLCertVerificationError as error:
                self._fail(
                    PublisherError(
                        f"TLS: the broker's certificate is not trusted ({error.verify_message});"
                        " pass the CA with --broker-ca-file"
                    )
                )
                return
            except OSError as error:
                self.last_error = f"{type(error).__name__}: {error}"
                log.warning(
                    "broker unreachable, retrying",
                    extra={
                        "fields": {
                            "broker": broker.url,
                            "error": self.last_error,
                            "retry_in_s": delay,
                        }
                    },
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, broker.reconnect_max_s)
                continue
            self._client.loop_start()
            return

    def _fail(self, error: PublisherError) -> None:
        self.fatal = error
        self.last_error = str(error)
        log.error(str(error), extra={"fields": {"code": error.code}})
        self._stop.set()

    def close(self, timeout_s: float = 3.0) -> None:
        """Publish the retained offline status (a clean exit sends no Last Will), disconnect."""
        self._stop.set()
        if self.connected.is_set():
            info = self._client.publish(
                self._settings.topic("status"),
                json.dumps({"state": "offline", "reason": "stopped", **self._status_body()}),
                qos=1,
                retain=True,
            )
            # If the broker went away meanwhile, the Last Will says offline instead.
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(timeout_s)
        # Join the first-connect thread before stopping the loop, so a loop it starts during
        # close is stopped too instead of outliving the sender.
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._client.disconnect()
        self._client.loop_stop()

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes) -> int:
        """Queue one QoS 1 message; returns its message id for the PUBACK that will follow."""
        info = self._client.publish(topic, payload, qos=1, retain=False)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise PublisherError(
                f"publish to {topic} failed: {mqtt.error_string(info.rc)}", info.rc
            )
        return info.mid

    def publish_status(self) -> None:
        if self.connected.is_set():
            self._client.publish(
                self._settings.topic("status"),
                json.dumps({"state": "online", **self._status_body()}),
                qos=1,
                retain=True,
            )

    def _status_body(self) -> dict[str, Any]:
        return {"device_id": self._settings.device_id, **self._status()}

    # -- paho callbacks (paho's network thread) --------------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            code = reason_code.value
            if connack_is_permanent(code):
                self._fail(
                    PublisherError(
                        f"broker refused the connection: {reason_code}; {PERMANENT_CONNACK[code]}",
                        code,
                    )
                )
                client.disconnect()
            else:
                # Server busy, unavailable, quota or rate exceeded: paho reconnects after
                # reconnect_min_s, doubling up to reconnect_max_s.
                self.last_error = f"connection refused for now: {reason_code}"
                log.warning(
                    "broker refused the connection for now, retrying",
                    extra={"fields": {"reason": str(reason_code), "code": code}},
                )
            return
        self.generation += 1
        self.connected.set()
        log.info(
            "connected",
            extra={"fields": {"broker": self._broker.url, "device_id": self._settings.device_id}},
        )
        self.publish_status()

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
        if was_connected and not self._stop.is_set():
            self.last_error = f"disconnected: {reason_code}"
            log.warning(
                "disconnected, reconnecting", extra={"fields": {"reason": str(reason_code)}}
            )

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._on_ack(mid, reason_code.value)
