"""The process harness that tests, bench and the demo share."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness import Mosquitto, free_port, tcp_open, wait_ready, wait_until


def test_a_broker_starts_stops_and_comes_back_on_the_same_port(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, persistence=True)
    with broker:
        assert tcp_open(broker.port)
        assert broker.url == f"mqtt://127.0.0.1:{broker.port}"
    assert not broker.running
    assert not tcp_open(broker.port)
    broker.start()
    try:
        assert tcp_open(broker.port)
    finally:
        broker.kill()
    assert not broker.running


def test_a_broker_that_cannot_start_says_what_mosquitto_said(tmp_path: Path) -> None:
    broker = Mosquitto(tmp_path, extra=("no_such_option true",))
    with pytest.raises(RuntimeError, match="mosquitto exited") as caught:
        broker.start()
    assert "no_such_option" in str(caught.value)


def test_wait_ready_names_a_child_that_exited_before_it_was_ready() -> None:
    child = subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])
    with pytest.raises(RuntimeError, match="the child exited with status 3"):
        wait_ready(lambda: False, "the child", 10, child)


def test_wait_until_returns_the_condition_when_time_runs_out() -> None:
    assert not wait_until(lambda: False, timeout_s=0.1)
    assert wait_until(lambda: True, timeout_s=0.1)
    assert not tcp_open(free_port())
