"""Corrupted payloads: decode either succeeds or raises PayloadError, in bounded memory.

Every case is derived with a seeded numpy Generator from a few valid small payloads, so a
failure names a case that can be rebuilt exactly.
"""

from __future__ import annotations

import struct
import time
import tracemalloc
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from codec_images import synthetic_image

from shared.codec import DecodeLimits, Layout, PayloadError, Profile, decode, encode

LIMITS = DecodeLimits(
    max_width=2048, max_height=2048, max_pixels=1 << 20, max_payload_bytes=1 << 16
)
IMAGE_ID = uuid.UUID("0190f0e2-7b3c-7def-8abc-0123456789ab")
CAPTURED_AT = datetime(2024, 7, 15, 12, 34, 56, 789012, tzinfo=UTC)
MEMORY_BOUND_BYTES = 64 * 1024 * 1024
CRC_SIZE = 4
FIXED_HEADER = 39  # magic .. device id length, see wire.py
WIDTH_AT, HEIGHT_AT = 32, 34


def _seed_payloads() -> dict[str, bytes]:
    """Valid small payloads: every profile and layout, explicit tables, odd sizes."""
    wide = (tuple(range(1, 65)), tuple(range(250, 314)))
    payloads = {
        "gray-lossless-8x8": encode(synthetic_image(8, 8, False, 1), Profile.lossless(90)),
        "420-lowpass-24x20": encode(synthetic_image(20, 24, True, 2), Profile.lowpass(75, 15, 6)),
        "444-paper-17x9": encode(
            synthetic_image(9, 17, True, 3), Profile.paper(50, 2, layout=Layout.YCBCR444)
        ),
        "gray-input-420-lossless-13x11": encode(
            synthetic_image(11, 13, False, 4), Profile.lossless(50, layout=Layout.YCBCR420)
        ),
        "colour-input-gray-lowpass-16x16": encode(
            synthetic_image(16, 16, True, 5), Profile.lowpass(90, 6, 3, layout=Layout.GRAY)
        ),
        "420-adaptive-32x32": encode(synthetic_image(32, 32, True, 6), Profile.adaptive(900)),
        # auto: explicit tables with a promised quality, and the reference JPEG size varint
        "420-auto-q60-40x24": encode(synthetic_image(24, 40, True, 8), Profile.auto(60)),
        "gray-auto-q90-9x14": encode(synthetic_image(14, 9, False, 9), Profile.auto(90)),
        "444-explicit-u16-tables-16x8": encode(
            synthetic_image(8, 16, True, 7), Profile.lowpass(tables=wide, layout=Layout.YCBCR444)
        ),
    }
    # Rebuilt with fixed metadata: encode's defaults (fresh id, current time) would make
    # every run's payloads, and so its corruptions, different.
    return {
        name: _with_metadata(payload, image_id=IMAGE_ID, captured_at=CAPTURED_AT)
        for name, payload in payloads.items()
    }


def _with_metadata(payload: bytes, *, image_id: uuid.UUID, captured_at: datetime) -> bytes:
    """The payload with a fixed image id and capture time (bytes 8..31), resealed."""
    micros = round((captured_at - datetime(1970, 1, 1, tzinfo=UTC)) / timedelta(microseconds=1))
    stamped = image_id.bytes + struct.pack(">q", micros)
    return _reseal(payload[:8] + stamped + payload[32:-CRC_SIZE])


@dataclass(frozen=True)
class Shape:
    """Where the variable fields of a valid payload sit."""

    retention_at: int
    band_count_at: int
    varints_at: int
    body_at: int


def _shape(payload: bytes) -> Shape:
    device_len = payload[FIXED_HEADER - 1]
    channels = 1 if payload[6] == 0 else 3
    retention_at = FIXED_HEADER + device_len
    pos = retention_at + 3 * channels
    if payload[37] & 1:  # explicit tables
        count = payload[pos]
        pos += 1
        for _ in range(count):
            pos += 1 + (128 if payload[pos] else 64)
    band_count_at = pos
    body_at = decode(payload).band_offsets[0]
    return Shape(retention_at, band_count_at, band_count_at + 1, body_at)


def _reseal(body: bytes | bytearray) -> bytes:
    return bytes(body) + struct.pack(">I", zlib.crc32(body))


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


Rng = np.random.Generator


