"""The default store: files under ``data_dir`` and metadata in SQLite (WAL).

Layout::

    <data_dir>/index.sqlite3                       metadata (images, devices)
    <data_dir>/images/<id[:2]>/<id>/payload.bin    the payload exactly as received
    <data_dir>/images/<id[:2]>/<id>/<stage>.png    one PNG per available stage

Files are written into a temporary folder and renamed into place before the row that points at
them is committed, so a crash leaves at worst an orphan folder, never a row without its files.
An index written by an older receiver is migrated on open: missing columns are added (and
filled where their value can be derived), in the same transaction.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from cloud_receiver.store._rows import (
    BACKFILL_JPEG_BASIS,
    COLUMNS,
    device_from_row,
    from_row,
    page_from_rows,
    page_query,
    to_row,
)
from cloud_receiver.store.base import (
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    Page,
    to_micros,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL,
    captured_us INTEGER NOT NULL,
    received_us INTEGER NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    profile TEXT NOT NULL,
    quality INTEGER,
    layout TEXT NOT NULL,
    payload_bytes INTEGER NOT NULL,
    jpeg_bytes INTEGER,
    stages TEXT NOT NULL,
    timings TEXT NOT NULL,
    model_version TEXT,
    jpeg_bytes_basis TEXT,
    enhanced_note TEXT
);
CREATE INDEX IF NOT EXISTS images_by_capture ON images (captured_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS images_by_device ON images (device_id, captured_us DESC, id DESC);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    status TEXT NOT NULL
);
"""
_COLUMNS = ", ".join(COLUMNS)
_MARKS = ", ".join("?" * len(COLUMNS))


class LocalStore:
    """:class:`~cloud_receiver.store.base.Store` on the local disk; safe across threads."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self._images = data_dir / "images"
        self._images.mkdir(parents=True, exist_ok=True)
        # One connection behind a lock: writes are serialised by SQLite anyway, and the
        # receiver's few worker threads never make this the bottleneck next to recovery.
        self._lock = threading.Lock()
        self._db = sqlite3.connect(
            data_dir / "index.sqlite3", check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._migrate()

    def _migrate(self) -> None:
        """Bring an index created by an older receiver up to :data:`COLUMNS`."""
        self._db.execute("BEGIN IMMEDIATE")  # two receivers opening one folder migrate once
        try:
            present = {row[1] for row in self._db.execute("PRAGMA table_info(images)")}
            if "jpeg_bytes_basis" not in present:
                self._db.execute("ALTER TABLE images ADD COLUMN jpeg_bytes_basis TEXT")
                self._db.execute(BACKFILL_JPEG_BASIS)
            if "enhanced_note" not in present:  # NULL is right for older rows: no gate then
                self._db.execute("ALTER TABLE images ADD COLUMN enhanced_note TEXT")
            self._db.execute("COMMIT")
        except BaseException:
            self._db.execute("ROLLBACK")
            raise

    def _folder(self, image_id: str) -> Path:
        return self._images / image_id[:2] / image_id

    # -- images --------------------------------------------------------------------------------

    def put(
        self,
        record: ImageRecord,
        payload: bytes,
        stage_pngs: Mapping[str, bytes],
        *,
        replace: bool = False,
    ) -> bool:
        final = self._folder(record.id)
        final.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{record.id}-", dir=final.parent))
        (staging / "payload.bin").write_bytes(payload)
        for stage, png in stage_pngs.items():
            (staging / f"{stage}.png").write_bytes(png)
        with self._lock:
            # SQLite's write lock, held from the check to the insert: another store or process
            # on the same folder cannot slip the same id in between.
            self._db.execute("BEGIN IMMEDIATE")
            try:
                if not replace and self._exists(record.id):
                    self._db.execute("ROLLBACK")
                    shutil.rmtree(staging)
                    return False
                if final.exists():  # a replaced image, or an orphan of a crash before commit
                    shutil.rmtree(final)
                staging.rename(final)
                self._db.execute(
                    f"INSERT OR REPLACE INTO images ({_COLUMNS}) VALUES ({_MARKS})",
                    to_row(record),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise
        return True

    def _exists(self, image_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
        return row is not None

    def exists(self, image_id: str) -> bool:
        with self._lock:
            return self._exists(image_id)

    def get(self, image_id: str) -> ImageRecord | None:
        with self._lock:
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,)
            ).fetchone()
        return None if row is None else from_row(row)

    def images(self, query: ImageQuery) -> Page:
        sql, args = page_query(query, "?")
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return page_from_rows(rows, query.limit)

    def stage_png(self, image_id: str, stage: str) -> bytes | None:
        return _read(self._folder(image_id) / f"{stage}.png")

    def payload(self, image_id: str) -> bytes | None:
        return _read(self._folder(image_id) / "payload.bin")

    # -- devices -------------------------------------------------------------------------------

    def upsert_device(self, device: DeviceRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO devices (device_id, online, last_seen_us, status)"
                " VALUES (?, ?, ?, ?)",
                (
                    device.device_id,
                    int(device.online),
                    to_micros(device.last_seen),
                    json.dumps(device.status),
                ),
            )

    def list_devices(self) -> list[DeviceRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT device_id, online, last_seen_us, status FROM devices ORDER BY device_id"
            ).fetchall()
        return [device for device in map(device_from_row, rows) if device is not None]

    # -- health --------------------------------------------------------------------------------

    def check_writable(self) -> str | None:
        probe = self._images / f".probe-{uuid.uuid4().hex}"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
            with self._lock:
                self._db.execute("BEGIN IMMEDIATE")  # takes the write lock, then lets it go
                self._db.execute("ROLLBACK")
        except (OSError, sqlite3.Error) as error:
            return f"{type(error).__name__}: {error}"
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, ValueError):  # ValueError: a NUL in the id, which no file has
        return None
