"""Chunk wire format: byte-exact header, split and reassembly."""

from __future__ import annotations

import random
import uuid

import pytest

from shared.chunking import (
    HEADER_SIZE,
    ChunkError,
    ChunkHeader,
    Reassembler,
    pack_chunk,
    split_payload,
    unpack_chunk,
)

IMAGE_ID = uuid.UUID("01234567-89ab-7def-8123-456789abcdef")


def test_header_layout_is_byte_exact() -> None:
    message = pack_chunk(ChunkHeader(IMAGE_ID, 1, 3, 0x010203, 0x0400), b"xyz")
    assert HEADER_SIZE == 32
    assert message == (
        b"DCK\x01" + IMAGE_ID.bytes + b"\x00\x01\x00\x03\x00\x01\x02\x03\x00\x00\x04\x00xyz"
    )
    assert unpack_chunk(message) == (ChunkHeader(IMAGE_ID, 1, 3, 0x010203, 0x0400), b"xyz")


def test_every_chunk_fits_and_reassembly_survives_reordering_and_duplicates() -> None:
    payload = random.Random(1).randbytes(10_000)
    chunks = split_payload(payload, IMAGE_ID, 1024)
    assert len(chunks) == 11
    assert all(len(c) <= 1024 for c in chunks)
    shuffled = chunks[::-1] + chunks[:3]
    reassembler = Reassembler()
    results = [reassembler.add(c) for c in shuffled]
    assert [r for r in results if r is not None] == [payload]


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"DCK\x01", "shorter"),
        (b"XYZ\x01" + bytes(28), "magic"),
        (b"DCK\x02" + bytes(28), "version"),
        (pack_chunk(ChunkHeader(IMAGE_ID, 3, 3, 10, 0), b""), "outside"),
        (pack_chunk(ChunkHeader(IMAGE_ID, 0, 1, 2, 0), b"abc"), "runs past"),
    ],
)
def test_malformed_chunks_are_refused(message: bytes, reason: str) -> None:
    with pytest.raises(ChunkError, match=reason):
        unpack_chunk(message)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _chunks(
    seed: int, size: int = 10_000, limit: int = 1024
) -> tuple[uuid.UUID, bytes, list[bytes]]:
    payload = random.Random(seed).randbytes(size)
    image_id = uuid.UUID(int=seed)
    return image_id, payload, split_payload(payload, image_id, limit)


def test_an_image_whose_chunks_stop_arriving_expires() -> None:
    clock = FakeClock()
    reassembler = Reassembler(timeout_s=30, clock=clock)
    image_id, payload, chunks = _chunks(1)
    assert reassembler.add(chunks[0], "cam-1") is None
    clock.now = 20
    assert reassembler.add(chunks[1], "cam-1") is None  # activity restarts the timeout
    clock.now = 49
    assert reassembler.expire() == []
    clock.now = 51
    assert reassembler.expire() == [image_id]
    assert (reassembler.pending, reassembler.pending_bytes("cam-1")) == (0, 0)
    assert reassembler.stats.expired == 1
    # Every chunk again, as a sender re-sends after a reconnect: the image completes.
    results = [reassembler.add(c, "cam-1") for c in chunks]
    assert results[-1] == payload


def test_memory_is_bounded_per_device_and_the_least_recent_image_goes_first() -> None:
    reassembler = Reassembler(max_bytes_per_device=20_000)
    # 10 000-byte payloads in an 8 000-byte and a 2 000-byte slice.
    a, b, (_, third, c) = (
        _chunks(1, limit=8032)[2],
        _chunks(2, limit=8032)[2],
        _chunks(3, limit=8032),
    )
    _, other_payload, other = _chunks(4, limit=8032)
    reassembler.add(a[0], "cam-1")
    reassembler.add(other[0], "cam-2")
    reassembler.add(b[0], "cam-1")
    assert reassembler.pending_bytes("cam-1") == 16_000
    reassembler.add(c[0], "cam-1")  # 24 000 passes the bound: the first image is evicted
    assert reassembler.pending_bytes("cam-1") == 16_000
    assert reassembler.stats.evicted == 1
    assert [reassembler.add(m, "cam-1") for m in c[1:]][-1] == third
    assert [reassembler.add(m, "cam-2") for m in other[1:]][-1] == other_payload  # untouched
    assert reassembler.add(a[1], "cam-1") is None  # the evicted image starts over


