"""The inbox: MQTT payloads acknowledged to the broker but not yet stored, kept on disk.

Why it exists: the broker delivers one session's messages in order, through a window of about
20 unacknowledged ones. If the receiver held images unacknowledged until they were stored, a
device flooding expensive payloads would fill that window and every other device's images
would wait behind the flood at the broker. Writing a payload here (with fsync) is cheap, so
the receiver acknowledges at disk speed and picks the next image to recover by device, fairly.
A crash loses nothing: what is here at start-up is recovered then.

One file per payload, ``<sequence>.<attempts>.msg``: a 2-byte topic length, the topic, the
payload. ``attempts`` counts the times recovery started on it, renamed *before* each start, so a
payload that kills the process (out of memory) is seen at the next start-up with its count; one
that has failed twice goes to the quarantine instead of a third try (:meth:`Inbox.begin`).

Bounded by bytes over all devices (full: the caller stops reading from the broker) and per
device in bytes and files (over: that device's payload is refused, the others go on).
"""

from __future__ import annotations

import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

_TOPIC_LENGTH = struct.Struct(">H")
_SUFFIX = ".msg"


class InboxFullError(Exception):
    """This device holds all the inbox lets one device hold; ``reason`` says which bound."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Entry:
    path: Path
    device_id: str
    size: int
    attempts: int


class Inbox:
    def __init__(
        self,
        folder: Path,
        *,
        max_bytes: int,
        max_bytes_per_device: int,
        max_files_per_device: int,
    ) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_bytes = max_bytes
        self.max_bytes_per_device = max_bytes_per_device
        self.max_files_per_device = max_files_per_device
        self._lock = threading.Condition()
        self._bytes = 0
        self._device_bytes: dict[str, int] = {}
        self._device_files: dict[str, int] = {}
        self._sequence = 0
        self._closed = False

    def recover(self) -> list[Entry]:
        """What an earlier run left, oldest first (call once, before :meth:`put`)."""
        for partial in self.folder.glob("*.part"):
            partial.unlink()  # written before a crash, so never acknowledged: the broker has it
        found = []
        for path in sorted(self.folder.glob(f"*{_SUFFIX}"), key=_sequence_of):
            try:
                topic, payload = read_message(path)
                attempts = int(path.name.split(".")[1])
            except (OSError, ValueError, struct.error):
                path.unlink(missing_ok=True)
                continue
            device_id = topic.split("/")[1] if topic.count("/") == 2 else ""
            entry = Entry(path, device_id, len(payload), attempts)
            self._account(entry, +1)
            self._sequence = max(self._sequence, _sequence_of(path) + 1)
            found.append(entry)
        return found

    @staticmethod
    def read(entry: Entry) -> tuple[str, bytes]:
        """The topic and payload of ``entry``."""
        return read_message(entry.path)

    def put(self, device_id: str, topic: str, payload: bytes) -> Entry:
        """Keep ``payload`` durably. Waits while the inbox is full over all devices (that is
        the back-pressure on the broker); raises InboxFullError past this device's share."""
        size = len(payload)
        with self._lock:
            if self._device_files.get(device_id, 0) >= self.max_files_per_device:
                raise InboxFullError(
                    f"device {device_id!r} already has {self.max_files_per_device} images"
                    " waiting to be recovered"
                )
            if self._device_bytes.get(device_id, 0) + size > self.max_bytes_per_device:
                raise InboxFullError(
                    f"device {device_id!r} already has {self._device_bytes.get(device_id, 0)}"
                    f" bytes waiting to be recovered (bound {self.max_bytes_per_device})"
                )
            self._lock.wait_for(
                lambda: self._closed or self._bytes == 0 or self._bytes + size <= self.max_bytes
            )
            sequence = self._sequence
            self._sequence += 1
            entry = Entry(self.folder / f"{sequence:012d}.0{_SUFFIX}", device_id, size, 0)
            self._account(entry, +1)
        try:
            write_message(entry.path, topic, payload)
        except BaseException:
            self.remove(entry)
            raise
        return entry

    def begin(self, entry: Entry) -> Entry:
        """Count one more attempt, durably, before recovery starts on ``entry``."""
        return self._renumber(entry, entry.attempts + 1)

    def retreat(self, entry: Entry) -> Entry:
        """Take back the attempt :meth:`begin` counted: it failed for the store, not the payload.

        A full disk or a locked database says nothing about the payload, so such a failure must
        not bring it closer to quarantine; best effort, since the disk may refuse this too.
        """
        try:
            return self._renumber(entry, max(0, entry.attempts - 1))
        except OSError:
            return entry

    def _renumber(self, entry: Entry, attempts: int) -> Entry:
        path = entry.path.with_name(f"{_sequence_of(entry.path):012d}.{attempts}{_SUFFIX}")
        os.replace(entry.path, path)
        sync_folder(self.folder)
        return Entry(path, entry.device_id, entry.size, attempts)

    def remove(self, entry: Entry) -> None:
        entry.path.unlink(missing_ok=True)
        with self._lock:
            self._account(entry, -1)
            self._lock.notify_all()

    def close(self) -> None:
        """Release callers waiting in :meth:`put` (their payloads are still written)."""
        with self._lock:
            self._closed = True
            self._lock.notify_all()

    @property
    def bytes(self) -> int:
        return self._bytes

    def device_bytes(self, device_id: str) -> int:
        return self._device_bytes.get(device_id, 0)

    def _account(self, entry: Entry, sign: int) -> None:
        self._bytes += sign * entry.size
        for table, amount in ((self._device_bytes, entry.size), (self._device_files, 1)):
            left = table.get(entry.device_id, 0) + sign * amount
            if left > 0:
                table[entry.device_id] = left
            else:
                table.pop(entry.device_id, None)


def _sequence_of(path: Path) -> int:
    return int(path.name.split(".")[0])


def write_message(path: Path, topic: str, payload: bytes) -> None:
    """Write ``topic`` and ``payload`` to ``path`` durably: whole or not at all (fsync)."""
    encoded = topic.encode("utf-8")
    partial = path.with_suffix(".part")
    try:
        with open(partial, "wb") as file:
            file.write(_TOPIC_LENGTH.pack(len(encoded)) + encoded)
            file.write(payload)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)  # a full disk must not fill up further with halves
        raise
    sync_folder(path.parent)


def read_message(path: Path) -> tuple[str, bytes]:
    data = path.read_bytes()
    (length,) = _TOPIC_LENGTH.unpack_from(data)
    topic = data[_TOPIC_LENGTH.size : _TOPIC_LENGTH.size + length].decode("utf-8")
    return topic, data[_TOPIC_LENGTH.size + length :]


def sync_folder(folder: Path) -> None:
    """Make a rename durable: fsync the directory entry too (POSIX)."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
