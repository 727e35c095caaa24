"""Child processes of the demo: start with a log file, wait until ready, stop in reverse order.

Each child runs in its own process group, so a Ctrl-C in the terminal reaches the demo only and
the demo decides the order: the sender first, then the receiver, then the broker.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from harness import free_port


class DemoError(Exception):
    """Something the demo needs failed; the message says what and where to look."""


def pick_port(preferred: int, host: str = "127.0.0.1", tries: int = 50) -> int:
    """``preferred`` or the next free port above it; 0 asks the OS for any free port."""
    if preferred == 0:
        return free_port(host)
    for port in range(preferred, min(preferred + tries, 65536)):
        with socket.socket() as probe:
            try:
                probe.bind((host, port))
            except OSError:
                continue
            return port
    raise DemoError(f"no free port in {preferred}..{preferred + tries - 1} on {host}")


class Child:
    """One service of the demo, its output going to ``log_file``."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_file = log_file
        log_file.parent.mkdir(parents=True, exist_ok=True)
        with log_file.open("ab") as log:
            self.process = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(env) if env is not None else None,
                process_group=0,
            )

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log_file.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def died(self) -> DemoError:
        """The error to raise when this child exited while it should still run."""
        return DemoError(
            f"{self.name} exited with code {self.process.returncode}; the end of"
            f" {self.log_file}:\n{self.log_tail()}"
        )

    def stopped_cleanly(self) -> bool:
        """Exited 0, or re-raised our SIGTERM after a graceful shutdown (as uvicorn does)."""
        return self.process.returncode in (0, -signal.SIGTERM)

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after ``timeout_s``; the exit code."""
        if self.running:
            self.process.terminate()
            try:
                return self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()


def stop_all(children: Sequence[Child], timeout_s: float = 10.0) -> list[Child]:
    """Stop ``children``, last started first; those that did not stop cleanly."""
    for child in reversed(children):
        child.stop(timeout_s)
    return [child for child in children if not child.stopped_cleanly()]


def wait_for_tcp(
    child: Child, host: str, port: int, timeout_s: float, stop: threading.Event
) -> None:
    """Return once ``host:port`` accepts a connection (polling, never a fixed sleep)."""
    deadline = time.monotonic() + timeout_s
    while not stop.is_set():
        if not child.running:
            raise child.died()
        try:
            socket.create_connection((host, port), timeout=0.5).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise DemoError(
                    f"{child.name} did not listen on {host}:{port} within {timeout_s:.0f} s"
                ) from None
            stop.wait(0.05)


def get_json(url: str, timeout_s: float = 5.0) -> tuple[int, object]:
    """GET ``url``: the status code and the decoded JSON body (error statuses included)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return int(response.status), json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read() or b"null")


def get_text(url: str, timeout_s: float = 5.0) -> str:
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        return bytes(response.read()).decode()


def wait_for_ready(child: Child, base_url: str, timeout_s: float, stop: threading.Event) -> None:
    """Return once ``GET /readyz`` says ready (broker connected, store writable)."""
    deadline = time.monotonic() + timeout_s
    last: object = "no answer yet"
    while not stop.is_set():
        if not child.running:
            raise child.died()
        try:
            status, body = get_json(f"{base_url}/readyz", timeout_s=2.0)
            if status == 200 and isinstance(body, dict) and body.get("ready"):
                return
            last = body
        except (OSError, ValueError) as error:
            last = error
        if time.monotonic() > deadline:
            raise DemoError(f"{child.name} not ready within {timeout_s:.0f} s: {last}")
        stop.wait(0.2)


def child_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """This process's environment with ``overrides`` on top (a user's DCTLINK_... still apply)."""
    return {**os.environ, **overrides}
