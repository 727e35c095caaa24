"""The durable spool: an SQLite queue of encoded payloads waiting for the broker's PUBACK.

Why SQLite in WAL mode with ``synchronous=FULL``: every ``put`` is a committed, fsynced
transaction, so an image the sender has reported accepted survives ``kill -9`` and power loss,
and readers never block the writer. Rows leave only through ``ack`` (after PUBACK) or through
the size bound, which drops the oldest and counts it in the ``counters`` table, so the count
survives restarts too. A payload larger than the whole bound is refused (``SpoolError``) and
counted as ``refused_total``, since no drop could make room for it. Order is capture order
(``captured_us``, then arrival ``seq``).

``reference_jpeg_bytes`` (auto payloads: libjpeg's JPEG of the same image at the promised
quality) is summed on publish, with the payload bytes of the same images, so the status can
compare a payload with the JPEG of equal quality rather than with the camera's file. A spool
written before that column existed gains it on open (its rows have no reference: NULL).
"""

from __future__ import annotations

import sqlite3
import threading
import time
import uuid
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    image_id TEXT NOT NULL,
    captured_us INTEGER NOT NULL,
    source TEXT NOT NULL,
    source_bytes INTEGER NOT NULL,
    payload BLOB NOT NULL,
    reference_jpeg_bytes INTEGER
);
CREATE INDEX IF NOT EXISTS images_by_capture ON images (captured_us, seq);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""

COUNTERS = (
    "published_total",
    "payload_bytes_total",
    "source_bytes_total",
    "equal_quality_payload_bytes_total",
    "equal_quality_jpeg_bytes_total",
    "dropped_total",
    "refused_total",
    "last_publish_us",
)


class SpoolError(RuntimeError):
    """The spool cannot take an image; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class SpoolEntry:
    seq: int
    image_id: uuid.UUID
    captured_us: int
    source: str
    source_bytes: int
    payload: bytes


@dataclass(frozen=True)
class Dropped:
    seq: int
    image_id: uuid.UUID
    payload_bytes: int


class Spool:
    """Thread-safe: the sender's accept path and its publish pump share one instance."""

    def __init__(self, path: Path, max_bytes: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so each put is one transaction.
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(images)")}
        if "reference_jpeg_bytes" not in columns:
            self._db.execute("ALTER TABLE images ADD COLUMN reference_jpeg_bytes INTEGER")
        row = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM images"
        ).fetchone()
        self._count, self._bytes = int(row[0]), int(row[1])

    def __enter__(self) -> Spool:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(
        self,
        image_id: uuid.UUID,
        captured_us: int,
        source: str,
        source_bytes: int,
        payload: bytes,
        *,
        reference_jpeg_bytes: int | None = None,
    ) -> tuple[int, list[Dropped]]:
        """Store one payload durably; returns its seq and whatever the size bound dropped."""
        if len(payload) > self.max_bytes:
            self._count_refusal()
            raise SpoolError(
                f"payload of {len(payload)} bytes exceeds the spool bound of {self.max_bytes}"
            )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                dropped = self._make_room(len(payload))
                cursor = self._db.execute(
                    "INSERT INTO images"
                    " (image_id, captured_us, source, source_bytes, payload, reference_jpeg_bytes)"
                    " VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        str(image_id),
                        captured_us,
                        source,
                        source_bytes,
                        payload,
                        reference_jpeg_bytes,
                    ),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count += 1 - len(dropped)
            self._bytes += len(payload) - sum(d.payload_bytes for d in dropped)
            assert cursor.lastrowid is not None
            return cursor.lastrowid, dropped

    def _count_refusal(self) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._bump({"refused_total": 1})
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _make_room(self, incoming: int) -> list[Dropped]:
        # Called inside put's transaction: the drops and the insert commit together.
        dropped: list[Dropped] = []
        excess = self._bytes + incoming - self.max_bytes
        if excess <= 0:
            return dropped
        rows = self._db.execute(
            "SELECT seq, image_id, LENGTH(payload) FROM images ORDER BY captured_us, seq"
        )
        for seq, image_id, size in rows:
            if excess <= 0:
                break
            dropped.append(Dropped(int(seq), uuid.UUID(image_id), int(size)))
            excess -= int(size)
        self._db.executemany("DELETE FROM images WHERE seq = ?", [(d.seq,) for d in dropped])
        self._bump({"dropped_total": len(dropped)})
        return dropped

    def peek(self, limit: int, exclude: Collection[int] = ()) -> list[SpoolEntry]:
        """The oldest ``limit`` entries in capture order, skipping the seqs in ``exclude``."""
        marks = ",".join("?" * len(exclude))
        query = (
            "SELECT seq, image_id, captured_us, source, source_bytes, payload FROM images"
            + (f" WHERE seq NOT IN ({marks})" if exclude else "")
            + " ORDER BY captured_us, seq LIMIT ?"
        )
        with self._lock:
            rows = self._db.execute(query, (*exclude, limit)).fetchall()
        return [
            SpoolEntry(int(r[0]), uuid.UUID(r[1]), int(r[2]), str(r[3]), int(r[4]), bytes(r[5]))
            for r in rows
        ]

    def ack(self, seqs: Iterable[int]) -> int:
        """Remove acknowledged entries and count them as published; returns how many left."""
        seqs = list(seqs)
        if not seqs:
            return 0
        marks = ",".join("?" * len(seqs))
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                count, size, source, compared, reference = self._db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0),"
                    " COALESCE(SUM(source_bytes), 0),"
                    " COALESCE(SUM(CASE WHEN reference_jpeg_bytes IS NOT NULL"
                    " THEN LENGTH(payload) END), 0),"
                    f" COALESCE(SUM(reference_jpeg_bytes), 0) FROM images WHERE seq IN ({marks})",
                    seqs,
                ).fetchone()
                self._db.execute(f"DELETE FROM images WHERE seq IN ({marks})", seqs)
                self._bump(
                    {
                        "published_total": count,
                        "payload_bytes_total": size,
                        "source_bytes_total": source,
                        "equal_quality_payload_bytes_total": compared,
                        "equal_quality_jpeg_bytes_total": reference,
                    }
                )
                self._db.execute(
                    "INSERT INTO counters VALUES ('last_publish_us', ?) ON CONFLICT(name)"
                    " DO UPDATE SET value = excluded.value",
                    (time.time_ns() // 1000,),
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._count -= int(count)
            self._bytes -= int(size)
            return int(count)

    def _bump(self, increments: dict[str, int]) -> None:
        self._db.executemany(
            "INSERT INTO counters VALUES (?, ?) ON CONFLICT(name)"
            " DO UPDATE SET value = value + excluded.value",
            list(increments.items()),
        )

    def depth(self) -> tuple[int, int]:
        """(entries, payload bytes) waiting in the spool."""
        with self._lock:
            return self._count, self._bytes

    def counters(self) -> dict[str, int]:
        with self._lock:
            rows = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return {name: int(rows.get(name, 0)) for name in COUNTERS}
