"""Waiting for a condition by polling (never a fixed sleep), and stopping a child process."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable


def wait_until(
    condition: Callable[[], bool], timeout_s: float = 20.0, interval_s: float = 0.05
) -> bool:
    """Poll ``condition`` until it is true or ``timeout_s`` has passed; its last value."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval_s)
    return condition()


def wait_ready(
    condition: Callable[[], bool],
    what: str,
    timeout_s: float,
    process: subprocess.Popen[bytes] | None = None,
    interval_s: float = 0.05,
) -> None:
    """Like :func:`wait_until`, but raise RuntimeError naming ``what`` when time runs out or
    ``process`` (the child that should become ready) exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited with status {process.returncode}")
        if condition():
            return
        time.sleep(interval_s)
    raise RuntimeError(f"{what} was not ready within {timeout_s:.0f} s")


def stop_process(process: subprocess.Popen[bytes], timeout_s: float = 15.0) -> int:
    """SIGTERM, then SIGKILL if it is still running after ``timeout_s``; the exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
    return process.wait()
