"""Fan-out of "image stored" events to SSE clients, on the event loop.

The pipeline runs on worker threads and hands each event over with
``loop.call_soon_threadsafe(hub.publish, event)``; every client owns a bounded queue, and a
client too slow to keep up loses its oldest events (counted) rather than holding memory or
slowing anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Event:
    name: str
    data: str  # JSON text


class EventHub:
    def __init__(self, queue_size: int, on_drop: Callable[[], None] = lambda: None) -> None:
        self._queue_size = queue_size
        self._on_drop = on_drop
        self._clients: set[asyncio.Queue[Event | None]] = set()
        self.closed = False

    @property
    def clients(self) -> int:
        return len(self._clients)

    def publish(self, event: Event) -> None:
        """Call on the loop's thread (``call_soon_threadsafe`` from others)."""
        for queue in self._clients:
            if queue.full():
                queue.get_nowait()
                self._on_drop()
            queue.put_nowait(event)

    def close(self) -> None:
        """End every subscription, so streaming responses finish and shutdown is not held up."""
        self.closed = True
        for queue in self._clients:
            with contextlib.suppress(asyncio.QueueEmpty):
                if queue.full():
                    queue.get_nowait()
            queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[asyncio.Queue[Event | None]]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue(self._queue_size)
        if self.closed:
            queue.put_nowait(None)
        self._clients.add(queue)
        try:
            yield queue
        finally:
            self._clients.discard(queue)