def _bit_flips(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    data = bytearray(payload)
    for _ in range(int(rng.integers(1, 4))):
        data[int(rng.integers(0, len(data)))] ^= 1 << int(rng.integers(0, 8))
    # Mostly reseal, so the flip reaches the parser instead of the checksum.
    return _reseal(data[:-CRC_SIZE]) if rng.random() < 0.8 else bytes(data)


def _byte_overwrites(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    data = bytearray(payload[:-CRC_SIZE])
    for _ in range(int(rng.integers(1, 5))):
        data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
    return _reseal(data)


def _forged_varints(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    count = payload[shape.band_count_at]
    body = payload[shape.body_at : -CRC_SIZE]
    sizes = []
    for _ in range(count):
        choice = int(rng.integers(0, 6))
        if choice == 0:
            sizes.append(_varint(int(rng.integers(0, 4))))
        elif choice == 1:
            sizes.append(_varint(int(rng.integers(0, len(body) + 8))))
        elif choice == 2:
            sizes.append(_varint(2**35 - 1))  # largest 5-byte length
        elif choice == 3:
            sizes.append(b"\xff" * int(rng.integers(5, 9)) + b"\x01")  # over-long varint
        elif choice == 4:
            sizes.append(b"\x80" * int(rng.integers(1, 5)) + b"\x00")  # padded zero
        else:
            sizes.append(_varint(len(body) // max(count, 1)))
    return _reseal(payload[: shape.varints_at] + b"".join(sizes) + body)


def _forged_dimensions(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    data = bytearray(payload[:-CRC_SIZE])
    # Around block and MCU edges, at and past the limits (1024 x 1024 is exactly max_pixels).
    choices = [0, 1, 7, 8, 9, 15, 16, 17, 512, 1023, 1024, 1025, 2048, 2049, 65535]
    for at in (WIDTH_AT, HEIGHT_AT):
        if rng.random() < 0.7:
            value = int(rng.choice(choices)) if rng.random() < 0.6 else int(rng.integers(0, 65536))
            data[at : at + 2] = value.to_bytes(2, "big")
    return _reseal(data)


def _forged_retention(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    data = bytearray(payload[:-CRC_SIZE])
    span = range(shape.retention_at, shape.band_count_at + 1)
    for _ in range(int(rng.integers(1, 4))):
        at = int(rng.choice(list(span)))
        data[at] = (
            int(rng.choice([0, 1, 2, 3, 63, 64, 65, 255]))
            if rng.random() < 0.5
            else (int(rng.integers(0, 256)))
        )
    if rng.random() < 0.3:  # the layout byte decides how many retention triples follow
        data[6] = int(rng.integers(0, 4))
    return _reseal(data)


def _body_splices(payload: bytes, shape: Shape, rng: Rng) -> bytes:
    """Move, drop or duplicate a run of body bytes: lengths stay, contents shift."""
    body = bytearray(payload[shape.body_at : -CRC_SIZE])
    start = int(rng.integers(0, len(body)))
    run = body[start : start + int(rng.integers(1, 16))]
    at = int(rng.integers(0, len(body)))
    if rng.random() < 0.5:
        del body[start : start + len(run)]
    body[at:at] = run
    return _reseal(payload[: shape.body_at] + bytes(body))


Mutation = Callable[[bytes, Shape, Rng], bytes]
MUTATIONS: dict[str, Mutation] = {
    "bit-flips": _bit_flips,
    "byte-overwrites": _byte_overwrites,
    "forged-varints": _forged_varints,
    "forged-dimensions": _forged_dimensions,
    "forged-retention": _forged_retention,
    "body-splices": _body_splices,
}


def _garbage(rng: Rng) -> bytes:
    size = int(rng.integers(0, 400))
    noise = rng.integers(0, 256, size=size, dtype=np.uint8).tobytes()
    kind = int(rng.integers(0, 3))
    if kind == 0:
        return noise
    prefix = b"DCTL\x01" + bytes([int(rng.integers(0, 4)), int(rng.integers(0, 3)), 1])
    return prefix + noise if kind == 1 else _reseal(prefix + noise)


@dataclass(frozen=True)
class FuzzPlan:
    """How many cases of each family; the strict plan holds over 10,000."""

    cut_every_offset_of: tuple[str, ...]
    mutations_per_payload: int
    garbage: int


# Cuts are cheap without partial mode (the checksum refuses them) and costly with it (each
# decodes up to the cut), so the partial plan cuts one payload and mutates less.
STRICT = FuzzPlan(("420-lowpass-24x20", "gray-lossless-8x8", "444-paper-17x9"), 60, 5600)
PARTIAL = FuzzPlan(("420-lowpass-24x20",), 12, 500)


def fuzz_cases(seed: int, plan: FuzzPlan) -> Iterator[tuple[str, bytes]]:
    """(label, corrupted payload): reproducible from ``seed``."""
    rng = np.random.default_rng(seed)
    payloads = _seed_payloads()
    for name in plan.cut_every_offset_of:
        for cut in range(len(payloads[name])):
            yield f"{name} cut at {cut}", payloads[name][:cut]
    for name, payload in payloads.items():
        shape = _shape(payload)
        for mutation, mutate in MUTATIONS.items():
            for i in range(plan.mutations_per_payload):
                yield f"{name} {mutation} #{i}", mutate(payload, shape, rng)
    for i in range(plan.garbage):
        yield f"garbage #{i}", _garbage(rng)


@dataclass
class FuzzReport:
    cases: int = 0
    decoded: int = 0
    refused: int = 0
    peak_bytes: int = 0
    seconds: float = 0.0


def run_fuzz(seed: int, plan: FuzzPlan, *, allow_partial: bool) -> tuple[FuzzReport, list[str]]:
    report = FuzzReport()
    failures: list[str] = []
    cases = list(fuzz_cases(seed, plan))  # built before measuring: the bound is the decoder's
    tracemalloc.start()
    tracemalloc.reset_peak()
    start = time.perf_counter()
    try:
        for label, payload in cases:
            report.cases += 1
            try:
                decode(payload, limits=LIMITS, allow_partial=allow_partial)
            except PayloadError:
                report.refused += 1
            except Exception as exc:
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
            else:
                report.decoded += 1
        report.peak_bytes = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    report.seconds = time.perf_counter() - start
    return report, failures


def test_corrupted_payloads_decode_or_raise_payload_error_in_bounded_memory() -> None:
    report, failures = run_fuzz(20240715, STRICT, allow_partial=False)

    assert report.cases >= 10_000
    assert not failures, f"{len(failures)} of {report.cases} cases:\n" + "\n".join(failures[:20])
    assert report.refused > report.cases // 2  # the corruption reached the checks
    assert report.peak_bytes < MEMORY_BOUND_BYTES


def test_cut_and_corrupted_streams_in_partial_mode_decode_or_raise_payload_error() -> None:
    report, failures = run_fuzz(20240716, PARTIAL, allow_partial=True)

    assert report.cases >= 1_000
    assert not failures, f"{len(failures)} of {report.cases} cases:\n" + "\n".join(failures[:20])
    assert report.refused > report.cases // 2  # the corruption reached the checks
    assert report.peak_bytes < MEMORY_BOUND_BYTES


def test_fuzz_cases_are_reproducible() -> None:
    first = [payload for _, payload in fuzz_cases(7, PARTIAL)]
    second = [payload for _, payload in fuzz_cases(7, PARTIAL)]
    assert first == second


class TestForgedHeaders:
    """The specific forgeries the fuzz loop draws at random, each with its message."""

    def test_huge_dimensions_are_refused_before_allocating(self) -> None:
        payload = _seed_payloads()["gray-lossless-8x8"]
        data = bytearray(payload[:-CRC_SIZE])
        data[WIDTH_AT : WIDTH_AT + 4] = (65535).to_bytes(2, "big") * 2
        tracemalloc.start()
        try:
            with pytest.raises(PayloadError, match="exceeds the decoder's limits"):
                decode(_reseal(data), limits=LIMITS)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 1024 * 1024

    def test_a_body_larger_than_the_limit_is_refused(self) -> None:
        with pytest.raises(PayloadError, match="exceeds the limit"):
            decode(bytes(LIMITS.max_payload_bytes + 1), limits=LIMITS)

    def test_a_length_of_two_to_the_35_is_refused(self) -> None:
        payload = _seed_payloads()["gray-lossless-8x8"]
        shape = _shape(payload)
        forged = _reseal(
            payload[: shape.varints_at] + _varint(2**35 - 1) + payload[shape.body_at : -CRC_SIZE]
        )
        with pytest.raises(PayloadError):
            decode(forged, limits=LIMITS)
        with pytest.raises(PayloadError):
            decode(forged[:-CRC_SIZE], limits=LIMITS, allow_partial=True)

    def test_every_truncation_of_a_valid_payload_is_refused_without_partial_mode(self) -> None:
        payload = _seed_payloads()["gray-lossless-8x8"]
        for cut in range(len(payload)):
            with pytest.raises(PayloadError):
                decode(payload[:cut], limits=LIMITS)
