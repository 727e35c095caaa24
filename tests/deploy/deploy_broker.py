"""The broker of deploy/, run for real: mosquitto with deploy/mosquitto/mosquitto.conf, the shipped
ACL and a password file made by make-passwords.sh; only paths and the port move into a temporary
folder. Plus a small paho client helper for the tests that log in to it.
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from harness import find_mosquitto, free_port, tcp_open, wait_ready

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
ACL = DEPLOY / "mosquitto" / "acl"
MOSQUITTO = str(find_mosquitto() or "/usr/sbin/mosquitto")
CONFIG = DEPLOY / "mosquitto" / "mosquitto.conf"
DEVICE = "edge-demo"  # the compose demo device


def acl_users() -> list[str]:
    """The users the shipped ACL names in ``user`` lines, in file order."""
    return [line.split()[1] for line in ACL.read_text().splitlines() if line.startswith("user ")]


class Broker:
    def __init__(
        self, port: int, secrets: Path, log: Path, process: subprocess.Popen[bytes]
    ) -> None:
        self.port = port
        self.secrets = secrets
        self.log = log
        self.process = process

    def password(self, user: str) -> str:
        return (self.secrets / f"{user}.password").read_text().strip()

    def kill(self) -> None:
        """kill -9: no shutdown save, what is not on disk yet is gone."""
        self.process.kill()
        self.process.wait(10)


@contextmanager
def deploy_broker(work: Path, config: Path = CONFIG, port: int | None = None) -> Iterator[Broker]:
    """mosquitto on the shipped config, with a login for every ACL user and the demo device.

    Its persistence file is ``work/mosquitto.db``: a second broker on the same ``work`` (after
    ``Broker.kill``, say) restores what the first saved. ``config`` replaces the shipped file,
    for a test to show what an older version of it did.
    """
    secrets = work / "secrets"
    subprocess.run(
        ["sh", str(DEPLOY / "mosquitto" / "make-passwords.sh"), str(secrets), *acl_users(), DEVICE],
        check=True,
        capture_output=True,
    )
    port = port or free_port()
    log = work / "mosquitto.log"
    replaced = {
        "password_file": str(secrets / "passwords"),
        "acl_file": str(ACL),
        "persistence_location": f"{work}/",
        "listener": f"{port} 127.0.0.1",
        "log_dest": f"file {log}",
    }
    lines = []
    for line in config.read_text().splitlines():
        key = line.partition(" ")[0]
        lines.append(f"{key} {replaced[key]}" if key in replaced else line)
    if os.geteuid() == 0:
        lines.append("user root")  # mosquitto drops root for "mosquitto", who cannot read tmp
    config = work / "mosquitto.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], stderr=subprocess.PIPE)
    try:
        wait_ready(lambda: tcp_open(port), "mosquitto", 10, process)
    except RuntimeError as error:
        process.kill()
        _, err = process.communicate()
        text = log.read_text() if log.exists() else ""
        raise RuntimeError(f"mosquitto refused the deploy/ config: {err.decode()}{text}") from error
    try:
        yield Broker(port, secrets, log, process)
    finally:
        process.terminate()
        process.wait(10)
        assert process.stderr is not None
        process.stderr.close()


class Client:
    """One paho client (MQTT 5) that records its CONNACKs, disconnects and messages."""

    def __init__(self, broker: Broker, user: str, client_id: str | None = None) -> None:
        self.client_id = client_id or f"{user}-{uuid.uuid4().hex[:8]}"
        self.paho = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self.paho.username_pw_set(user, broker.password(user))
        self.paho.reconnect_delay_set(1, 1)
        self._broker = broker
        self.codes: list[ReasonCode] = []
        self.session_present: list[bool] = []
        self.disconnects: list[ReasonCode] = []
        self.messages: list[mqtt.MQTTMessage] = []
        self._connected = threading.Event()
        self.paho.on_connect = self._on_connect
        self.paho.on_disconnect = self._on_disconnect
        self.paho.on_message = lambda c, u, message: self.messages.append(message)

    def _on_connect(
        self, c: mqtt.Client, u: object, flags: mqtt.ConnectFlags, code: ReasonCode, p: object
    ) -> None:
        self.codes.append(code)
        self.session_present.append(flags.session_present)
        self._connected.set()

    def _on_disconnect(
        self, c: mqtt.Client, u: object, f: object, code: ReasonCode, p: object
    ) -> None:
        self.disconnects.append(code)

    def connect(self, *, clean_start: bool = True, session_expiry_s: int = 0) -> ReasonCode:
        """Connect and wait for the CONNACK; its reason code (failures included)."""
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = session_expiry_s
        self._connected.clear()
        self.paho.connect(
            "127.0.0.1", self._broker.port, clean_start=clean_start, properties=properties
        )
        self.paho.loop_start()
        assert self._connected.wait(10), "no CONNACK"
        return self.codes[-1]

    def subscribe(self, topic: str) -> None:
        acked = threading.Event()
        self.paho.on_subscribe = lambda *args: acked.set()
        result, _ = self.paho.subscribe(topic, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert acked.wait(10), "no SUBACK"

    def publish(self, topic: str, payloads: list[bytes]) -> None:
        """QoS 1, each acknowledged by the broker before this returns."""
        infos = [self.paho.publish(topic, payload, qos=1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(10)
            assert info.is_published()

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()
