"""Rejected messages kept for inspection: ``<name>.bin`` as received plus ``<name>.json``.

A broken or hostile device can send garbage as fast as the link allows, so the quarantine has
two bounds: ``max_files`` entries (a ``.bin`` and its sidecar are one entry) and ``max_bytes``
of both together. An entry that would pass either bound first deletes the oldest entries, so
the quarantine always holds the newest rejections, the ones an operator is looking into. An
entry larger than ``max_bytes`` on its own is not kept; every rejection is logged and counted.

Names start with the UTC time (``20240102T030405678901-<random>``), so sorting them is oldest
first. At start-up the entries already there are counted, with their bytes, so a restart
neither forgets them nor lets the quarantine grow past the bounds.

Where entries live is a :class:`Shelf`, chosen with the store's backend: :class:`FolderShelf`
(``<data_dir>/quarantine/``) or :class:`BucketShelf` (``<s3_prefix>quarantine/`` in the store's
bucket). :class:`Quarantine` keeps the accounting and the eviction order; a shelf only lists,
writes and deletes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from cloud_receiver.store.base import StoreUnavailableError

if TYPE_CHECKING:
    from cloud_receiver.store.s3 import S3Objects

log = logging.getLogger(__name__)

_SUFFIXES = (".bin", ".json")


class Shelf(Protocol):
    """Storage for quarantine entries; the :class:`Quarantine` decides what to keep."""

    def sizes(self) -> dict[str, int]:
        """Bytes of each entry there now (both parts), by name; read once, at start-up."""
        ...

    def write(self, name: str, data: bytes, sidecar: bytes) -> str | None:
        """Keep an entry; where it is, or None when refused (nothing of it left behind)."""
        ...

    def delete(self, name: str) -> None:
        """Delete an entry, best effort: one an operator moved away is no error."""
        ...

    def close(self) -> None: ...


class FolderShelf:
    """Entries as two files in a local folder, written before :meth:`write` returns."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        for suffix in _SUFFIXES:
            for path in self.folder.glob(f"*{suffix}"):
                with contextlib.suppress(OSError):  # gone meanwhile: nothing to count
                    sizes[path.stem] = sizes.get(path.stem, 0) + path.stat().st_size
        return sizes

    def write(self, name: str, data: bytes, sidecar: bytes) -> str | None:
        path = self.folder / f"{name}.bin"
        try:
            path.write_bytes(data)
            path.with_suffix(".json").write_bytes(sidecar)
        except OSError:  # a full disk must not turn a rejection into a crash
            self.delete(name)
            return None
        return str(path)

    def delete(self, name: str) -> None:
        for suffix in _SUFFIXES:
            # An operator may have moved it away already; a file we cannot delete is theirs now.
            with contextlib.suppress(OSError):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)

    def close(self) -> None:
        pass


