"""One image record as a row of plain values, shared by the SQL backends (SQLite, PostgreSQL).

Times are microseconds since the epoch (exact and sortable, so the cursor is the same in every
backend); ``stages`` and ``timings_s`` are JSON text.
"""

from __future__ import annotations

import json
from typing import Any

from cloud_receiver.store.base import ImageRecord, from_micros, to_micros

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
        stages=json.loads(row[11]),
        timings_s=json.loads(row[12]),
        model_version=row[13],
    )
