"""Shared fixtures: a real mosquitto on a free port, configured in a temporary folder.

``mosquitto`` is one plain broker for the whole session (anonymous, no TLS). Tests that stop the
broker, or need users, an ACL or TLS, ask ``mosquitto_factory`` for their own:

    broker = mosquitto_factory(users={"cam-1": "secret"}, acl="pattern write dctlink/%u/#",
                               tls=True, persistence=True)
    broker.url, broker.tls_url, broker.ca_file, broker.stop(), broker.start()
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest
import trustme

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"


def free_port() -> int:
    """A port the OS just handed out; mosquitto binds it right after (a tiny race we accept)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Mosquitto:
    """One mosquitto process; ``start``/``stop`` may be called repeatedly (same port, same data)."""

    def __init__(
        self,
        workdir: Path,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
    ) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.tls_port = free_port() if tls else None
        self.ca_file: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self.log_file = workdir / "mosquitto.log"
        lines = [
            "per_listener_settings false",
            f"allow_anonymous {str(not users).lower()}",
            f"persistence {str(persistence).lower()}",
            f"persistence_location {workdir}/",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # mosquitto drops root for "mosquitto", who cannot read tmp
        if users:
            passwords = workdir / "passwords"
            passwords.write_text("".join(f"{user}:{pw}\n" for user, pw in users.items()))
            subprocess.run(["mosquitto_passwd", "-U", str(passwords)], check=True)
            lines.append(f"password_file {passwords}")
        if acl is not None:
            (workdir / "acl").write_text(acl + "\n")
            lines.append(f"acl_file {workdir / 'acl'}")
        lines.append(f"listener {self.port} 127.0.0.1")
        if tls:
            lines += self._tls_listener()
        self.config = workdir / "mosquitto.conf"
        self.config.write_text("\n".join(lines) + "\n")

    def _tls_listener(self) -> list[str]:
        ca = trustme.CA()
        server = ca.issue_cert("localhost", "127.0.0.1")
        self.ca_file = self.workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        server.cert_chain_pems[0].write_to_path(str(self.workdir / "server.pem"))
        server.private_key_pem.write_to_path(str(self.workdir / "server.key"))
        return [
            f"listener {self.tls_port} 127.0.0.1",
            f"cafile {self.ca_file}",
            f"certfile {self.workdir / 'server.pem'}",
            f"keyfile {self.workdir / 'server.key'}",
        ]

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def tls_url(self) -> str:
        return f"mqtts://localhost:{self.tls_port}"

    def start(self, timeout_s: float = 10.0) -> None:
        self._process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:  # ready when a TCP connect succeeds, never a sleep
            if self._process.poll() is not None:
                stderr = self._process.stderr.read().decode() if self._process.stderr else ""
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise RuntimeError(f"mosquitto exited: {stderr}{log}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout_s}s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            self._process.wait(10)
        if self._process is not None and self._process.stderr is not None:
            self._process.stderr.close()
        self._process = None


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    broker = Mosquitto(tmp_path_factory.mktemp("mosquitto"))
    broker.start()
    yield broker
    broker.stop()


class MosquittoFactory(Protocol):
    def __call__(
        self,
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
    ) -> Mosquitto: ...


@pytest.fixture
def mosquitto_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MosquittoFactory]:
    brokers: list[Mosquitto] = []

    def make(
        *,
        users: dict[str, str] | None = None,
        acl: str | None = None,
        tls: bool = False,
        persistence: bool = False,
    ) -> Mosquitto:
        broker = Mosquitto(
            tmp_path_factory.mktemp("mosquitto"),
            users=users,
            acl=acl,
            tls=tls,
            persistence=persistence,
        )
        broker.start()
        brokers.append(broker)
        return broker

    yield make
    for broker in brokers:
        broker.stop()
