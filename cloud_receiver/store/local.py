"""The default store: files under ``data_dir`` and metadata in SQLite (WAL).

Layout::

    <data_dir>/index.sqlite3                       metadata (images, devices)
    <data_dir>/images/<id[:2]>/<id>/payload.bin    the payload exactly as received
    <data_dir>/images/<id[:2]>/<id>/<stage>.png    one PNG per available stage

Files are written into a temporary folder and renamed into place before the row that points at
them is committed, so a crash leaves at worst an orphan folder, never a row without its files;
staging folders a crash left behind are removed at the next open, once an hour old (another
receiver on the same folder may be writing a young one), and :meth:`LocalStore.sweep_orphans`
removes image folders that no row commits, older than a grace period (``store/sweep.py``),
holding SQLite's write lock so no put can commit a folder between the check and the delete.
A failed write (a full disk, a locked or damaged index) cleans up after itself, a folder
already renamed into place included, and raises :class:`StoreUnavailableError`, so ingest
keeps the image and tries again; the index is checked (``PRAGMA quick_check``) when opened, and a
damaged one is refused with a clear error instead of losing every image written to it.
An index written by an older receiver is migrated on open: missing columns are added (and
filled where their value can be derived), in the same transaction.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
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
    StoreUnavailableError,
)
from cloud_receiver.store.sweep import Piece, orphans
from shared.timestamps import to_micros

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
    enhanced_note TEXT,
    tables_quality INTEGER
);
CREATE INDEX IF NOT EXISTS images_by_capture ON images (captured_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS images_by_device ON images (device_id, captured_us DESC, id DESC);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY,
    online INTEGER NOT NULL,
    last_seen_us INTEGER NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, written_us INTEGER NOT NULL);
"""
#: Staging folders younger than this may belong to a put in progress (here or in another
#: receiver sharing the folder); older ones are a crash's leftovers.
STAGING_GRACE_S = 3600.0
_COLUMNS = ", ".join(COLUMNS)
_MARKS = ", ".join("?" * len(COLUMNS))
_LOOKUP_BATCH = 500  # ids per IN (...): under every SQLite's limit on bound parameters


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
        try:
            self._check_index()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._migrate()
        except sqlite3.Error as error:
            self._db.close()
            raise StoreUnavailableError(
                f"SQLite index {data_dir / 'index.sqlite3'}: {type(error).__name__}: {error}"
            ) from error
        self._sweep_staging()

    def _check_index(self) -> None:
        """Refuse a damaged index at open: writes to it fail (or worse, half succeed) later."""
        problems = [row[0] for row in self._db.execute("PRAGMA quick_check(5)")]
        if problems != ["ok"]:
            raise sqlite3.DatabaseError(
                "the index is damaged (" + "; ".join(problems) + "); restore it from a backup"
                " or rebuild it with `sqlite3 index.sqlite3 .recover`"
            )

    def _sweep_staging(self, grace_s: float = STAGING_GRACE_S) -> None:
        cutoff = time.time() - grace_s
        for staging in self._images.glob("*/.*-*"):
            with contextlib.suppress(OSError):  # gone meanwhile, or not ours to delete
                if staging.is_dir() and staging.stat().st_mtime < cutoff:
                    shutil.rmtree(staging)

    @contextlib.contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        """The connection, under the lock; an SQLite failure becomes StoreUnavailableError."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as error:
                raise StoreUnavailableError(
                    f"SQLite index: {type(error).__name__}: {error}"
                ) from error

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
            if "tables_quality" not in present:  # older rows: unknown, shown as own tables
                self._db.execute("ALTER TABLE images ADD COLUMN tables_quality INTEGER")
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
        staging: Path | None = None
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{record.id}-", dir=final.parent))
            (staging / "payload.bin").write_bytes(payload)
            for stage, png in stage_pngs.items():
                (staging / f"{stage}.png").write_bytes(png)
            return self._commit(record, staging, final, replace=replace)
        except OSError as error:
            raise StoreUnavailableError(
                f"writing image {record.id}: {type(error).__name__}: {error}"
            ) from error
        finally:
            if staging is not None and staging.exists():  # not renamed into place
                shutil.rmtree(staging, ignore_errors=True)

    def _commit(self, record: ImageRecord, staging: Path, final: Path, *, replace: bool) -> bool:
        with self._sql():
            # SQLite's write lock, held from the check to the insert: another store or process
            # on the same folder cannot slip the same id in between.
            self._db.execute("BEGIN IMMEDIATE")
            renamed = False
            existed = self._exists(record.id)
            try:
                if existed and not replace:
                    self._db.execute("ROLLBACK")
                    return False
                if final.exists():  # a replaced image, or an orphan of a crash before commit
                    shutil.rmtree(final)
                staging.rename(final)
                renamed = True
                self._db.execute(
                    f"INSERT OR REPLACE INTO images ({_COLUMNS}) VALUES ({_MARKS})",
                    to_row(record),
                )
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                if renamed and not existed:  # no row will name it: an orphan right away
                    shutil.rmtree(final, ignore_errors=True)
                raise
        return True

    def _exists(self, image_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone()
        return row is not None

    def exists(self, image_id: str) -> bool:
        with self._sql():
            return self._exists(image_id)

    def get(self, image_id: str) -> ImageRecord | None:
        with self._sql():
            row = self._db.execute(
                f"SELECT {_COLUMNS} FROM images WHERE id = ?", (image_id,)
            ).fetchone()
        return None if row is None else from_row(row)

    def images(self, query: ImageQuery) -> Page:
        sql, args = page_query(query, "?")
        with self._sql():
            rows = self._db.execute(sql, args).fetchall()
        return page_from_rows(rows, query.limit)

    def stage_png(self, image_id: str, stage: str) -> bytes | None:
        return _read(self._folder(image_id) / f"{stage}.png")

    def payload(self, image_id: str) -> bytes | None:
        return _read(self._folder(image_id) / "payload.bin")

    # -- the orphan sweep ------------------------------------------------------------------------

    def sweep_orphans(
        self, grace_s: float, *, should_stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Delete image folders older than ``grace_s`` that have no row; how many were deleted.

        Staging folders older than ``grace_s`` go too. One ``images/<id[:2]>`` shard at a
        time, each checked and deleted under SQLite's write lock: a put renames its folder
        into place under that lock, so none can appear between the lookup and the delete.
        """
        self._sweep_staging(grace_s)
        cutoff = time.time() - grace_s
        removed = 0
        for shard in sorted(self._images.iterdir()):
            if should_stop():
                break
            if shard.name.startswith(".") or not shard.is_dir():
                continue  # probes, staging, nothing of an image's
            pieces = _folders(shard, cutoff)
            if pieces:
                removed += self._delete_orphans(pieces, cutoff)
        return removed

    def _delete_orphans(self, pieces: list[Piece], cutoff: float) -> int:
        with self._sql():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                rows: dict[str, str | None] = {}
                for start in range(0, len(pieces), _LOOKUP_BATCH):
                    ids = [p.image_id for p in pieces[start : start + _LOOKUP_BATCH]]
                    found = self._db.execute(
                        f"SELECT id FROM images WHERE id IN ({', '.join('?' * len(ids))})", ids
                    )
                    rows.update((row[0], None) for row in found)
                doomed = orphans(pieces, rows, cutoff)
                for folder in doomed:
                    shutil.rmtree(folder, ignore_errors=True)
            finally:
                self._db.execute("COMMIT")  # nothing written: this only releases the lock
        return len(doomed)

    # -- devices -------------------------------------------------------------------------------

    def upsert_device(self, device: DeviceRecord) -> None:
        with self._sql():
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
        with self._sql():
            rows = self._db.execute(
                "SELECT device_id, online, last_seen_us, status FROM devices ORDER BY device_id"
            ).fetchall()
        return [device for device in map(device_from_row, rows) if device is not None]

    def delete_device(self, device_id: str) -> bool:
        with self._sql():
            cursor = self._db.execute("DELETE FROM devices WHERE device_id = ?", (device_id,))
        return cursor.rowcount > 0

    # -- health --------------------------------------------------------------------------------

    def check_writable(self) -> str | None:
        """A real write and read of both a file and the index, leaving nothing behind."""
        probe = self._images / f".probe-{uuid.uuid4().hex}"
        try:
            try:
                probe.write_bytes(b"ok")
                if probe.read_bytes() != b"ok":
                    return f"{probe} reads back other bytes than were written"
            finally:
                probe.unlink(missing_ok=True)  # also after a write the disk refused half way
            written = time.time_ns() // 1000
            with self._lock:
                # Committed, not rolled back: only a commit shows that the journal and the
                # database file take writes.
                self._db.execute("INSERT OR REPLACE INTO probe VALUES (1, ?)", (written,))
                row = self._db.execute("SELECT written_us FROM probe WHERE id = 1").fetchone()
            if row is None or row[0] != written:
                return "the index does not read back what was written to it"
        except (OSError, sqlite3.Error) as error:
            return f"{type(error).__name__}: {error}"
        return None

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _folders(shard: Path, cutoff: float) -> list[Piece]:
    """The image folders of one shard last written at or before ``cutoff``."""
    pieces: list[Piece] = []
    with contextlib.suppress(OSError):  # the shard gone meanwhile: nothing to sweep
        for folder in shard.iterdir():
            if folder.name.startswith("."):
                continue  # staging: swept by its own rule
            with contextlib.suppress(OSError):
                modified = folder.stat().st_mtime
                if folder.is_dir() and modified <= cutoff:
                    pieces.append(Piece(str(folder), folder.name, None, modified))
    return pieces


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, ValueError):
        return None  # ValueError: a NUL in the id, which no file has
    except OSError as error:
        raise StoreUnavailableError(f"reading {path.name}: {error}") from error
