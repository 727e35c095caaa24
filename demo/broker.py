"""The demo's MQTT broker: a private mosquitto with a temporary config, on a local port.

Only mosquitto is used: the receiver's subscriber speaks MQTT 5 (persistent session with
``clean_start=False`` and a session expiry), and the pure-Python brokers on PyPI that run on
Python 3.11 (amqtt 0.12) accept MQTT 3.1.1 only. ``scripts/demo`` installs Debian's mosquitto
when it is missing and it runs as root with apt-get; otherwise it asks the user to.
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
from pathlib import Path

from demo.processes import Child, DemoError

MISSING = (
    "mosquitto is not installed. Install it (Debian/Ubuntu: sudo apt-get install mosquitto;"
    " macOS: brew install mosquitto) and run the demo again. The receiver speaks MQTT 5, so a"
    " pure-Python MQTT 3.1.1 broker cannot stand in."
)


def find_mosquitto() -> Path | None:
    """mosquitto on PATH, or where Debian puts it (/usr/sbin is not on a user's PATH)."""
    found = shutil.which("mosquitto")
    if found:
        return Path(found)
    for candidate in (Path("/usr/sbin/mosquitto"), Path("/usr/local/sbin/mosquitto")):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def mosquitto_config(port: int, workdir: Path) -> str:
    """A loopback-only, anonymous broker with persistence in ``workdir`` (sessions survive)."""
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {workdir}/",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
        "log_type information",
    ]
    if sys.platform != "win32" and os.geteuid() == 0:
        # Started as root, mosquitto switches to the user "mosquitto", who cannot write here.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
    return "\n".join(lines) + "\n"


def start_mosquitto(port: int, workdir: Path, log_file: Path) -> Child:
    """Write the config into ``workdir`` and start mosquitto; the caller waits for the port."""
    binary = find_mosquitto()
    if binary is None:
        raise DemoError(MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "mosquitto.conf"
    config.write_text(mosquitto_config(port, workdir))
    return Child("broker (mosquitto)", [str(binary), "-c", str(config)], log_file)