class BucketShelf:
    """Entries as two objects under ``quarantine/`` of the store's bucket (backend s3).

    Writes and deletes go, in order, through a queue to one thread of their own: rejections
    are made on the thread that reads the broker too, and a flood of them must not wait on
    bucket round trips. Order is what keeps the bounds: an entry's deletion is queued after its
    write, so it cannot outlive it. At most ``max_pending_bytes`` wait; past that an entry is
    refused (not kept, still logged and counted). An entry the bucket refuses stays counted
    until evicted, so the bounds can be undershot that way, never passed. The shelf owns
    ``objects`` and closes it.
    """

    PREFIX = "quarantine/"

    def __init__(self, objects: S3Objects, *, max_pending_bytes: int = 64 * 1024 * 1024) -> None:
        # Imported here: botocore loads slowly and only this backend needs it.
        from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

        self._errors = (BotoCoreError, ClientError)
        self._objects = objects
        self._max_pending = max_pending_bytes
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._queue: queue.SimpleQueue[tuple[str, bytes, bytes] | str | None] = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._drain, name="dctlink-quarantine-bucket", daemon=True
        )
        self._thread.start()

    def sizes(self) -> dict[str, int]:
        sizes: dict[str, int] = {}
        try:
            for page in self._objects.list(self.PREFIX):
                for item in page:
                    stem, dot, suffix = item.key[len(self.PREFIX) :].rpartition(".")
                    if dot and f".{suffix}" in _SUFFIXES and "/" not in stem:
                        sizes[stem] = sizes.get(stem, 0) + item.size
        except self._errors as error:
            raise StoreUnavailableError(
                f"listing the quarantine in bucket {self._objects.bucket!r}: {error}"
            ) from error
        return sizes

    def write(self, name: str, data: bytes, sidecar: bytes) -> str | None:
        size = len(data) + len(sidecar)
        with self._pending_lock:
            if self._pending + size > self._max_pending:
                return None
            self._pending += size
        self._queue.put((name, data, sidecar))
        return f"s3://{self._objects.bucket}/{self._objects.prefix}{self.PREFIX}{name}.bin"

    def delete(self, name: str) -> None:
        self._queue.put(name)

    def _keys(self, name: str) -> list[str]:
        return [f"{self.PREFIX}{name}{suffix}" for suffix in _SUFFIXES]

    def _drain(self) -> None:
        while (job := self._queue.get()) is not None:
            try:
                if isinstance(job, str):
                    self._objects.delete(self._keys(job))
                else:
                    name, data, sidecar = job
                    try:
                        self._objects.put(f"{self.PREFIX}{name}.bin", data)
                        self._objects.put(f"{self.PREFIX}{name}.json", sidecar)
                    finally:
                        with self._pending_lock:
                            self._pending -= len(data) + len(sidecar)
            except self._errors as error:
                log.warning(
                    "quarantine bucket write failed",
                    extra={"fields": {"error": f"{type(error).__name__}: {error}"}},
                )

    def close(self, timeout_s: float = 10.0) -> None:
        """Finish what is queued, then close the client; give up after ``timeout_s``."""
        self._queue.put(None)
        self._thread.join(timeout_s)
        if self._thread.is_alive():  # the bucket unreachable: shutdown must not hang on it
            with self._pending_lock:
                pending = self._pending
            log.warning(
                "quarantine entries not written to the bucket at shutdown",
                extra={"fields": {"pending_bytes": pending}},
            )
            return
        self._objects.close()


class Quarantine:
    """The bounded quarantine on ``where``: a :class:`Shelf`, or a folder for a FolderShelf."""

    def __init__(self, where: Path | Shelf, max_files: int, max_bytes: int) -> None:
        self.shelf: Shelf = FolderShelf(where) if isinstance(where, Path) else where
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # name -> bytes, oldest first
        self._bytes = 0
        sizes = self.shelf.sizes()
        for name in sorted(sizes):
            self._entries[name] = sizes[name]
            self._bytes += sizes[name]

    def usage(self) -> tuple[int, int]:
        """(entries, bytes) kept now."""
        with self._lock:
            return len(self._entries), self._bytes

    def keep(
        self,
        data: bytes,
        *,
        reason: str,
        reason_class: str,
        offset: int | None,
        topic: str | None,
        device_id: str | None,
    ) -> str | None:
        """Keep the message and its sidecar, deleting the oldest entries to make room.

        Where it is kept, or None when it is not: larger than the whole byte bound, or the
        shelf refused it.
        """
        # The lock is held while writing: an entry counted before it is written could be
        # chosen for deletion by another thread before it is, and then outlive it.
        with self._lock:
            now = datetime.now(UTC)
            name = f"{now:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:12]}"
            sidecar = {
                "reason": reason,
                "reason_class": reason_class,
                "offset": offset,
                "topic": topic,
                "device_id": device_id,
                "time": now.isoformat(),
                "bytes": len(data),
            }
            text = (json.dumps(sidecar, indent=1) + "\n").encode()
            size = len(data) + len(text)
            if self.max_files < 1 or size > self.max_bytes:
                return None
            while self._entries and (
                len(self._entries) >= self.max_files or self._bytes + size > self.max_bytes
            ):
                self._delete_oldest()
            where = self.shelf.write(name, data, text)
            if where is None:
                return None
            self._entries[name] = size
            self._bytes += size
            return where

    def _delete_oldest(self) -> None:
        name, size = self._entries.popitem(last=False)
        self._bytes -= size
        self.shelf.delete(name)

    def close(self) -> None:
        self.shelf.close()
