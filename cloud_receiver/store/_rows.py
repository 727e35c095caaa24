"""One image record as a row of plain values, shared by the SQL backends (SQLite, PostgreSQL).

Times are microseconds since the epoch (exact and sortable, so the cursor is the same in every
backend); ``stages`` and ``timings_s`` are JSON text. Columns added after the first release
come last, so a table migrated with ``ALTER TABLE ... ADD COLUMN`` has the same order.

Device rows are read back through :func:`device_from_row`, which never lets one bad row (say,
a status an older receiver stored unchecked) fail the whole device list.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from cloud_receiver.device_status import load_stored_status
from cloud_receiver.store.base import (
    JPEG_BASES,
    DeviceRecord,
    ImageQuery,
    ImageRecord,
    JpegBasis,
    Page,
    decode_cursor,
    encode_cursor,
)
from shared.timestamps import from_micros, to_micros

log = logging.getLogger(__name__)

COLUMNS = (
    "id",
    "device_id",
    "captured_us",
    "received_us",
    "width",
    "height",
    "profile",
    "quality",
    "layout",
    "payload_bytes",
    "jpeg_bytes",
    "stages",
    "timings",
    "model_version",
    "jpeg_bytes_basis",
    "enhanced_note",
    "tables_quality",
)

#: Fills ``jpeg_bytes_basis`` of rows stored before the column existed. Their ``jpeg_bytes``
#: was always the receiver's estimate at the payload's quality, or at 90 without one.
BACKFILL_JPEG_BASIS = (
    "UPDATE images SET jpeg_bytes_basis = CASE WHEN quality IS NULL"
    " THEN 'assumed_quality_90' ELSE 'same_quality_setting' END"
    " WHERE jpeg_bytes IS NOT NULL AND jpeg_bytes_basis IS NULL"
)


def to_row(record: ImageRecord) -> tuple[Any, ...]:
    """The values of :data:`COLUMNS`, in order."""
    return (
        record.id,
        record.device_id,
        to_micros(record.captured_at),
        to_micros(record.received_at),
        record.width,
        record.height,
        record.profile,
        record.quality,
        record.layout,
        record.payload_bytes,
        record.jpeg_bytes,
        json.dumps(record.stages),
        json.dumps(record.timings_s),
        record.model_version,
        record.jpeg_bytes_basis,
        record.enhanced_note,
        record.tables_quality,
    )


def from_row(row: tuple[Any, ...] | Any) -> ImageRecord:
    """The record of a row whose first values are :data:`COLUMNS`, in order."""
    return ImageRecord(
        id=row[0],
        device_id=row[1],
        captured_at=from_micros(row[2]),
        received_at=from_micros(row[3]),
        width=row[4],
        height=row[5],
        profile=row[6],
        quality=row[7],
        layout=row[8],
        payload_bytes=row[9],
        jpeg_bytes=row[10],
        jpeg_bytes_basis=_basis(row[14]),
        stages=json.loads(row[11]),
        timings_s=json.loads(row[12]),
        model_version=row[13],
        enhanced_note=row[15],
        tables_quality=row[16],
    )


def _basis(value: str | None) -> JpegBasis | None:
    if value is not None and value not in JPEG_BASES:
        raise ValueError(f"unknown jpeg_bytes_basis {value!r} in the store")
    return value


def page_query(query: ImageQuery, mark: str) -> tuple[str, list[Any]]:
    """SELECT for one page of ``query``, newest capture first, with ``mark`` as placeholder.

    It asks for one row more than the page holds: that row tells whether another page
    exists without a COUNT (see :func:`page_from_rows`).
    """
    where: list[str] = []
    args: list[Any] = []
    if query.device is not None:
        where.append(f"device_id = {mark}")
        args.append(query.device)
    if query.since is not None:
        where.append(f"captured_us >= {mark}")
        args.append(to_micros(query.since))
    if query.until is not None:
        where.append(f"captured_us < {mark}")
        args.append(to_micros(query.until))
    if query.cursor is not None:
        captured_us, image_id = decode_cursor(query.cursor)
        where.append(f"(captured_us, id) < ({mark}, {mark})")
        args += [captured_us, image_id]
    sql = f"SELECT {', '.join(COLUMNS)} FROM images"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY captured_us DESC, id DESC LIMIT {mark}"
    return sql, [*args, query.limit + 1]


def page_from_rows(rows: list[Any], limit: int) -> Page:
    items = [from_row(row) for row in rows[:limit]]
    last = rows[limit - 1] if len(rows) > limit else None
    return Page(items, encode_cursor(last[2], last[0]) if last else None)


def device_from_row(row: tuple[Any, ...] | Any) -> DeviceRecord | None:
    """The device of a ``(device_id, online, last_seen_us, status)`` row; None when unreadable.

    A status that fails today's checks is served as ``{}`` (the row's online state stays); a
    row without a readable id or time is left out. Either is logged, so it can be cleaned up.
    """
    device_id, online, seen, text = row
    try:
        if not isinstance(device_id, str):
            raise TypeError(f"device id is {type(device_id).__name__}")
        last_seen = from_micros(seen)
    except (TypeError, ValueError, OverflowError) as error:
        log.warning(
            "unreadable device row left out",
            extra={"fields": {"device_id": repr(device_id), "error": str(error)}},
        )
        return None
    try:
        status = load_stored_status(text)
    except ValueError as error:
        log.warning(
            "stored device status unreadable, served as {}",
            extra={"fields": {"device_id": device_id, "error": str(error)}},
        )
        status = {}
    return DeviceRecord(device_id, bool(online), last_seen, status)
