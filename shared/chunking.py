"""Chunks: how a payload larger than ``max_message_bytes`` crosses MQTT (docs/architecture.md 4).

Each chunk is one message on ``<prefix>/<device_id>/chunk``: a 32-byte header, then a slice
of the payload. All integers are big-endian.

    offset  size  field
    0       3     magic b"DCK"
    3       1     version (1)
    4       16    image id (UUID bytes, the payload's own image id)
    20      2     index of this chunk, 0-based
    22      2     count of chunks for this image (>= 1)
    24      4     total payload length in bytes
    28      4     byte offset of this slice in the payload

The receiver keys reassembly on (device id, image id), places each slice at its offset (so
duplicates and reordering are harmless) and has the whole payload when ``count`` distinct
indices have arrived and their lengths add up to ``total``. The payload's own CRC-32 then checks
the result. :class:`Reassembler` is that receiver side, bounded in time and memory
(docs/architecture.md section 4). This module is pure (bytes in, bytes out) so both the edge
sender and the cloud receiver import it.
"""

from __future__ import annotations

import struct
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

MAGIC = b"DCK"
VERSION = 1
_HEADER = struct.Struct(">3sB16sHHII")
HEADER_SIZE = _HEADER.size
MAX_CHUNKS = 0xFFFF


class ChunkError(ValueError):
    """A chunk that cannot be part of a valid payload; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"bad chunk: {reason}")
        self.reason = reason


@dataclass(frozen=True)
class ChunkHeader:
    image_id: uuid.UUID
    index: int
    count: int
    total: int
    offset: int


def pack_chunk(header: ChunkHeader, body: bytes) -> bytes:
    return (
        _HEADER.pack(
            MAGIC,
            VERSION,
            header.image_id.bytes,
            header.index,
            header.count,
            header.total,
            header.offset,
        )
        + body
    )


def unpack_chunk(message: bytes) -> tuple[ChunkHeader, bytes]:
    """Split one chunk message into its header and slice; checks version first."""
    if len(message) < HEADER_SIZE:
        raise ChunkError(f"{len(message)} bytes is shorter than the {HEADER_SIZE}-byte header")
    magic, version, image_id, index, count, total, offset = _HEADER.unpack_from(message)
    if magic != MAGIC:
        raise ChunkError(f"magic {magic!r} is not {MAGIC!r}")
    if version != VERSION:
        raise ChunkError(f"version {version} is not {VERSION}")
    body = message[HEADER_SIZE:]
    if count == 0 or index >= count:
        raise ChunkError(f"index {index} outside count {count}")
    if offset + len(body) > total:
        raise ChunkError(f"slice at {offset}+{len(body)} runs past total {total}")
    return ChunkHeader(uuid.UUID(bytes=image_id), index, count, total, offset), body


def split_payload(payload: bytes, image_id: uuid.UUID, max_message_bytes: int) -> list[bytes]:
    """The chunk messages for ``payload``, each at most ``max_message_bytes`` long."""
    slice_size = max_message_bytes - HEADER_SIZE
    if slice_size < 1:
        raise ValueError(f"max_message_bytes must exceed the {HEADER_SIZE}-byte chunk header")
    count = max(1, -(-len(payload) // slice_size))
    if count > MAX_CHUNKS:
        raise ValueError(f"payload of {len(payload)} bytes needs more than {MAX_CHUNKS} chunks")
    return [
        pack_chunk(
            ChunkHeader(image_id, index, count, len(payload), index * slice_size),
            payload[index * slice_size : (index + 1) * slice_size],
        )
        for index in range(count)
    ]


@dataclass
class ReassemblyStats:
    """Running counts, for the receiver's metrics and logs."""

    completed: int = 0
    duplicates: int = 0  # chunks ignored: a slice seen before, or an image already completed
    expired: int = 0  # images dropped because their chunks stopped arriving
    evicted: int = 0  # images dropped to stay within the memory bounds


@dataclass
class _Pending:
    total: int
    count: int
    slices: dict[int, tuple[int, bytes]]  # index -> (offset, body)
    held: int  # bytes of the slices: what this image really costs, whatever it claims
    last_seen: float


