"""Re-run recovery over stored images (say, after installing a new model), in place.

Reads each image's payload as received, decodes and recovers it again, and replaces its stage
PNGs and metadata; arrival time and id are kept. Images are walked newest capture first.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from cloud_receiver.ingest.pipeline import build_record
from cloud_receiver.recovery import Recovery
from cloud_receiver.store import ImageQuery, Store
from shared.codec import DecodeLimits, PayloadError, PayloadErrorKind, decode

log = logging.getLogger(__name__)


@dataclass
class ReprocessReport:
    done: int = 0
    failed: int = 0


def reprocess(
    store: Store,
    recovery: Recovery,
    limits: DecodeLimits,
    *,
    device: str | None = None,
    progress: Callable[[str], None] = lambda image_id: None,
) -> ReprocessReport:
    report = ReprocessReport()
    cursor: str | None = None
    while True:
        page = store.images(ImageQuery(limit=100, cursor=cursor, device=device))
        for old in page.items:
            payload = store.payload(old.id)
            try:
                if payload is None:
                    raise PayloadError(PayloadErrorKind.INVALID, "the stored payload is missing")
                started = time.perf_counter()
                decoded = decode(payload, limits=limits)
                decode_s = time.perf_counter() - started
            except PayloadError as error:
                report.failed += 1
                log.error(
                    "cannot reprocess", extra={"fields": {"image_id": old.id, "error": str(error)}}
                )
                continue
            stages = recovery.run(decoded)
            record, pngs = build_record(
                decoded,
                stages,
                received_at=old.received_at,
                timings_s={"decode": decode_s, **stages.timings_s},
            )
            store.put(record, payload, pngs, replace=True)
            report.done += 1
            progress(old.id)
        if page.next_cursor is None:
            return report
        cursor = page.next_cursor
