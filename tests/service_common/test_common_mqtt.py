"""A client from build_client reaches a broker that wants a password and TLS."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from conftest import MosquittoFactory
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import SecretStr

from service_common.broker import BrokerSettings
from service_common.mqtt import build_client

pytestmark = pytest.mark.integration


def _connack(broker: BrokerSettings) -> ReasonCode | None:
    """The CONNACK's reason code, or None when no CONNACK came within a few seconds."""
    codes: list[ReasonCode] = []
    answered = threading.Event()
    client = build_client(broker, f"t-{uuid.uuid4().hex[:8]}")

    def on_connect(
        client: mqtt.Client, userdata: Any, flags: Any, code: ReasonCode, _: Any
    ) -> None:
        codes.append(code)
        answered.set()

    client.on_connect = on_connect
    try:
        client.connect(broker.host, broker.port, broker.keepalive_s)
    except OSError:
        return None
    client.loop_start()
    try:
        answered.wait(10)
    finally:
        client.disconnect()
        client.loop_stop()
    return codes[0] if codes else None


def test_credentials_and_ca_are_applied(mosquitto_factory: MosquittoFactory) -> None:
    server = mosquitto_factory(users={"cam-1": "secret"}, tls=True)
    good = BrokerSettings(
        url=server.tls_url, username="cam-1", password=SecretStr("secret"), ca_file=server.ca_file
    )
    code = _connack(good)
    assert code is not None
    assert code.value == 0
    bad = good.model_copy(update={"password": None})
    code = _connack(bad)
    assert code is not None
    assert code.is_failure