def test_claims_cost_nothing_and_memory_is_bounded_over_all_devices() -> None:
    """100 devices each claiming 30 000 bytes with a 200-byte chunk hold 20 000, not 3 MB."""
    reassembler = Reassembler(max_bytes=30_000)
    for device in range(100):
        claim = pack_chunk(ChunkHeader(IMAGE_ID, 0, 2, 30_000, 0), b"x" * 200)
        assert reassembler.add(claim, f"cam-{device}") is None
    assert (reassembler.pending, reassembler.held_bytes) == (100, 20_000)
    # Real bytes past the global bound evict the least recently active images, whoever's.
    _, payload, chunks = _chunks(1, size=24_000, limit=8032)
    results = [reassembler.add(m, "cam-honest") for m in chunks]
    assert results[-1] == payload
    assert reassembler.held_bytes <= 30_000
    assert reassembler.stats.evicted > 0


def test_an_image_larger_than_the_bound_is_refused_before_allocating() -> None:
    reassembler = Reassembler(max_bytes_per_device=1_000_000)
    claim = pack_chunk(ChunkHeader(IMAGE_ID, 0, 2, 0xFFFF_FFFF, 0), b"x")
    with pytest.raises(ChunkError, match="per-device reassembly bound"):
        reassembler.add(claim, "cam-1")
    assert reassembler.pending == 0


def test_pending_images_are_bounded_over_all_devices() -> None:
    reassembler = Reassembler(max_pending=2)
    for seed in range(1, 4):
        reassembler.add(_chunks(seed)[2][0], f"cam-{seed}")
    assert reassembler.pending == 2
    assert reassembler.pending_bytes("cam-1") == 0
    assert reassembler.stats.evicted == 1


def test_duplicates_are_ignored_even_after_the_image_completed() -> None:
    reassembler = Reassembler()
    _, payload, chunks = _chunks(1)
    assert reassembler.add(chunks[0], "cam-1") is None
    assert reassembler.add(chunks[0], "cam-1") is None
    assert [reassembler.add(c, "cam-1") for c in chunks[1:]][-1] == payload
    # A re-sent image (its PUBACK was lost) must not start a half-built copy that lingers.
    assert [reassembler.add(c, "cam-1") for c in chunks] == [None] * len(chunks)
    assert reassembler.pending == 0
    assert reassembler.stats.duplicates == 1 + len(chunks)
    assert reassembler.stats.completed == 1


def test_devices_cannot_write_into_each_others_images() -> None:
    reassembler = Reassembler()
    _, payload, chunks = _chunks(1)
    forged = pack_chunk(ChunkHeader(uuid.UUID(int=1), 1, len(chunks), 10_000, 992), bytes(992))
    assert reassembler.add(forged, "cam-evil") is None
    assert [reassembler.add(c, "cam-1") for c in chunks][-1] == payload


@pytest.mark.parametrize(
    ("second", "reason"),
    [
        (ChunkHeader(IMAGE_ID, 1, 3, 99, 3), "differs from its earlier chunks"),
        (ChunkHeader(IMAGE_ID, 0, 3, 100, 3), "arrived again with a different slice"),
    ],
)
def test_chunks_that_contradict_each_other_raise_chunk_error(
    second: ChunkHeader, reason: str
) -> None:
    reassembler = Reassembler()
    assert reassembler.add(pack_chunk(ChunkHeader(IMAGE_ID, 0, 3, 100, 0), b"abc")) is None
    with pytest.raises(ChunkError, match=reason):
        reassembler.add(pack_chunk(second, b"abc"))


def test_slices_that_do_not_add_up_raise_chunk_error() -> None:
    reassembler = Reassembler()
    reassembler.add(pack_chunk(ChunkHeader(IMAGE_ID, 0, 2, 10, 0), b"abc"))
    with pytest.raises(ChunkError, match="do not add up"):
        reassembler.add(pack_chunk(ChunkHeader(IMAGE_ID, 1, 2, 10, 3), b"def"))
    assert reassembler.pending == 0
