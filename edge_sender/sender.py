"""The sender: frames in, encoded payloads into the spool, spool out to the broker.

Two threads meet here. The caller's thread runs ``accept`` (encode, then commit to the spool;
only then is an image "accepted"). The pump thread owns the in-flight window: it publishes the
oldest spooled entries, and it alone processes PUBACKs, which paho's thread only queues. So a
message id is always registered before its acknowledgement is looked at, and SQLite deletes
never run on paho's network thread.

An entry leaves the spool only once the broker has answered a publish made after the entry's
PUBACK arrived, on the same connection (``edge_sender.proof``): mosquitto saves after it sends
the PUBACK, so the PUBACK alone does not say the image would survive a kill -9 of the broker.
Until then it still counts in the spool depth, and ``wait_drained`` waits for it.

A PUBACK refusal that retrying can fix (quota exceeded, an unspecified error: see
``edge_sender.reasons``) takes the entry out of the window, leaves it in the spool and holds
every publish back for a delay that doubles up to ``reconnect_max_s``, since what slows the
broker down for one image slows it down for the next. A permanent one stops the sender.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from edge_sender.config import EdgeSettings
from edge_sender.encoding import encode_frame
from edge_sender.proof import Proof
from edge_sender.publisher import MqttPublisher, PublisherError, puback_reason
from edge_sender.reasons import PERMANENT_PUBACK, is_failure, puback_is_permanent
from edge_sender.sources import Frame
from edge_sender.spool import Spool, SpoolEntry, SpoolError
from service_common.version import dctlink_version
from shared.chunking import split_payload
from shared.timestamps import from_micros, to_micros

log = logging.getLogger(__name__)

VERSION = dctlink_version()


@dataclass
class InFlight:
    """Spool entries published and waiting for PUBACKs (one per message; chunks count each)."""

    mids: dict[int, int] = field(default_factory=dict)  # message id -> spool seq
    waiting: dict[int, set[int]] = field(default_factory=dict)  # spool seq -> message ids

    def add(self, seq: int, mids: list[int]) -> None:
        self.waiting[seq] = set(mids)
        self.mids.update(dict.fromkeys(mids, seq))

    def ack(self, mid: int) -> int | None:
        """Record one PUBACK; returns the seq once all of that entry's messages are acked."""
        seq = self.mids.pop(mid, None)
        if seq is None:
            return None  # a status message, or a message from before the last reconnect
        pending = self.waiting[seq]
        pending.discard(mid)
        if pending:
            return None
        del self.waiting[seq]
        return seq

    def seq_of(self, mid: int) -> int | None:
        return self.mids.get(mid)

    def drop(self, seq: int) -> None:
        """Forget an entry's messages; later PUBACKs for them are ignored like stale ones."""
        for mid in self.waiting.pop(seq, set()):
            self.mids.pop(mid, None)

    def clear(self) -> None:
        self.mids.clear()
        self.waiting.clear()

    @property
    def messages(self) -> int:
        return len(self.mids)


@dataclass
class Backoff:
    """Capped exponential hold on publishing after temporary refusals; a delivery resets it.

    Refusals that arrive while a hold is on (the rest of a window refused at once) do not
    lengthen it, so one burst of "quota exceeded" costs one step, not one per message.
    """

    first_s: float
    max_s: float
    delay_s: float = 0.0
    until: float = 0.0  # time.monotonic() before which nothing is published

    def refused(self, now: float) -> float:
        """Start (or keep) a hold; returns the seconds left until publishing resumes."""
        if now >= self.until:
            self.delay_s = self.first_s if not self.delay_s else self.delay_s * 2
            self.delay_s = min(self.delay_s, self.max_s)
            self.until = now + self.delay_s
        return self.until - now

    def delivered(self) -> None:
        self.delay_s = 0.0

    def holding(self, now: float) -> bool:
        return now < self.until


