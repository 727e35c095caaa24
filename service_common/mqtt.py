"""A paho client with the broker's credentials and TLS applied; the one module here that knows paho.

Each service wraps the client in its own small class (the sender's publisher, the receiver's
subscriber) and sets its callbacks, session and connect call there.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from service_common.broker import BrokerSettings


def build_client(
    broker: BrokerSettings,
    client_id: str,
    *,
    protocol: MQTTProtocolVersion = MQTTProtocolVersion.MQTTv5,
    clean_session: bool | None = None,
    manual_ack: bool = False,
) -> mqtt.Client:
    """A client for ``broker`` (callback API version 2), not yet connected."""
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        clean_session=clean_session,
        manual_ack=manual_ack,
    )
    if broker.username is not None:
        password = broker.password.get_secret_value() if broker.password else None
        client.username_pw_set(broker.username, password)
    if broker.use_tls:
        certificate = broker.client_certificate
        client.tls_set(
            ca_certs=str(broker.ca_file) if broker.ca_file else None,
            certfile=str(certificate[0]) if certificate else None,
            keyfile=str(certificate[1]) if certificate else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(broker.tls_insecure)
    return client
