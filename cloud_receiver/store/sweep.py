"""The orphan sweep: bytes a crash left without a database row are deleted after a grace period.

Every backend writes an image's bytes first and its row last, so the row is the commit point: a
crash in between leaves bytes no row names (an *orphan*), never a row without its bytes. The
sweep finds them: each stored piece (an object of the s3 backend, an image folder of the local
one) carries the image id it belongs to, the generation it was written under (s3 only: every
put writes a fresh one, which the row names) and its last write time. A piece is an orphan when
it is older than the grace period and its id has no row, or the row names another generation.

The grace period is what keeps the sweep away from a put in progress, whose bytes exist a
moment before its row: it must be longer than any put takes. Which pieces are orphans is decided
by :func:`orphans` alone, with no I/O, so the rule is tested without a bucket or a database; the
backends list, look up and delete (``sweep_orphans``), and :class:`OrphanSweeper` runs them at
start and then periodically on a thread of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """Bytes of one image as stored: ``name`` is what to delete (an object key, a folder)."""

    name: str
    image_id: str
    generation: str | None  # None: the backend keeps one generation per id (local)
    modified: float  # epoch seconds


def image_key(key: str) -> tuple[str, str] | None:
    """(image id, generation) of an s3 backend key ``images/<id[:2]>/<id>/<gen>/<file>``.

    None for any other key: what the sweep cannot attribute to an image it leaves alone.
    """
    parts = key.split("/")
    if len(parts) != 5 or parts[0] != "images" or not all(parts[1:]):
        return None
    _, shard, image_id, generation, _ = parts
    return (image_id, generation) if image_id[:2] == shard else None


def orphans(pieces: Iterable[Piece], rows: Mapping[str, str | None], cutoff: float) -> list[str]:
    """Names of the pieces written at or before ``cutoff`` that no row commits.

    ``rows`` maps the image ids that have a row to the generation it names (None where the
    backend has no generations); it needs to hold only the ids of ``pieces``.
    """
    doomed: list[str] = []
    for piece in pieces:
        if piece.modified > cutoff:
            continue  # young: possibly a put whose row is still coming
        if piece.image_id not in rows:
            doomed.append(piece.name)
        elif piece.generation is not None and rows[piece.image_id] != piece.generation:
            doomed.append(piece.name)  # a replaced generation whose deletion did not happen
    return doomed


@runtime_checkable
class SweepsOrphans(Protocol):
    """A store that can sweep its orphans (both backends; test doubles need not)."""

    def sweep_orphans(
        self, grace_s: float, *, should_stop: Callable[[], bool] = lambda: False
    ) -> int:
        """Delete orphans older than ``grace_s``; how many pieces were deleted.

        ``should_stop`` is asked between batches, so a long sweep ends promptly at shutdown.
        """
        ...


class OrphanSweeper:
    """Runs ``store.sweep_orphans`` at start and then every ``interval_s``, on its own thread.

    A sweep that fails (the bucket or database away) is logged and tried again at the next
    interval: orphans cost space, never correctness, so nothing waits for the sweep.
    """

    def __init__(self, store: SweepsOrphans, *, grace_s: float, interval_s: float) -> None:
        self._store = store
        self._grace_s = grace_s
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dctlink-orphan-sweep", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                removed = self._store.sweep_orphans(self._grace_s, should_stop=self._stop.is_set)
            except Exception:  # housekeeping: any failure must leave the thread for the next try
                log.exception("orphan sweep failed; trying again at the next interval")
            else:
                if removed:
                    log.info(
                        "orphans a crash left behind deleted",
                        extra={"fields": {"pieces": removed, "grace_s": self._grace_s}},
                    )
            self._stop.wait(self._interval_s)

    def close(self) -> None:
        """Stop, waiting for a sweep in progress to finish its batch (before the store closes)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