class Reassembler:
    """Collects chunk messages into payloads, within bounds that no sender can push it past.

    - ``timeout_s``: an image none of whose chunks arrived for this long is dropped (expired);
      call :meth:`expire` on a timer, since a sender that stops sends nothing to trigger it.
    - ``max_bytes_per_device``: bytes one device may hold in half-built images; past it that
      device's least recently active images are evicted first, and an image that claims more
      than the bound on its own is refused with :class:`ChunkError`.
    - ``max_bytes``: bytes held over all devices; past it the least recently active images
      of any device are evicted. Only bytes that arrived count: a claimed total allocates
      nothing until the image completes, so claims alone cost no memory.
    - ``max_pending``: images in progress over all devices (least recently active evicted).
    - ``remember``: how many completed image ids are kept so that their late or re-sent chunks
      are ignored as duplicates instead of starting a new image.
    - ``on_drop(device_id, image_id)``: called for each image dropped unfinished (expired or
      evicted), so a caller keeping chunks elsewhere (on disk) can let them go too.

    Pure: bytes in, bytes out; ``clock`` is injectable so tests need no sleeps. Images are keyed
    by (device id, image id), so one device cannot write into another's image.
    """

    def __init__(
        self,
        *,
        timeout_s: float = 60.0,
        max_bytes_per_device: int = 16 * 1024 * 1024,
        max_bytes: int = 64 * 1024 * 1024,
        max_pending: int = 1024,
        remember: int = 4096,
        clock: Callable[[], float] = time.monotonic,
        on_drop: Callable[[str, uuid.UUID], None] = lambda device_id, image_id: None,
    ) -> None:
        if (
            timeout_s <= 0
            or max_bytes_per_device < 1
            or max_bytes < 1
            or max_pending < 1
            or remember < 0
        ):
            raise ValueError("Reassembler bounds must be positive")
        self.timeout_s = timeout_s
        self.max_bytes_per_device = max_bytes_per_device
        self.max_bytes = max_bytes
        self._held = 0
        self.max_pending = max_pending
        self._remember = remember
        self._clock = clock
        self._on_drop = on_drop
        # Least recently active first: move_to_end on every chunk.
        self._pending: OrderedDict[tuple[str, uuid.UUID], _Pending] = OrderedDict()
        self._device_bytes: dict[str, int] = {}
        self._completed: OrderedDict[tuple[str, uuid.UUID], None] = OrderedDict()
        self.stats = ReassemblyStats()

    def add(self, message: bytes, device_id: str = "") -> bytes | None:
        """Feed one chunk message; returns the whole payload once its last chunk arrives.

        Raises :class:`ChunkError` for a chunk that cannot belong to a valid payload.
        """
        header, body = unpack_chunk(message)
        now = self._clock()
        self.expire(now)
        key = (device_id, header.image_id)
        if key in self._completed:
            self.stats.duplicates += 1
            return None
        entry = self._pending.get(key)
        if entry is None:
            entry = self._start(key, header, now)
        elif entry.total != header.total or entry.count != header.count:
            raise ChunkError(
                f"image {header.image_id}: total {header.total} or count {header.count}"
                f" differs from its earlier chunks ({entry.total}, {entry.count})"
            )
        entry.last_seen = now
        self._pending.move_to_end(key)
        seen = entry.slices.get(header.index)
        if seen is not None:
            if (seen[0], len(seen[1])) != (header.offset, len(body)):
                raise ChunkError(
                    f"image {header.image_id}: chunk {header.index} arrived again with a"
                    f" different slice ({header.offset}+{len(body)} after"
                    f" {seen[0]}+{len(seen[1])})"
                )
            self.stats.duplicates += 1
            return None
        entry.slices[header.index] = (header.offset, body)
        entry.held += len(body)
        self._held += len(body)
        self._device_bytes[key[0]] = self.pending_bytes(key[0]) + len(body)
        if len(entry.slices) < entry.count:
            self._make_room(key)
            return None
        self._drop(key)
        if entry.held != entry.total:
            raise ChunkError(
                f"image {header.image_id}: its {entry.count} slices do not add up to"
                f" {entry.total} bytes"
            )
        whole = bytearray(entry.total)
        for offset, part in entry.slices.values():
            whole[offset : offset + len(part)] = part
        self._completed[key] = None
        while len(self._completed) > self._remember:
            self._completed.popitem(last=False)
        self.stats.completed += 1
        return bytes(whole)

    def expire(self, now: float | None = None) -> list[uuid.UUID]:
        """Drop images idle for longer than ``timeout_s``; returns their image ids."""
        now = self._clock() if now is None else now
        expired: list[uuid.UUID] = []
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.last_seen <= self.timeout_s:
                break
            self._drop(key)
            self._on_drop(*key)
            expired.append(key[1])
        self.stats.expired += len(expired)
        return expired

    def is_duplicate(self, header: ChunkHeader, device_id: str = "") -> bool:
        """Whether ``header``'s chunk would be ignored: its image completed, or this slice held."""
        key = (device_id, header.image_id)
        entry = self._pending.get(key)
        return key in self._completed or (entry is not None and header.index in entry.slices)

    def discard(self, device_id: str, image_id: uuid.UUID) -> None:
        """Forget an image completed elsewhere (another replica, or from disk): not a drop."""
        key = (device_id, image_id)
        if key in self._pending:
            self._drop(key)
        self._completed[key] = None
        while len(self._completed) > self._remember:
            self._completed.popitem(last=False)

    def pending_bytes(self, device_id: str = "") -> int:
        """Bytes held for ``device_id``'s images in progress."""
        return self._device_bytes.get(device_id, 0)

    @property
    def held_bytes(self) -> int:
        """Bytes held over all devices."""
        return self._held

    @property
    def pending(self) -> int:
        """Images in progress, over all devices."""
        return len(self._pending)

    def _start(self, key: tuple[str, uuid.UUID], header: ChunkHeader, now: float) -> _Pending:
        bound = min(self.max_bytes_per_device, self.max_bytes)
        if header.total > bound:
            raise ChunkError(
                f"image {header.image_id}: {header.total} bytes exceeds the per-device"
                f" reassembly bound of {bound}"
            )
        while len(self._pending) >= self.max_pending:
            self._evict(next(iter(self._pending)))
        entry = _Pending(header.total, header.count, {}, 0, now)
        self._pending[key] = entry
        return entry

    def _make_room(self, key: tuple[str, uuid.UUID]) -> None:
        """Evict the least recently active images until the bounds hold again.

        ``key``, the image that just grew, goes last: it is the most recently active.
        """
        device_id = key[0]
        while self.pending_bytes(device_id) > self.max_bytes_per_device:
            self._evict(next(k for k in self._pending if k[0] == device_id))
        while self._held > self.max_bytes:
            self._evict(next(iter(self._pending)))

    def _evict(self, key: tuple[str, uuid.UUID]) -> None:
        self._drop(key)
        self._on_drop(*key)
        self.stats.evicted += 1

    def _drop(self, key: tuple[str, uuid.UUID]) -> None:
        entry = self._pending.pop(key)
        self._held -= entry.held
        left = self._device_bytes.get(key[0], 0) - entry.held
        if left > 0:
            self._device_bytes[key[0]] = left
        else:
            self._device_bytes.pop(key[0], None)
