"""What a child process costs, read from Linux's /proc: memory in MB, CPU in seconds."""

from __future__ import annotations

import os
import re
from pathlib import Path


def _status_mb(pid: int, field: str) -> float:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    if match is None:
        raise ValueError(f"process {pid} reports no {field}")
    return int(match.group(1)) / 1024


def peak_rss_mb(pid: int) -> float:
    """The most resident memory the process has held so far (``VmHWM``)."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """The resident memory the process holds now (``VmRSS``)."""
    return _status_mb(pid, "VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
