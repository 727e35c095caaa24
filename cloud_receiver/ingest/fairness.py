"""Per-device fairness, as pure parts: a rate limiter and a round-robin work queue.

One device sending faster than its share must not delay the others. Two parts do that:

- :class:`DeviceLimiter`: token buckets per device, in images and in bytes. A spool draining
  after an outage fits in the burst; a flood past the sustained rate is refused.
- :class:`FairQueue`: jobs queued per device and served round-robin, a device with fewer jobs
  running first, so a worker that comes free takes the image of a device that is waiting
  rather than the next of the flood. At most ``workers`` jobs run, so another device's image
  waits for one job at most.

Both are thread-safe and take an injectable clock, so tests need no sleeps.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass
class _Bucket:
    images: float
    bytes: float
    updated: float


class DeviceLimiter:
    """Token buckets per device: ``images_per_s`` and ``bytes_per_s`` sustained, with bursts.

    Remembers at most ``max_devices`` devices (least recently seen forgotten first, which only
    ever gives a forgotten device a full bucket again).
    """

    def __init__(
        self,
        *,
        images_per_s: float,
        burst_images: int,
        bytes_per_s: float,
        burst_bytes: int,
        max_devices: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._images_per_s = images_per_s
        self._burst_images = float(burst_images)
        self._bytes_per_s = bytes_per_s
        self._burst_bytes = float(burst_bytes)
        self._max_devices = max_devices
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, device_id: str, size: int) -> str | None:
        """Charge one image of ``size`` bytes; None when allowed, else why it is refused."""
        now = self._clock()
        with self._lock:
            bucket = self._buckets.pop(device_id, None)
            if bucket is None:
                bucket = _Bucket(self._burst_images, self._burst_bytes, now)
            elapsed = max(now - bucket.updated, 0.0)
            bucket.images = min(self._burst_images, bucket.images + elapsed * self._images_per_s)
            bucket.bytes = min(self._burst_bytes, bucket.bytes + elapsed * self._bytes_per_s)
            bucket.updated = now
            self._buckets[device_id] = bucket
            while len(self._buckets) > self._max_devices:
                self._buckets.popitem(last=False)
            if bucket.images < 1:
                return f"device {device_id!r} is over its rate of {self._images_per_s:g} images/s"
            if bucket.bytes < size:
                return (
                    f"device {device_id!r} is over its rate of {self._bytes_per_s:.0f} bytes/s"
                    f" (burst {self._burst_bytes:.0f})"
                )
            bucket.images -= 1
            bucket.bytes -= size
            return None


class QueueClosedError(Exception):
    """The queue was closed while a worker waited on it."""


class FairQueue(Generic[T]):
    """Jobs per device, served round-robin among the devices with the fewest jobs running."""

    def __init__(self) -> None:
        self._waiting: OrderedDict[str, deque[T]] = OrderedDict()
        self._running: dict[str, int] = {}
        self._size = 0
        self._closed = False
        self._ready = threading.Condition()

    def put(self, device_id: str, job: T) -> None:
        with self._ready:
            self._waiting.setdefault(device_id, deque()).append(job)
            self._size += 1
            self._ready.notify()

    def get(self, timeout: float | None = None) -> tuple[str, T] | None:
        """The next job and its device; None on timeout. Raises QueueClosedError once closed.

        The caller must call :meth:`done` with the device once the job is finished.
        """
        with self._ready:
            if not self._ready.wait_for(lambda: self._size > 0 or self._closed, timeout):
                return None
            if self._closed:
                raise QueueClosedError
            # Order of _waiting is the round-robin: a device served goes to the back.
            device_id = min(self._waiting, key=lambda d: self._running.get(d, 0))
            jobs = self._waiting.pop(device_id)
            job = jobs.popleft()
            if jobs:
                self._waiting[device_id] = jobs
            self._size -= 1
            self._running[device_id] = self._running.get(device_id, 0) + 1
            return device_id, job

    def done(self, device_id: str) -> None:
        with self._ready:
            left = self._running.get(device_id, 0) - 1
            if left > 0:
                self._running[device_id] = left
            else:
                self._running.pop(device_id, None)

    def waiting(self, device_id: str | None = None) -> int:
        """Jobs waiting, for one device or over all."""
        with self._ready:
            if device_id is None:
                return self._size
            return len(self._waiting.get(device_id, ()))

    def close(self) -> list[T]:
        """Wake every waiting worker with QueueClosedError; returns the jobs never started."""
        with self._ready:
            self._closed = True
            left = [job for jobs in self._waiting.values() for job in jobs]
            self._waiting.clear()
            self._size = 0
            self._ready.notify_all()
            return left
