"""The scale-out store: bytes in an S3-compatible bucket, metadata in PostgreSQL.

Several receivers may share one bucket and one database (docs/architecture.md section 7). Layout::

    images, devices                                    tables (created at start-up)
    <bucket>/<prefix>images/<id[:2]>/<id>/<gen>/payload.bin   the payload exactly as received
    <bucket>/<prefix>images/<id[:2]>/<id>/<gen>/<stage>.png   one PNG per available stage

Each write goes under a fresh generation ``<gen>`` that the row names, and the row is written
last: a reader never sees a row without its objects, a duplicate that loses the race to insert
deletes only its own objects, and a replacement deletes the old generation once the new row
is committed. A crash between the two leaves at worst orphan objects, never a row without them;
:meth:`PostgresStore.sweep_orphans` deletes those once they are older than a grace period
(``store/sweep.py``): objects whose id has no row, or whose generation is not the row's.
Behaviour (dedupe, ordering, cursors, filters) is the local store's: the same columns, times in
microseconds, and ``COLLATE "C"`` ids so ties break in the same byte order as SQLite's.
Tables created by an older receiver gain the newer columns at start-up, under the same lock.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any

import psycopg
from botocore.exceptions import BotoCoreError, ClientError
from psycopg_pool import ConnectionPool, PoolTimeout

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
    STAGES,
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    Page,
    StoreUnavailableError,
)
from cloud_receiver.store.s3 import ObjectInfo, S3Objects
from cloud_receiver.store.sweep import Piece, image_key, orphans
from shared.timestamps import to_micros

_SCHEMA_LOCK = 0x4443544C  # "DCTL": replicas starting together create the schema one at a time
_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT COLLATE "C" PRIMARY KEY,
    device_id TEXT COLLATE "C" NOT NULL,
    captured_us BIGINT NOT NULL,
    received_us BIGINT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    profile TEXT NOT NULL,
    quality INTEGER,
    layout TEXT NOT NULL,
    payload_bytes BIGINT NOT NULL,
    jpeg_bytes BIGINT,
    stages TEXT NOT NULL,
    timings TEXT NOT NULL,
    model_version TEXT,
    generation TEXT NOT NULL,
    jpeg_bytes_basis TEXT,
    enhanced_note TEXT,
    tables_quality INTEGER
);
CREATE INDEX IF NOT EXISTS images_by_capture ON images (captured_us DESC, id DESC);
CREATE INDEX IF NOT EXISTS images_by_device ON images (device_id, captured_us DESC, id DESC);
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT COLLATE "C" PRIMARY KEY,
    online BOOLEAN NOT NULL,
    last_seen_us BIGINT NOT NULL,
    status TEXT NOT NULL
);
"""
_COLUMNS = ", ".join(COLUMNS)
#: PostgreSQL text cannot hold NUL, and psycopg refuses to send it, so no stored id has one:
#: a query asking for one finds nothing here rather than failing as a server error.
_NUL = "\x00"
_INSERT = (
    f"INSERT INTO images ({_COLUMNS}, generation)"
    f" VALUES ({', '.join(['%s'] * (len(COLUMNS) + 1))}) ON CONFLICT (id)"
)
_UPDATE_ALL = ", ".join(f"{c} = EXCLUDED.{c}" for c in (*COLUMNS[1:], "generation"))


