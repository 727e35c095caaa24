"""Chunks kept on disk from their acknowledgement until their image is whole in the inbox.

A chunk must be acknowledged as it arrives: holding a large image's chunks unacknowledged
would fill the broker's in-flight window (20 messages in mosquitto) and stall it. Once a chunk
is acknowledged the sender's spool lets the image go, so from then on this journal is the only
copy. Each chunk is written here (fsync) before its acknowledgement, so a receiver killed half
way through an image finds its chunks at the next start and completes it with the rest.

The journal lives in ``data_dir`` and is shared by every receiver on that folder: with a
``$share`` group the broker hands the chunks of one image to different replicas, and whichever
writes the last chunk sees the image complete on disk and assembles it. Two replicas seeing it
complete at once race for one atomic rename (:meth:`ChunkJournal.claim`); the loser leaves it.

Layout: ``<folder>/<device id as hex>.<image id>/<index>.chunk``, each file a message as the
inbox writes it (topic, then the chunk message). A claimed image's folder is renamed to
``...<image id>.claimed-<random>`` until its payload is in the inbox, then deleted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cloud_receiver.ingest.inbox import read_message, write_message

_SUFFIX = ".chunk"
_CLAIMED = ".claimed-"


@dataclass(frozen=True)
class Claimed:
    """An image's chunks, taken for assembling by this receiver."""

    folder: Path
    device_id: str
    topic: str  # the topic the chunks came on
    messages: list[bytes]  # chunk messages in index order


class ChunkJournal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)

    def _image(self, device_id: str, image_id: uuid.UUID) -> Path:
        # Hex, not the id itself: any text a topic level can hold is a safe file name then.
        return self.folder / f"{device_id.encode().hex()}.{image_id.hex}"

    def write(
        self, device_id: str, topic: str, image_id: uuid.UUID, index: int, message: bytes
    ) -> int:
        """Keep one chunk durably; returns how many chunks of its image are on disk now."""
        image = self._image(device_id, image_id)
        image.mkdir(exist_ok=True)
        write_message(image / f"{index:06d}{_SUFFIX}", topic, message)
        return sum(1 for _ in image.glob(f"*{_SUFFIX}"))

    def claim(self, device_id: str, image_id: uuid.UUID) -> Claimed | None:
        """Take the image's chunks for assembling; None when another receiver took them."""
        image = self._image(device_id, image_id)
        claimed = image.with_name(f"{image.name}{_CLAIMED}{uuid.uuid4().hex[:8]}")
        try:
            os.rename(image, claimed)
        except FileNotFoundError:
            return None
        return self._read(claimed, device_id)

    @staticmethod
    def _read(folder: Path, device_id: str) -> Claimed:
        read = [read_message(path) for path in sorted(folder.glob(f"*{_SUFFIX}"))]
        topic = read[0][0] if read else ""
        return Claimed(folder, device_id, topic, [message for _, message in read])

    @staticmethod
    def release(claimed: Claimed) -> None:
        """Forget a claimed image: its payload is in the inbox now (or was refused)."""
        shutil.rmtree(claimed.folder, ignore_errors=True)

    def drop(self, device_id: str, image_id: uuid.UUID) -> None:
        """Forget an image that will not complete (expired, evicted or refused)."""
        shutil.rmtree(self._image(device_id, image_id), ignore_errors=True)

    def recover(self, stale_claim_s: float) -> Iterator[tuple[str, str, list[bytes]]]:
        """What an earlier run left: ``(device id, topic, chunk messages)`` per image.

        A claimed folder older than ``stale_claim_s`` was being assembled by a receiver that
        died before its payload reached the inbox; it is taken back. A younger one may belong
        to another receiver assembling it right now, and is left to it.
        """
        cutoff = time.time() - stale_claim_s
        for folder in sorted(self.folder.iterdir(), key=_mtime):
            name, claimed, _ = folder.name.partition(_CLAIMED)
            if claimed and _mtime(folder) >= cutoff:
                continue
            try:
                device_id = bytes.fromhex(name.split(".")[0]).decode()
            except (ValueError, UnicodeDecodeError):
                shutil.rmtree(folder, ignore_errors=True)  # not ours
                continue
            paths = sorted(folder.glob(f"*{_SUFFIX}"))
            messages: list[bytes] = []
            topic = ""
            for path in paths:
                with contextlib.suppress(OSError, ValueError):
                    topic, message = read_message(path)
                    messages.append(message)
            if claimed:  # back under its own name, so drop() and claim() find it
                with contextlib.suppress(OSError):
                    folder.rename(folder.with_name(name))
            if messages:
                yield device_id, topic, messages

    def reclaim_stale(self, stale_s: float) -> list[Claimed]:
        """Claims older than ``stale_s``, taken over: their receiver died between the claim and
        the inbox (a live one takes milliseconds). Atomic like :meth:`claim`, so one replica
        takes each; a claimer that was only slow ends up with a duplicate, which ingest ignores.
        """
        cutoff = time.time() - stale_s
        taken = []
        for folder in self.folder.iterdir():
            name, claimed, _ = folder.name.partition(_CLAIMED)
            if not claimed or _mtime(folder) >= cutoff:
                continue
            try:
                device_id = bytes.fromhex(name.split(".")[0]).decode()
                ours = folder.with_name(f"{name}{_CLAIMED}{uuid.uuid4().hex[:8]}")
                os.rename(folder, ours)
            except (ValueError, UnicodeDecodeError, OSError):
                continue  # not ours, or another replica took it first
            os.utime(ours)  # fresh again, so no other replica thinks it stale at once
            taken.append(self._read(ours, device_id))
        return taken

    def sweep(self, older_than_s: float) -> int:
        """Delete unclaimed images none of whose chunks arrived for ``older_than_s``.

        Expiry in memory covers this receiver's images; this covers a crash's leftovers and
        images another replica abandoned. Returns how many were deleted.
        """
        cutoff = time.time() - older_than_s
        swept = 0
        for folder in self.folder.iterdir():
            if _CLAIMED in folder.name or _mtime(folder) >= cutoff:
                continue
            shutil.rmtree(folder, ignore_errors=True)
            swept += 1
        return swept

    def images(self) -> int:
        """Images with chunks on disk."""
        return sum(1 for _ in self.folder.iterdir())


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
