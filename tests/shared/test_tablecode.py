"""Payload v2's compact tables: exact round trips, far fewer bytes, and refusals of garbage."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from shared.codec import PayloadError, Profile, decode, decode_header, encode
from shared.codec.tablecode import pack_table, unpack_table
from shared.codec.wire import OFFSET, unpack_header

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))


@settings(max_examples=300, deadline=None)
@given(arrays(np.uint16, (8, 8), elements=st.integers(1, 65535)))
def test_any_table_round_trips(table: np.ndarray) -> None:
    packed = pack_table(table)
    decoded, end = unpack_table(memoryview(packed + b"tail"), 0)
    assert end == len(packed)
    np.testing.assert_array_equal(decoded, table)


@pytest.mark.parametrize("steps", [1, 255, 256, 65535])
def test_flat_and_extreme_tables_round_trip(steps: int) -> None:
    table = np.full((8, 8), steps, dtype=np.uint16)
    table[7, 7] = 1 if steps > 1 else 65535  # the largest jump there is, at the very end
    decoded, _ = unpack_table(memoryview(pack_table(table)), 0)
    np.testing.assert_array_equal(decoded, table)


def test_tables_outside_the_step_range_are_refused_by_the_writer() -> None:
    with pytest.raises(ValueError, match=r"1\.\.65535"):
        pack_table(np.zeros((8, 8), dtype=np.uint16))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x00", "step 0"),
        (b"\x05", "ends inside a quantisation table"),
        (b"\x05" + b"\x00" * 4, "too long"),
        # A first step of 1, then -1 (Exp-Golomb "010"): a step of 0.
        (b"\x01\x40", r"outside 1\.\.65535"),
    ],
)
def test_garbage_tables_raise_payload_error(data: bytes, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        unpack_table(memoryview(data), 0)


def test_v2_sends_auto_tables_in_far_fewer_bytes_than_v1() -> None:
    with Image.open(SAMPLES[0]) as image:
        rgb = image.convert("RGB")
    for quality in (30, 75, 95):
        profile = Profile.auto(quality)
        first, second = encode(rgb, profile), encode(rgb, profile, coder=2)
        one, two = (unpack_header(memoryview(p)) for p in (first, second))
        assert two.header.explicit_tables
        for a, b in zip(one.header.tables, two.header.tables, strict=True):
            np.testing.assert_array_equal(a, b)
        # v1 spends 131 bytes on the two tables; v2 about 30 to 50.
        assert one.body_offset - two.body_offset >= 75
        assert decode_header(second).coder == 2


def test_v1_payloads_refuse_the_v2_table_code() -> None:
    with Image.open(SAMPLES[0]) as image:
        rgb = image.convert("RGB")
    payload = bytearray(encode(rgb, Profile.auto(75)))
    # The table count follows the fixed header, the device id and 3 retention bytes a channel.
    at = OFFSET.device_len + 1 + payload[OFFSET.device_len] + 3 * 3
    assert payload[at : at + 2] == bytes([2, 0])  # two tables, the first of u8 steps
    payload[at + 1] = 2
    payload[-4:] = zlib.crc32(payload[:-4]).to_bytes(4, "big")
    with pytest.raises(PayloadError, match="table precision 2 is not 0 or 1"):
        decode(bytes(payload))
