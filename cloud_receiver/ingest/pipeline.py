"""The one path every payload takes, whether it came over MQTT or HTTP.

    payload -> decode (with limits) -> dedupe -> Recovery.run -> PNG per stage -> store -> event

Runs on worker threads (recovery is CPU-bound); thread-safe. A payload that cannot become an
image raises :class:`~cloud_receiver.errors.PayloadRejectedError` after it has been logged with its
reason and device id, counted and quarantined, so callers only decide how to answer.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from cloud_receiver.config import ReceiverSettings
from cloud_receiver.device_status import parse_status
from cloud_receiver.errors import PayloadRejectedError
from cloud_receiver.imaging import equivalent_jpeg, png_bytes
from cloud_receiver.ingest.chunk_journal import ChunkJournal, Claimed
from cloud_receiver.ingest.messages import reason_class
from cloud_receiver.ingest.quarantine import Quarantine
from cloud_receiver.metrics import Metrics
from cloud_receiver.recovery import Budget, Recovery, Stages
from cloud_receiver.recovery.budget import estimate, over_memory
from cloud_receiver.store import STAGES, DeviceRecord, ImageRecord, Store
from shared.chunking import ChunkError, Reassembler, unpack_chunk
from shared.codec import (
    DcMode,
    Decoded,
    PayloadError,
    PayloadErrorKind,
    decode,
    decode_header,
    wire,
)

log = logging.getLogger(__name__)

NETWORK_MISSING = "no network loaded"


class Outcome(Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"


@dataclass(frozen=True)
class Result:
    outcome: Outcome
    record: ImageRecord | None  # None for a duplicate
    image_id: str


def build_record(
    decoded: Decoded, stages: Stages, *, received_at: datetime, timings_s: dict[str, float]
) -> tuple[ImageRecord, dict[str, bytes]]:
    """Metadata and stage PNGs for one recovered image (pure; no I/O)."""
    reasons = {"enhanced": stages.enhanced_unavailable_reason or NETWORK_MISSING}
    reasons.update(stages.skipped)
    pixels = stages.pixels()
    started = time.perf_counter()
    pngs = {stage: png_bytes(array) for stage, array in pixels.items()}
    best = pixels[next(s for s in reversed(STAGES) if s in pixels)]
    jpeg_bytes, basis = equivalent_jpeg(best, decoded.quality, decoded.reference_jpeg_bytes)
    timings = {**timings_s, "encode": time.perf_counter() - started}
    record = ImageRecord(
        id=str(decoded.image_id),
        device_id=decoded.device_id,
        captured_at=decoded.captured_at,
        received_at=received_at,
        width=decoded.width,
        height=decoded.height,
        profile=decoded.profile.name.lower(),
        quality=decoded.quality,
        layout=decoded.layout.name.lower(),
        payload_bytes=decoded.payload_bytes,
        jpeg_bytes=jpeg_bytes,
        jpeg_bytes_basis=basis,
        stages={stage: (None if stage in pixels else reasons[stage]) for stage in STAGES},
        timings_s=timings,
        model_version=stages.model_version,
        enhanced_note=stages.enhanced_note,
        tables_quality=decoded.tables_quality if decoded.quality is None else None,
    )
    return record, pngs


class Pipeline:
    def __init__(
        self,
        settings: ReceiverSettings,
        store: Store,
        recovery: Recovery,
        *,
        metrics: Metrics,
        quarantine: Quarantine,
        on_stored: Callable[[ImageRecord], None] = lambda record: None,
    ) -> None:
        self._limits = settings.ingest.limits
        self._budget = Budget(
            settings.ingest.max_image_memory_bytes, settings.ingest.recovery_budget_s
        )
        self._store = store
        self._recovery = recovery
        self._metrics = metrics
        self._quarantine = quarantine
        self.on_stored = on_stored
        ingest = settings.ingest
        self.chunk_journal = ChunkJournal(settings.store.data_dir / "chunks")
        self._reassembler = Reassembler(
            timeout_s=ingest.chunk_timeout_s,
            max_bytes_per_device=ingest.chunk_max_bytes_per_device,
            max_bytes=ingest.chunk_max_bytes,
            max_pending=ingest.chunk_max_pending,
            on_drop=self.chunk_journal.drop,
        )
        self._chunk_lock = threading.Lock()
        self._lock = threading.Lock()
        self._in_flight: set[str] = set()

    # -- payloads ------------------------------------------------------------------------------

    def ingest(self, payload: bytes, *, topic: str | None, topic_device: str | None) -> Result:
        """Decode, recover and store one whole payload. Raises PayloadRejectedError."""
        received_at = datetime.now(UTC)
        started = time.perf_counter()
        try:
            self.admit(payload)
            decoded = decode(payload, limits=self._limits)
        except PayloadError as error:
            raise self.reject(
                payload,
                error.reason,
                reason_class(error),
                offset=error.offset,
                topic=topic,
                device_id=topic_device,
            ) from None
        decode_s = time.perf_counter() - started
        if topic_device is not None and decoded.device_id != topic_device:
            raise self.reject(
                payload,
                f"payload device id {decoded.device_id!r} differs from the topic's",
                "device_mismatch",
                offset=None,
                topic=topic,
                device_id=topic_device,
            )
        image_id = str(decoded.image_id)
        with self._lock:
            duplicate = image_id in self._in_flight or self._store.exists(image_id)
            if not duplicate:
                self._in_flight.add(image_id)
        if duplicate:
            return self._duplicate(image_id, decoded.device_id)
        try:
            return self._recover_and_store(decoded, payload, received_at, decode_s)
        finally:
            with self._lock:
                self._in_flight.discard(image_id)

    def admit(self, payload: bytes) -> None:
        """Refuse, from the header alone, a payload past the limits or the memory budget.

        Runs before anything is decoded: the checksum, the header's claims against the
        limits, and the received stage's estimated memory (the one stage that always runs).
        Raises PayloadError.
        """
        header = decode_header(payload)
        self._limits.check(header, len(payload))
        cost = estimate(
            header.width,
            header.height,
            header.layout,
            dc_missing=any(k.dc_mode is not DcMode.ALL for k in header.retention),
        )
        why = over_memory(
            f"decoding {header.width}x{header.height}", cost.received_bytes, self._budget
        )
        if why is not None:
            raise PayloadError(
                PayloadErrorKind.LIMIT,
                f"image exceeds the memory budget: {why}",
                wire.OFFSET.width,
            )

    def _recover_and_store(
        self, decoded: Decoded, payload: bytes, received_at: datetime, decode_s: float
    ) -> Result:
        stages = self._recovery.run(decoded, self._budget)
        record, pngs = build_record(
            decoded,
            stages,
            received_at=received_at,
            timings_s={"decode": decode_s, **stages.timings_s},
        )
        started = time.perf_counter()
        if not self._store.put(record, payload, pngs):
            return self._duplicate(record.id, record.device_id)
        timings = {**record.timings_s, "store": time.perf_counter() - started}
        for stage, seconds in timings.items():
            self._metrics.stage_seconds.labels(stage).observe(seconds)
        self._metrics.images.inc()
        basis = record.jpeg_bytes_basis or "none"
        self._metrics.payload_bytes.labels(basis).inc(record.payload_bytes)
        device = record.device_id
        self._metrics.device_payload_bytes.labels(device, basis).inc(record.payload_bytes)
        if record.jpeg_bytes is not None:
            self._metrics.jpeg_bytes.labels(basis).inc(record.jpeg_bytes)
            self._metrics.device_jpeg_bytes.labels(device, basis).inc(record.jpeg_bytes)
        if basis == "equal_quality" and record.quality is not None:
            self._metrics.device_promised_quality.labels(device).set(record.quality)
        log.info(
            "image stored",
            extra={
                "fields": {
                    "image_id": record.id,
                    "device_id": record.device_id,
                    "payload_bytes": record.payload_bytes,
                    "ms": {k: round(v * 1000, 1) for k, v in timings.items()},
                }
            },
        )
        self.on_stored(record)
        return Result(Outcome.STORED, record, record.id)

    def _duplicate(self, image_id: str, device_id: str) -> Result:
        self._metrics.duplicates.inc()
        log.info(
            "duplicate image ignored",
            extra={"fields": {"image_id": image_id, "device_id": device_id}},
        )
        return Result(Outcome.DUPLICATE, None, image_id)

    # -- chunks and status ---------------------------------------------------------------------

    def add_chunk(self, message: bytes, *, topic: str, device_id: str) -> Claimed | None:
        """Check one chunk and keep it on disk; its image's chunks, claimed, once all are there.

        The in-memory reassembler checks the chunk against its image and holds the bounds (per
        device, in all, expiry); the journal keeps it durably, shared with the other replicas
        on this data_dir, so the image completes wherever its last chunk lands. Raises
        PayloadRejectedError for a bad chunk, OSError when the disk refuses it (then the
        chunk must stay unacknowledged).
        """
        try:
            header, _ = unpack_chunk(message)
            with self._chunk_lock:
                duplicate = self._reassembler.is_duplicate(header, device_id)
                self._reassembler.add(message, device_id)
        except ChunkError as error:
            with contextlib.suppress(ChunkError):  # a bad image: its chunks on disk go too
                self.chunk_journal.drop(device_id, unpack_chunk(message)[0].image_id)
            raise self.reject(
                message, error.reason, "chunk", offset=None, topic=topic, device_id=device_id
            ) from None
        if duplicate:
            return None
        on_disk = self.chunk_journal.write(device_id, topic, header.image_id, header.index, message)
        if on_disk < header.count:
            return None
        claimed = self.chunk_journal.claim(device_id, header.image_id)
        if claimed is not None:
            with self._chunk_lock:
                self._reassembler.discard(device_id, header.image_id)
        return claimed

    def restore_chunks(self, device_id: str, topic: str, messages: list[bytes]) -> Claimed | None:
        """Chunks an earlier run left on disk: claimed when complete, else back in memory."""
        try:
            header, _ = unpack_chunk(messages[0])
        except ChunkError:
            return None
        if len(messages) >= header.count:
            return self.chunk_journal.claim(device_id, header.image_id)
        try:
            with self._chunk_lock:
                for message in messages:
                    self._reassembler.add(message, device_id)
        except ChunkError:
            self.chunk_journal.drop(device_id, header.image_id)
        return None

    def assemble(self, claimed: Claimed, *, topic: str) -> bytes:
        """The payload of a claimed image's chunks; PayloadRejectedError if they do not make one.

        Assembled afresh from disk, not from memory: on a replica the other chunks came to
        another receiver. The chunks were checked one by one as they arrived, so only their
        agreement with each other is left to check.
        """
        whole = None
        fresh = Reassembler(max_bytes_per_device=2**62, max_bytes=2**62, max_pending=1)
        try:
            for message in claimed.messages:
                whole = fresh.add(message, claimed.device_id) or whole
            if whole is None:
                raise ChunkError(f"{len(claimed.messages)} chunks on disk make no whole image")
        except ChunkError as error:
            self.chunk_journal.release(claimed)
            raise self.reject(
                b"".join(claimed.messages),
                error.reason,
                "chunk",
                offset=None,
                topic=topic,
                device_id=claimed.device_id,
            ) from None
        return whole

    @property
    def chunks_pending(self) -> int:
        """Chunked images in progress."""
        with self._chunk_lock:
            return self._reassembler.pending

    def expire_chunks(self) -> int:
        """Drop chunked images whose chunks stopped arriving; returns how many (on a timer)."""
        with self._chunk_lock:
            expired = self._reassembler.expire()
        # Leftovers of other replicas and of crashes, which no reassembler here remembers.
        self.chunk_journal.sweep(2 * self._reassembler.timeout_s)
        for image_id in expired:
            log.warning("chunked image expired", extra={"fields": {"image_id": str(image_id)}})
        return len(expired)

    def update_status(self, body: bytes, *, topic: str, device_id: str) -> None:
        """A device's retained status message; an empty one (a cleared retained message) is
        skipped."""
        if not body:
            return
        try:
            # Checked here, before it is stored: GET /api/v1/devices serves it to every client.
            status = parse_status(body, device_id=device_id)
        except ValueError as error:
            raise self.reject(
                body,
                f"bad status: {error}",
                "status",
                offset=None,
                topic=topic,
                device_id=device_id,
            ) from None
        self._store.upsert_device(
            DeviceRecord(device_id, status["state"] == "online", datetime.now(UTC), status)
        )
        self._metrics.devices_online.set(sum(d.online for d in self._store.list_devices()))

    # -- rejection -----------------------------------------------------------------------------

    def reject(
        self,
        data: bytes,
        reason: str,
        label: str,
        *,
        offset: int | None,
        topic: str | None,
        device_id: str | None,
    ) -> PayloadRejectedError:
        """Log, count and quarantine; returns the error for the caller to raise."""
        self._metrics.malformed.labels(label).inc()
        kept = self._quarantine.keep(
            data,
            reason=reason,
            reason_class=label,
            offset=offset,
            topic=topic,
            device_id=device_id,
        )
        log.warning(
            "payload rejected",
            extra={
                "fields": {
                    "reason": reason,
                    "reason_class": label,
                    "offset": offset,
                    "device_id": device_id,
                    "topic": topic,
                    "quarantined": str(kept) if kept else None,
                }
            },
        )
        return PayloadRejectedError(reason, label, offset)
