"""The ``http`` source: polls a snapshot URL, as IP cameras offer (``/snapshot.jpg``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx

from edge_sender.sources.base import Frame, SourceError, frame_from_bytes

log = logging.getLogger(__name__)


def http_source(
    url: str,
    *,
    interval_s: float = 5.0,
    timeout_s: float = 10.0,
    count: int = 0,
    stop: threading.Event | None = None,
    auth: tuple[str, str] | None = None,
) -> Iterator[Frame]:
    """One frame per poll; a failed poll is logged and retried at the next tick, never fatal,
    because cameras reboot and Wi-Fi drops while the sender must keep running."""
    stop = stop or threading.Event()
    taken = 0
    with httpx.Client(timeout=timeout_s, auth=auth, follow_redirects=True) as client:
        while not stop.is_set() and (count == 0 or taken < count):
            started = time.monotonic()
            captured = datetime.now(UTC)
            try:
                response = client.get(url)
                response.raise_for_status()
                frame = frame_from_bytes(response.content, f"http:{url}", captured)
            except (httpx.HTTPError, SourceError) as error:
                log.warning("snapshot failed", extra={"fields": {"url": url, "error": str(error)}})
            else:
                taken += 1
                yield frame
            if stop.wait(max(0.0, interval_s - (time.monotonic() - started))):
                break
