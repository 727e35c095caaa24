"""The demo's MQTT broker on a local port: a private mosquitto, or embedded amqtt without it.

mosquitto is used when it is installed (temporary config, persistence in the data folder).
Otherwise the demo runs amqtt, a pure-Python broker from the ``demo`` extra, as a child
process. amqtt speaks MQTT 3.1.1 only, so with it the sender and the receiver run with
``protocol`` 3.1.1 (the receiver then keeps its session with clean session off), and both log
in with a user name: amqtt queues QoS 1 messages for an offline session only when its client
is not anonymous. amqtt keeps sessions in memory and does not redeliver a message that was
sent but not acknowledged when its client went away; both are fine for a demo on one machine.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from demo.processes import Child, DemoError
from harness import find_mosquitto, mosquitto_config

#: ``--broker``: auto picks mosquitto when installed, else the embedded broker.
BrokerChoice = Literal["auto", "mosquitto", "embedded"]

MOSQUITTO_MISSING = (
    "mosquitto is not installed. Install it (Debian/Ubuntu: sudo apt-get install mosquitto;"
    " macOS: brew install mosquitto), or run the demo with --broker embedded."
)
EMBEDDED_MISSING = (
    "neither mosquitto nor the embedded broker (the Python package amqtt) is installed."
    " Install the demo extra (scripts/bootstrap demo, or pip install -e '.[demo]') or"
    " mosquitto (Debian/Ubuntu: sudo apt-get install mosquitto), and run the demo again."
)


@dataclass(frozen=True)
class Broker:
    """The started broker and what its clients need to say to it."""

    child: Child
    kind: Literal["mosquitto", "embedded"]

    @property
    def description(self) -> str:
        return "mosquitto" if self.kind == "mosquitto" else "amqtt (embedded, MQTT 3.1.1)"

    def client_env(self, env_prefix: str, *, username: str) -> dict[str, str]:
        """Broker settings a service (``DCTLINK_EDGE__``...) needs for this broker, if any.

        None for mosquitto (the services' defaults, MQTT 5, apply); amqtt needs MQTT 3.1.1
        and a user name, since it keeps no offline queue for an anonymous client.
        """
        if self.kind == "mosquitto":
            return {}
        return {
            f"{env_prefix}BROKER__PROTOCOL": "3.1.1",
            f"{env_prefix}BROKER__USERNAME": username,
        }


def embedded_available() -> bool:
    """Whether amqtt (the embedded broker) can be imported by this Python."""
    return importlib.util.find_spec("amqtt") is not None


def broker_config(port: int, workdir: Path) -> str:
    """The demo's mosquitto: loopback, anonymous, persistence in ``workdir`` (sessions survive)."""
    lines = mosquitto_config(port, workdir, persistence=True, extra=("log_type information",))
    return "\n".join(lines) + "\n"


def amqtt_config(port: int) -> str:
    """amqtt's YAML config (written as JSON, which YAML reads): loopback, any user name.

    ``allow_anonymous: false`` still admits every client that sends a user name (there is no
    password check); it only makes sessions non-anonymous, so QoS 1 messages for an offline
    persistent session are queued.
    """
    config = {
        "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{port}"}},
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False}},
    }
    return json.dumps(config, indent=2) + "\n"


def start_mosquitto(port: int, workdir: Path, log_file: Path) -> Child:
    """Write the config into ``workdir`` and start mosquitto; the caller waits for the port."""
    binary = find_mosquitto()
    if binary is None:
        raise DemoError(MOSQUITTO_MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    config.write_text(broker_config(port, workdir))
    return Child("broker (mosquitto)", [str(binary), "-c", str(config)], log_file)


def start_embedded(port: int, workdir: Path, log_file: Path) -> Child:
    """Write amqtt's config into ``workdir`` and run amqtt's broker with this Python."""
    if not embedded_available():
        raise DemoError(EMBEDDED_MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "amqtt.yaml"
    config.write_text(amqtt_config(port))
    argv = [sys.executable, "-m", "amqtt.scripts.broker_script", "-c", str(config)]
    return Child("broker (amqtt)", argv, log_file)


def start_broker(choice: BrokerChoice, port: int, workdir: Path, log_file: Path) -> Broker:
    """mosquitto when chosen or (auto) installed, else the embedded broker."""
    if choice == "mosquitto" or (choice == "auto" and find_mosquitto() is not None):
        return Broker(start_mosquitto(port, workdir, log_file), "mosquitto")
    if choice == "auto" and not embedded_available():
        raise DemoError(EMBEDDED_MISSING)
    return Broker(start_embedded(port, workdir, log_file), "embedded")