class Sender:
    def __init__(self, settings: EdgeSettings, spool: Spool) -> None:
        self.settings = settings
        self.spool = spool
        # (message id, reason code, publisher generation it arrived in)
        self._acks: queue.SimpleQueue[tuple[int, int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._inflight = InFlight()
        self._proof = Proof()
        self._generation = 0
        self._backoff = Backoff(settings.broker.reconnect_min_s, settings.broker.reconnect_max_s)
        # Replaced whole (never mutated) by both threads; the lock keeps the newest snapshot.
        self._counters_lock = threading.Lock()
        self._counters = spool.counters()
        self._counters_at_start = dict(self._counters)
        self._pump_thread = threading.Thread(target=self._pump, name="spool-pump", daemon=True)
        self.fatal: PublisherError | None = None
        self.failure: Exception | None = None  # the pump died of an unexpected error
        self.publisher = MqttPublisher(settings, self._queue_ack, self.status)

    # -- the caller's side -------------------------------------------------------------------

    def start(self) -> None:
        self.publisher.start()
        self._pump_thread.start()
        log.info("sender started", extra={"fields": self._log_fields()})

    def accept(self, frame: Frame) -> uuid.UUID:
        """Encode and durably spool one frame; when this returns the image will be delivered."""
        encoded = encode_frame(frame, self.settings.encode, self.settings.device_id)
        image_id, payload = encoded.image_id, encoded.payload
        captured_us = to_micros(frame.captured_at)
        try:
            _, dropped = self.spool.put(
                image_id,
                captured_us,
                frame.source,
                frame.source_bytes,
                payload,
                reference_jpeg_bytes=encoded.reference_jpeg_bytes,
            )
        except SpoolError:
            self._refresh_counters()  # the spool counted the refusal; the status shows it
            raise
        for gone in dropped:
            log.warning(
                "spool full, dropped oldest image",
                extra={
                    "fields": {
                        "image_id": str(gone.image_id),
                        "bytes": gone.payload_bytes,
                        "spool_max_bytes": self.spool.max_bytes,
                    }
                },
            )
        if dropped:
            self._refresh_counters()
        if frame.on_spooled is not None:
            frame.on_spooled()
        log.info(
            "accepted",
            extra={
                "fields": {
                    "image_id": str(image_id),
                    "source": frame.source,
                    "payload_bytes": len(payload),
                    "source_bytes": frame.source_bytes,
                    "equal_quality_jpeg_bytes": encoded.reference_jpeg_bytes,
                    "spool_depth": self.spool.depth()[0],
                }
            },
        )
        self._wake.set()
        return image_id

    def wait_drained(
        self, timeout_s: float | None = None, stop: threading.Event | None = None
    ) -> bool:
        """Block until the spool is empty (True), or timeout, stop or a fatal error (False)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self.spool.depth()[0] > 0:
            if self.stopped or (stop is not None and stop.is_set()):
                return False
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    @property
    def stopped(self) -> bool:
        """True once the pump has given up: the broker refused us, or an unexpected error."""
        return self.fatal is not None or self.failure is not None

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._pump_thread.is_alive():
            self._pump_thread.join(5)
        self.publisher.close()
        log.info("sender stopped", extra={"fields": self._log_fields(stopping=True)})

    def _log_fields(self, *, stopping: bool = False) -> dict[str, Any]:
        """:meth:`status` for a log line: the spool's lifetime totals kept apart from this run's.

        The counters live in the spool and outlast restarts, so a "started" line showing them
        bare would read as if this run had already published.
        """
        status = self.status()
        totals = [name for name in self._counters_at_start if name in status]
        lifetime_keys = [*totals, "last_publish_at", *(k for k in status if k.endswith("_ratio"))]
        fields = {k: v for k, v in status.items() if k not in lifetime_keys}
        if stopping:
            with self._counters_lock:
                now = dict(self._counters)
            fields["this_run"] = {n: now[n] - self._counters_at_start[n] for n in totals}
        fields["spool_lifetime"] = {k: status[k] for k in lifetime_keys}
        return fields

    def status(self) -> dict[str, Any]:
        """Operator figures for the retained status message and the logs (docs/architecture.md 4).

        Two savings, each named by what it compares with: ``payload_to_source_ratio`` is
        every published payload against the files or snapshots it came from (whatever
        their quality); ``payload_to_equal_quality_jpeg_ratio`` is the auto payloads
        against libjpeg's JPEG of the same images at the promised quality (null until
        one is published), the saving at a picture at least as good.
        """
        depth, depth_bytes = self.spool.depth()
        with self._counters_lock:
            counters = dict(self._counters)
        last = counters.pop("last_publish_us")
        payload, source = counters["payload_bytes_total"], counters["source_bytes_total"]
        compared = counters["equal_quality_payload_bytes_total"]
        reference = counters["equal_quality_jpeg_bytes_total"]
        return {
            "version": VERSION,
            "spool_depth": depth,
            "spool_bytes": depth_bytes,
            "last_publish_at": (from_micros(last).isoformat() if last else None),
            **counters,
            "payload_to_source_ratio": round(payload / source, 4) if source else None,
            "payload_to_equal_quality_jpeg_ratio": (
                round(compared / reference, 4) if reference else None
            ),
        }

    # -- the pump thread ---------------------------------------------------------------------

    def _queue_ack(self, mid: int, reason_code: int) -> None:
        # Read on paho's thread, which bumps it: the connection this PUBACK came on.
        self._acks.put((mid, reason_code, self.publisher.generation))
        self._wake.set()

    def _refresh_counters(self) -> None:
        with self._counters_lock:
            self._counters = self.spool.counters()

    def _pump(self) -> None:
        try:
            self._pump_loop()
        except Exception as error:
            # A broken spool (disk full, file locked by another process) or a bug: stop and say
            # so, rather than leave wait_drained polling a spool that no one empties any more.
            self.failure = error
            log.exception("sender pump failed", extra={"fields": {"error": str(error)}})

    def _pump_loop(self) -> None:
        next_status = time.monotonic() + self.settings.status.interval_s
        while not self._stop.is_set():
            self._wake.wait(0.2)
            self._wake.clear()
            try:
                self._process_acks()
                publisher = self.publisher
                if publisher.fatal is not None:
                    self.fatal = publisher.fatal
                elif publisher.connected.is_set():
                    if publisher.generation != self._generation:
                        self._new_connection(publisher.generation)
                    self._fill_window()
                    self._send_barrier()
            except PublisherError as error:
                self.fatal = error
            if self.fatal is not None:
                log.error("sender stopped publishing", extra={"fields": {"error": str(self.fatal)}})
                return
            if time.monotonic() >= next_status:
                next_status = time.monotonic() + self.settings.status.interval_s
                self.publisher.publish_status()
                log.info("status", extra={"fields": self.status()})

    def _new_connection(self, generation: int) -> None:
        # Re-send everything not proven saved: paho's memory queue may or may not still hold
        # it, and an acknowledged image the old connection never proved may be lost with the
        # broker's unsaved state. A duplicate keeps its image id; the receiver drops it.
        self._inflight.clear()
        self._proof.clear()
        self._generation = generation

    def _process_acks(self) -> None:
        proven: list[int] = []
        try:
            while True:
                try:
                    mid, code, generation = self._acks.get_nowait()
                except queue.Empty:
                    break
                if generation != self._generation:
                    if generation < self._generation:
                        continue  # came on a connection that is gone; its state is cleared
                    self._new_connection(generation)
                proven.extend(self._proof.answered(mid))
                if is_failure(code):
                    seq = self._inflight.seq_of(mid)
                    if seq is not None:
                        self._refused(seq, code)
                    continue
                seq = self._inflight.ack(mid)
                if seq is not None:
                    self._proof.delivered(seq)
                    self._backoff.delivered()
        finally:
            if proven:
                self.spool.ack(proven)
                self._refresh_counters()
                log.info(
                    "published",
                    extra={"fields": {"images": len(proven), "spool_depth": self.spool.depth()[0]}},
                )

    def _refused(self, seq: int, code: int) -> None:
        reason = puback_reason(code)
        if puback_is_permanent(code):
            raise PublisherError(self._permanent_refusal(reason, code), code)
        self._inflight.drop(seq)
        retry_in_s = self._backoff.refused(time.monotonic())
        log.warning(
            "broker refused the image publish for now; it stays in the spool and is retried",
            extra={
                "fields": {
                    "reason": str(reason),
                    "code": code,
                    "spool_seq": seq,
                    "retry_in_s": round(retry_in_s, 3),
                }
            },
        )

    def _permanent_refusal(self, reason: str, code: int) -> str:
        what = f"broker rejected the image publish ({reason}), which retrying cannot change"
        if code == 0x87:
            fix = (
                f"the ACL must let user {self.settings.broker.username!r} write"
                f" {self.settings.topic_prefix}/{self.settings.device_id}/#"
            )
        else:
            fix = PERMANENT_PUBACK[code]
        return f"{what}: {fix}. The image stays in the spool"

    def _fill_window(self) -> None:
        if self._backoff.holding(time.monotonic()):
            return
        barrier = 0 if self._proof.barrier is None else 1
        room = self.settings.broker.max_inflight - self._inflight.messages - barrier
        if room <= 0:
            return
        exclude = [*self._inflight.waiting, *self._proof.acked]
        for entry in self.spool.peek(room, exclude=exclude):
            messages = self._messages(entry)
            if self._inflight.messages and len(messages) > room:
                return  # a big chunked image waits for the window to drain, then goes alone
            mids = []
            for topic, body in messages:
                mid = self.publisher.publish(topic, body)
                self._proof.published(mid)
                mids.append(mid)
            self._inflight.add(entry.seq, mids)
            room -= len(messages)

    def _send_barrier(self) -> None:
        """Nothing in flight to prove the acknowledged entries saved: one empty publish will."""
        if self._inflight.messages or not self._proof.needs_barrier:
            return
        if self._backoff.holding(time.monotonic()):
            return  # the refusal's own answer proves what came before it
        mid = self.publisher.publish(self.settings.topic("barrier"), b"")
        self._proof.published(mid, barrier=True)

    def _messages(self, entry: SpoolEntry) -> list[tuple[str, bytes]]:
        limit = self.settings.broker.max_message_bytes
        if len(entry.payload) <= limit:
            return [(self.settings.topic("image"), entry.payload)]
        chunk_topic = self.settings.topic("chunk")
        return [(chunk_topic, c) for c in split_payload(entry.payload, entry.image_id, limit)]
