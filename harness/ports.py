"""Loopback ports: one the OS hands out, and whether something listens on one."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port the OS just handed out; the child binds it right after (a tiny race we accept)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def tcp_open(port: int, host: str = "127.0.0.1", timeout_s: float = 0.2) -> bool:
    """Whether ``host:port`` accepts a TCP connection now."""
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
    except OSError:
        return False
    return True
