"""Ingest as a running service: MQTT messages through the inbox onto fair worker threads.

paho's network thread does only cheap things: it parses the topic, records status,
reassembles chunks, charges the device's rate (:class:`.fairness.DeviceLimiter`) and writes
each whole payload to the inbox (:mod:`.inbox`, fsync), and only then acknowledges it. Worker
threads take payloads from a :class:`.fairness.FairQueue`, round-robin by device, and run the
pipeline; so a device flooding the receiver is acknowledged at disk speed and waits its turn,
and another device's image waits for one image in recovery at most. Past its rate or its share
of the inbox a device's payloads are refused (quarantined, counted); when the whole inbox is
full, paho's thread waits, and with it the broker: back-pressure, nothing lost.

The workers are the parallelism: numpy, zlib and Pillow release the GIL in the heavy steps, so
``ingest.workers`` threads (one per core) keep every core busy. BLAS is held to one thread per
call while ingest runs; left at its default (a thread per core on every matrix product of every
worker) it oversubscribed the cores and two workers were slower than one.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass

# threadpoolctl ships no type information.
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.errors import BusyError, PayloadRejectedError, RateLimitedError
from cloud_receiver.ingest.chunk_journal import Claimed
from cloud_receiver.ingest.fairness import DeviceLimiter, FairQueue, QueueClosedError
from cloud_receiver.ingest.inbox import Entry, Inbox, InboxFullError
from cloud_receiver.ingest.messages import parse_topic
from cloud_receiver.ingest.mqtt import MqttSubscriber
from cloud_receiver.ingest.pipeline import Pipeline, Result
from cloud_receiver.store import StoreUnavailableError
from shared.codec import PayloadError, decode_header

log = logging.getLogger(__name__)

#: Attempts after which a payload that keeps failing (or killing the process) is quarantined.
MAX_ATTEMPTS = 2
#: How often half-built chunked images are checked for expiry (and held messages written).
EXPIRY_PERIOD_S = 1.0
#: First and longest pause before a worker tries the store again after it failed.
STORE_RETRY_S = 0.5
STORE_RETRY_MAX_S = 30.0


def replica_name(settings: ReceiverSettings) -> str:
    """This receiver's own name among replicas on one data_dir: its broker login or client id.

    Each replica keeps its own inbox (a shared one would hand one payload to two workers), and
    finds it again after a restart under the same login, as a StatefulSet's pods do.
    """
    broker = settings.broker
    name = broker.username or broker.client_id
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "receiver"


@dataclass(frozen=True)
class _InboxJob:
    entry: Entry


@dataclass(frozen=True)
class _Held:
    """A message the inbox could not take yet: unacknowledged, so the broker keeps it too."""

    device_id: str
    topic: str
    payload: bytes
    ack: Callable[[], None]


@dataclass(frozen=True)
class _HttpJob:
    payload: bytes
    future: Future[Result]


class Ingest:
    def __init__(self, settings: ReceiverSettings, pipeline: Pipeline) -> None:
        self._settings = settings
        self.pipeline = pipeline
        ingest = settings.ingest
        self.inbox = Inbox(
            settings.store.data_dir / "inbox" / replica_name(settings),
            max_bytes=ingest.inbox_max_bytes,
            max_bytes_per_device=ingest.inbox_max_bytes_per_device,
            max_files_per_device=ingest.inbox_max_images_per_device,
        )
        self._limiter = DeviceLimiter(
            images_per_s=ingest.device_images_per_s,
            burst_images=ingest.device_burst_images,
            bytes_per_s=ingest.device_bytes_per_s,
            burst_bytes=ingest.device_burst_bytes,
        )
        self._queue: FairQueue[_InboxJob | _HttpJob] = FairQueue()
        self._http_slots = threading.BoundedSemaphore(ingest.http_max_waiting + ingest.workers)
        self._stopping = threading.Event()
        # Held messages are bounded by the broker's in-flight window: it sends a client no more
        # while that many are unacknowledged (mosquitto's max_inflight_messages, 20 by default).
        self._held: deque[_Held] = deque()
        self._held_lock = threading.Lock()
        self._inbox_problem: str | None = None
        self._store_problem: str | None = None
        self._store_failures = 0
        self._failures_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._restore_blas: Callable[[], object] | None = None
        self.subscriber: MqttSubscriber | None = None
        if settings.broker.enabled:
            self.subscriber = MqttSubscriber(settings.broker, settings.subscriptions(), self.handle)

    def start(self) -> None:
        self._restore_blas = threadpool_limits(1, user_api="blas").restore_original_limits
        left = self.inbox.recover()
        if left:
            log.info("recovering images left in the inbox", extra={"fields": {"count": len(left)}})
        for entry in left:
            self._queue.put(entry.device_id, _InboxJob(entry))
        self._restore_chunks()
        for number in range(self._settings.ingest.workers):
            self._spawn(self._work, f"dctlink-ingest-{number}")
        self._spawn(self._expire_chunks, "dctlink-chunk-expiry")
        if self.subscriber is not None:
            self.subscriber.start()

    def _restore_chunks(self) -> None:
        """Chunked images an earlier run left half built (or whole, before the inbox)."""
        restored = 0
        journal = self.pipeline.chunk_journal
        for device_id, topic, messages in journal.recover(self._settings.ingest.chunk_timeout_s):
            restored += 1
            claimed = self.pipeline.restore_chunks(device_id, topic, messages)
            if claimed is None:
                continue
            with contextlib.suppress(PayloadRejectedError):  # logged, counted, quarantined
                self._accept_claimed(claimed, topic, device_id, lambda: None)
        if restored:
            log.info("chunked images restored from disk", extra={"fields": {"count": restored}})

    def _reclaim_chunks(self) -> None:
        """Complete the images a receiver claimed and then died on (see reclaim_stale)."""
        journal = self.pipeline.chunk_journal
        for claimed in journal.reclaim_stale(self._settings.ingest.chunk_timeout_s):
            with contextlib.suppress(PayloadRejectedError):  # logged, counted, quarantined
                self._accept_claimed(claimed, claimed.topic, claimed.device_id, lambda: None)

    def _spawn(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def close(self) -> None:
        """Stop taking messages, finish the images in hand, then disconnect.

        Payloads still in the inbox stay there for the next start; POSTs still waiting are
        answered 503.
        """
        if self.subscriber is not None:
            self.subscriber.stop_receiving()
        self._stopping.set()
        self.inbox.close()
        for job in self._queue.close():
            if isinstance(job, _HttpJob):
                job.future.set_exception(BusyError("the receiver is shutting down"))
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self.subscriber is not None:
            self.subscriber.close()
        if self._restore_blas is not None:
            self._restore_blas()
            self._restore_blas = None

    @property
    def store_problem(self) -> str | None:
        """Why images cannot be kept or stored right now (for /readyz); None when they can."""
        return self._inbox_problem or self._store_problem

    @property
    def broker_connected(self) -> bool | None:
        """None when MQTT ingest is switched off."""
        return None if self.subscriber is None else self.subscriber.connected.is_set()

    def submit(self, payload: bytes) -> Future[Result]:
        """Queue one payload (HTTP ingest: no topic) for a worker, fairly by its device.

        Raises RateLimitedError past the device's rate and BusyError while the queue of
        POSTed payloads is full; the future raises PayloadRejectedError for a bad payload.
        """
        try:
            device_id = decode_header(payload).device_id
        except PayloadError:
            device_id = ""  # the pipeline rejects it, with the reason, on a worker
        why = self._limiter.take(device_id, len(payload))
        if why is not None:
            raise RateLimitedError(why)
        if not self._http_slots.acquire(blocking=False):
            raise BusyError("every worker is busy and the queue is full; retry shortly")
        future: Future[Result] = Future()
        future.add_done_callback(lambda _: self._http_slots.release())
        try:
            self._queue.put(device_id, _HttpJob(payload, future))
        except BaseException:
            self._http_slots.release()
            raise
        return future

    # -- paho's thread ---------------------------------------------------------------------

    def handle(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        # Nothing may escape: an exception here would stop paho's loop, and with it ingest.
        try:
            self._route(topic, payload, ack)
        except PayloadRejectedError:
            ack()  # already logged, counted and quarantined; redelivery would not help
        except Exception:
            # Unacknowledged: the broker delivers it again on the next session.
            log.exception("message handling failed", extra={"fields": {"topic": topic}})

    def _route(self, topic: str, payload: bytes, ack: Callable[[], None]) -> None:
        route = parse_topic(self._settings.topic_prefix, topic)
        if route is None:
            raise self.pipeline.reject(
                payload, "unexpected topic", "topic", offset=None, topic=topic, device_id=None
            )
        match route.kind:
            case "status":
                self.pipeline.update_status(payload, topic=topic, device_id=route.device_id)
                ack()
            case "chunk":
                # Acknowledged once on disk (the chunk journal), not once the image is stored:
                # a large image's chunks held unacknowledged would fill the broker's in-flight
                # window and stall it. The last chunk's acknowledgement waits for the inbox.
                claimed = self.pipeline.add_chunk(payload, topic=topic, device_id=route.device_id)
                if claimed is None:
                    ack()
                else:
                    self._accept_claimed(claimed, topic, route.device_id, ack)
            case "image":
                self._accept(payload, topic, route.device_id, ack)

    def _accept_claimed(
        self, claimed: Claimed, topic: str, device_id: str, ack: Callable[[], None]
    ) -> None:
        """A chunked image complete on disk: into the inbox, then its chunks can go."""
        whole = self.pipeline.assemble(claimed, topic=topic)

        def done() -> None:
            self.pipeline.chunk_journal.release(claimed)
            ack()

        try:
            self._accept(whole, topic, device_id, done)
        except PayloadRejectedError:
            self.pipeline.chunk_journal.release(claimed)
            raise

    def _accept(self, payload: bytes, topic: str, device_id: str, ack: Callable[[], None]) -> None:
        """Charge the device's rate, keep the payload in the inbox for a worker, then ``ack``.

        Raises PayloadRejectedError (quarantined, counted) past the device's rate or share.
        When the inbox cannot be written (a full disk) the message is held unacknowledged and
        written later (:meth:`_write_held`); order is kept, so once one is held all are.
        """
        why = self._limiter.take(device_id, len(payload))
        if why is not None:
            raise self.pipeline.reject(
                payload, why, "rate_limited", offset=None, topic=topic, device_id=device_id
            )
        held = _Held(device_id, topic, payload, ack)
        with self._held_lock:
            if self._held:
                self._held.append(held)
                return
            if not self._keep(held):
                self._held.append(held)

    def _keep(self, held: _Held) -> bool:
        """Write ``held`` to the inbox, queue and acknowledge it; False when the disk refused."""
        try:
            entry = self.inbox.put(held.device_id, held.topic, held.payload)
        except InboxFullError as error:
            raise self.pipeline.reject(
                held.payload,
                error.reason,
                "backlog",
                offset=None,
                topic=held.topic,
                device_id=held.device_id,
            ) from None
        except OSError as error:
            self._inbox_problem = f"inbox not writable: {type(error).__name__}: {error}"
            log.error(
                "inbox write failed; holding the message unacknowledged",
                extra={"fields": {"topic": held.topic, "error": str(error)}},
            )
            return False
        self._inbox_problem = None
        self._queue.put(held.device_id, _InboxJob(entry))
        held.ack()
        return True

    def _write_held(self) -> None:
        """Retry the messages held while the inbox could not be written, oldest first."""
        with self._held_lock:
            while self._held:
                try:
                    if not self._keep(self._held[0]):
                        return
                except PayloadRejectedError:
                    self._held[0].ack()  # quarantined: redelivery would not help
                self._held.popleft()

    # -- worker threads ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=0.5)
            except QueueClosedError:
                return
            if item is None:
                if self._stopping.is_set():
                    return
                continue
            device_id, job = item
            try:
                if isinstance(job, _HttpJob):
                    self._run_http(job)
                else:
                    self._run_inbox(job.entry, device_id)
            finally:
                self._queue.done(device_id)

    def _run_http(self, job: _HttpJob) -> None:
        if not job.future.set_running_or_notify_cancel():
            return
        try:
            job.future.set_result(self.pipeline.ingest(job.payload, topic=None, topic_device=None))
        except BaseException as error:
            job.future.set_exception(error)

    def _run_inbox(self, entry: Entry, device_id: str) -> None:
        topic, payload = self.inbox.read(entry)
        if entry.attempts >= MAX_ATTEMPTS:
            # Started that many times and never finished: it kills the receiver (memory).
            self._give_up(entry, topic, payload, "the receiver died while working on it")
            return
        entry = self.inbox.begin(entry)
        try:
            self.pipeline.ingest(payload, topic=topic, topic_device=device_id)
        except PayloadRejectedError:
            pass  # logged, counted and quarantined by the pipeline
        except StoreUnavailableError as error:
            # The store failed, not the payload: keep it, try again after a pause, and do not
            # count the attempt (a disk full for an hour must not quarantine every image).
            self._store_failed(error, topic, device_id)
            entry = self.inbox.retreat(entry)
            if not self._stopping.is_set():
                self._queue.put(device_id, _InboxJob(entry))
            return
        except Exception as error:
            log.exception(
                "pipeline failed",
                extra={"fields": {"topic": topic, "device_id": device_id, "try": entry.attempts}},
            )
            if entry.attempts >= MAX_ATTEMPTS:
                self._give_up(entry, topic, payload, f"{type(error).__name__}: {error}")
            elif not self._stopping.is_set():
                self._queue.put(device_id, _InboxJob(entry))
            return  # kept in the inbox: tried again now, or at the next start
        self._store_ok()
        self.inbox.remove(entry)

    def _store_failed(self, error: StoreUnavailableError, topic: str, device_id: str) -> None:
        with self._failures_lock:
            self._store_failures += 1
            failures = self._store_failures
        self._store_problem = error.message
        delay = min(STORE_RETRY_MAX_S, STORE_RETRY_S * 2 ** min(failures - 1, 10))
        log.error(
            "store failed; the image stays in the inbox",
            extra={
                "fields": {"topic": topic, "device_id": device_id, "error": error.message}
                | {"retry_in_s": delay}
            },
        )
        self._stopping.wait(delay)  # every worker fails alike meanwhile: this is back-pressure

    def _store_ok(self) -> None:
        if self._store_failures:
            with self._failures_lock:
                self._store_failures = 0
            log.info("store works again")
        self._store_problem = None

    def _give_up(self, entry: Entry, topic: str, payload: bytes, why: str) -> None:
        """Quarantine a payload whose recovery failed ``MAX_ATTEMPTS`` times: never retried."""
        self.pipeline.reject(
            payload,
            f"recovery failed {entry.attempts} times ({why})",
            "failed_twice",
            offset=None,
            topic=topic,
            device_id=entry.device_id,
        )
        self.inbox.remove(entry)

    def _expire_chunks(self) -> None:
        while not self._stopping.wait(EXPIRY_PERIOD_S):
            try:
                self.pipeline.expire_chunks()
                self._write_held()
                self._reclaim_chunks()
            except Exception:
                log.exception("chunk expiry or held message write failed")