class PostgresStore:
    """:class:`~cloud_receiver.store.base.Store` on a bucket and a database; thread-safe.

    Connections come from a small pool (``pool_size``), each in autocommit mode; the few
    statements that must go together run in an explicit transaction.
    """

    def __init__(
        self, objects: S3Objects, dsn: str, *, pool_size: int = 4, timeout_s: float = 10.0
    ) -> None:
        self._objects = objects
        self._pool = ConnectionPool(
            dsn,
            min_size=1,
            max_size=pool_size,
            kwargs={"autocommit": True, "connect_timeout": max(1, round(timeout_s))},
            timeout=timeout_s,
            open=False,
            name="dctlink-store",
        )
        try:
            self._pool.open(wait=True, timeout=timeout_s)
        except PoolTimeout:
            self._pool.close()
            raise StoreUnavailableError(
                f"cannot connect to PostgreSQL within {timeout_s:g} s; check store.postgres_dsn"
                " and that the server accepts connections"
            ) from None
        with self._sql() as db, db.transaction():
            db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            db.execute(_SCHEMA)
            _migrate(db)

    @contextmanager
    def _sql(self) -> Iterator[psycopg.Connection[Any]]:
        """A pooled connection; backend failures become :class:`StoreUnavailableError`."""
        with _unavailable(), self._pool.connection() as connection:
            yield connection

    @staticmethod
    def _keys(image_id: str, generation: str, stages: tuple[str, ...] | list[str]) -> list[str]:
        prefix = f"images/{image_id[:2]}/{image_id}/{generation}/"
        return [f"{prefix}payload.bin", *(f"{prefix}{stage}.png" for stage in stages)]

    def _generation(self, image_id: str) -> str | None:
        if _NUL in image_id:
            return None
        with self._sql() as db:
            row = db.execute("SELECT generation FROM images WHERE id = %s", (image_id,)).fetchone()
        return None if row is None else str(row[0])

    # -- images --------------------------------------------------------------------------------

    def put(
        self,
        record: ImageRecord,
        payload: bytes,
        stage_pngs: Mapping[str, bytes],
        *,
        replace: bool = False,
    ) -> bool:
        if not replace and self.exists(record.id):
            return False  # the common duplicate: nothing uploaded at all
        generation = uuid.uuid4().hex
        keys = self._keys(record.id, generation, list(stage_pngs))
        try:
            with _unavailable():
                for key, data in zip(keys, [payload, *stage_pngs.values()], strict=True):
                    self._objects.put(key, data)
            with self._sql() as db, db.transaction():
                if replace:
                    old = db.execute(
                        "SELECT generation FROM images WHERE id = %s FOR UPDATE", (record.id,)
                    ).fetchone()
                    db.execute(
                        f"{_INSERT} DO UPDATE SET {_UPDATE_ALL}", (*to_row(record), generation)
                    )
                    stored = True
                else:
                    old = None
                    stored = (
                        db.execute(
                            f"{_INSERT} DO NOTHING RETURNING id", (*to_row(record), generation)
                        ).fetchone()
                        is not None
                    )
        except BaseException:
            with suppress(Exception):  # best effort: the error that matters is the original
                self._objects.delete(keys)
            raise
        if not stored:  # another writer inserted this id between our check and our insert
            self._delete_quietly(keys)
        elif old is not None and old[0] != generation:
            self._delete_quietly(self._keys(record.id, str(old[0]), STAGES))
        return stored

    def _delete_quietly(self, keys: list[str]) -> None:
        # The rows are committed; objects left behind cost space, not correctness.
        with suppress(BotoCoreError, ClientError):
            self._objects.delete(keys)

    def exists(self, image_id: str) -> bool:
        return self._generation(image_id) is not None

    def get(self, image_id: str) -> ImageRecord | None:
        if _NUL in image_id:
            return None
        with self._sql() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM images WHERE id = %s", (image_id,)).fetchone()
        return None if row is None else from_row(row)

    def images(self, query: ImageQuery) -> Page:
        sql, args = page_query(query, "%s")
        if query.device is not None and _NUL in query.device:
            return Page([], None)
        with self._sql() as db:
            rows = db.execute(sql, args).fetchall()
        return page_from_rows(rows, query.limit)

    def stage_png(self, image_id: str, stage: str) -> bytes | None:
        return self._object(image_id, stage)

    def payload(self, image_id: str) -> bytes | None:
        return self._object(image_id, None)

    def _object(self, image_id: str, stage: str | None) -> bytes | None:
        generation = self._generation(image_id)
        if generation is None:
            return None
        keys = self._keys(image_id, generation, [] if stage is None else [stage])
        with _unavailable():
            return self._objects.get(keys[-1])

    # -- the orphan sweep ------------------------------------------------------------------------

    def sweep_orphans(
        self, grace_s: float, *, should_stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Delete objects older than ``grace_s`` that no row commits; how many were deleted.

        One page of the listing at a time: its old pieces' ids are looked up in one query, so
        the sweep's memory and each query stay small however large the bucket is.
        """
        cutoff = time.time() - grace_s
        removed = 0
        with _unavailable():
            for page in self._objects.list("images/"):
                if should_stop():
                    break
                pieces = [p for p in map(_piece, page) if p is not None and p.modified <= cutoff]
                if not pieces:
                    continue
                with self._sql() as db:
                    rows = db.execute(
                        "SELECT id, generation FROM images WHERE id = ANY(%s)",
                        ([*{p.image_id for p in pieces}],),
                    ).fetchall()
                doomed = orphans(pieces, {str(i): str(g) for i, g in rows}, cutoff)
                self._objects.delete(doomed)
                removed += len(doomed)
        return removed

    # -- devices -------------------------------------------------------------------------------

    def upsert_device(self, device: DeviceRecord) -> None:
        with self._sql() as db:
            db.execute(
                "INSERT INTO devices (device_id, online, last_seen_us, status)"
                " VALUES (%s, %s, %s, %s) ON CONFLICT (device_id) DO UPDATE SET"
                " online = EXCLUDED.online, last_seen_us = EXCLUDED.last_seen_us,"
                " status = EXCLUDED.status",
                (
                    device.device_id,
                    device.online,
                    to_micros(device.last_seen),
                    json.dumps(device.status),
                ),
            )

    def list_devices(self) -> list[DeviceRecord]:
        with self._sql() as db:
            rows = db.execute(
                "SELECT device_id, online, last_seen_us, status FROM devices ORDER BY device_id"
            ).fetchall()
        return [device for device in map(device_from_row, rows) if device is not None]

    def delete_device(self, device_id: str) -> bool:
        with self._sql() as db:
            cursor = db.execute("DELETE FROM devices WHERE device_id = %s", (device_id,))
            return cursor.rowcount > 0

    # -- health --------------------------------------------------------------------------------

    def check_writable(self) -> str | None:
        problem = self._objects.check_writable()
        if problem is not None:
            return problem
        try:
            with self._pool.connection() as db, db.transaction(force_rollback=True):
                # The lock an INSERT takes: refused on a read-only server or transaction.
                db.execute("SET LOCAL lock_timeout = '2s'")
                db.execute("LOCK TABLE images IN ROW EXCLUSIVE MODE")
        except (psycopg.Error, PoolTimeout) as error:
            return f"PostgreSQL: {type(error).__name__}: {error}"
        return None

    def close(self) -> None:
        self._pool.close()
        self._objects.close()


def _piece(info: ObjectInfo) -> Piece | None:
    parts = image_key(info.key)
    if parts is None or _NUL in parts[0]:  # not an image's, or an id no row can hold
        return None
    return Piece(info.key, parts[0], parts[1], info.modified)


def _migrate(db: psycopg.Connection[Any]) -> None:
    """Bring tables created by an older receiver up to :data:`COLUMNS` (inside the schema lock)."""
    missing = db.execute(
        "SELECT 1 WHERE NOT EXISTS (SELECT 1 FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = 'images'"
        " AND column_name = 'jpeg_bytes_basis')"
    ).fetchone()
    if missing is not None:
        db.execute("ALTER TABLE images ADD COLUMN jpeg_bytes_basis TEXT")
        db.execute(BACKFILL_JPEG_BASIS)
    # NULL is right for older rows: no gate existed, so the network ran wherever it was loaded.
    db.execute("ALTER TABLE images ADD COLUMN IF NOT EXISTS enhanced_note TEXT")
    db.execute("ALTER TABLE images ADD COLUMN IF NOT EXISTS tables_quality INTEGER")


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (psycopg.OperationalError, PoolTimeout, BotoCoreError, ClientError) as error:
        raise StoreUnavailableError(f"{type(error).__name__}: {error}") from error
