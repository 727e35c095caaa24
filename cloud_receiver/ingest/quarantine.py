"""Rejected messages kept for inspection: ``<name>.bin`` as received plus ``<name>.json``.

A broken or hostile device can send garbage as fast as the link allows, so the folder has two
bounds: ``max_files`` entries (a ``.bin`` and its sidecar are one entry) and ``max_bytes`` of
both files together. An entry that would pass either bound first deletes the oldest entries,
so the folder always holds the newest rejections, the ones an operator is looking into. An entry
larger than ``max_bytes`` on its own is not kept; every rejection is logged and counted anyway.

Names start with the UTC time (``20240102T030405678901-<random>``), so sorting them is oldest
first. At start-up the entries already in the folder are counted, with their bytes, so a
restart neither forgets them nor lets the folder grow past the bounds.
"""

from __future__ import annotations

import contextlib
import json
import threading
import uuid
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path

_SUFFIXES = (".bin", ".json")


class Quarantine:
    def __init__(self, folder: Path, max_files: int, max_bytes: int) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_files = max_files
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, int] = OrderedDict()  # name -> bytes, oldest first
        self._bytes = 0
        sizes: dict[str, int] = {}
        for suffix in _SUFFIXES:
            for path in self.folder.glob(f"*{suffix}"):
                with contextlib.suppress(OSError):  # gone meanwhile: nothing to count
                    sizes[path.stem] = sizes.get(path.stem, 0) + path.stat().st_size
        for name in sorted(sizes):
            self._entries[name] = sizes[name]
            self._bytes += sizes[name]

    def usage(self) -> tuple[int, int]:
        """(entries, bytes) in the folder now."""
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
    ) -> Path | None:
        """Write the message and its sidecar, deleting the oldest entries to make room.

        None when it is not kept: larger than the whole byte bound, or the disk refused it.
        """
        # The lock is held while writing: an entry counted before its files exist could be
        # chosen for deletion by another thread before they are written, and then outlive it.
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
            path = self.folder / f"{name}.bin"
            try:
                path.write_bytes(data)
                path.with_suffix(".json").write_bytes(text)
            except OSError:  # a full disk must not turn a rejection into a crash
                self._unlink(name)
                return None
            self._entries[name] = size
            self._bytes += size
            return path

    def _delete_oldest(self) -> None:
        name, size = self._entries.popitem(last=False)
        self._bytes -= size
        self._unlink(name)

    def _unlink(self, name: str) -> None:
        for suffix in _SUFFIXES:
            # An operator may have moved it away already; a file we cannot delete is theirs now.
            with contextlib.suppress(OSError):
                (self.folder / f"{name}{suffix}").unlink(missing_ok=True)
