"""Compact quantisation tables for payload v2: zigzag-order deltas in Exp-Golomb codes.

The ``auto`` encoder sends its own tables, and they are smooth: steps grow slowly along the
zigzag order. Sent as 64 plain bytes each, a pair took 131 bytes of every payload, about 9 %
of a 128x128 one. Coded here as the first step (varint) and 63 differences, each mapped to
an unsigned integer (0, -1, 1, -2, ... -> 0, 1, 2, 3, ...) and written as an order-0
Exp-Golomb code, most significant bit first, padded to a whole byte, a pair of ``auto``
tables takes 30 to 50 bytes (training photographs, qualities 30 to 95).

The reader refuses codes longer than any valid table needs, steps outside 1..65535 and a
payload that ends inside the table, with a :class:`PayloadError`; it allocates nothing
beyond the 64 steps.
"""

from __future__ import annotations

import itertools

import numpy as np

from shared.codec.coefficients import TableArray
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.varint import read_varint, write_varint
from shared.codec.zigzag import INVERSE_ZIGZAG, ZIGZAG

#: A difference between two u16 steps maps to at most 2 * 65535: 17 bits, so 17 leading zeros.
_MAX_PREFIX = 17
_MAX_STEP = 65535


def _unsigned(delta: int) -> int:
    return 2 * delta if delta >= 0 else -2 * delta - 1


def _signed(value: int) -> int:
    return value // 2 if value % 2 == 0 else -(value + 1) // 2


def pack_table(table: TableArray) -> bytes:
    """One 8x8 table (steps 1..65535, natural order) as varint + Exp-Golomb deltas."""
    steps = [int(s) for s in np.asarray(table).reshape(64)[ZIGZAG]]
    if not all(1 <= s <= _MAX_STEP for s in steps):
        raise ValueError("quantisation steps must be in 1..65535")
    bits = []
    for previous, step in itertools.pairwise(steps):
        value = _unsigned(step - previous) + 1
        width = value.bit_length()
        bits.append("0" * (width - 1) + format(value, "b"))
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return write_varint(steps[0]) + int(stream, 2).to_bytes(len(stream) // 8, "big")


def unpack_table(data: memoryview, pos: int) -> tuple[TableArray, int]:
    """The table at ``pos`` and the position after it; :class:`PayloadError` when invalid."""
    start = pos
    first, pos = read_varint(data, pos)
    if not 1 <= first <= _MAX_STEP:
        raise PayloadError(PayloadErrorKind.INVALID, f"quantisation step {first} invalid", start)
    steps = [first]
    bit = pos * 8
    end = len(data) * 8

    def read_bit() -> int:
        nonlocal bit
        if bit >= end:
            raise PayloadError(
                PayloadErrorKind.TRUNCATED, "payload ends inside a quantisation table", start
            )
        value = (data[bit >> 3] >> (7 - (bit & 7))) & 1
        bit += 1
        return value

    for _ in range(63):
        zeros = 0
        while read_bit() == 0:
            zeros += 1
            if zeros > _MAX_PREFIX:
                raise PayloadError(
                    PayloadErrorKind.INVALID, "quantisation table code is too long", start
                )
        value = 1
        for _ in range(zeros):
            value = value << 1 | read_bit()
        step = steps[-1] + _signed(value - 1)
        if not 1 <= step <= _MAX_STEP:
            raise PayloadError(
                PayloadErrorKind.INVALID, f"quantisation step {step} is outside 1..65535", start
            )
        steps.append(step)
    natural = np.array(steps, dtype=np.uint16)[INVERSE_ZIGZAG]
    return natural.reshape(8, 8), (bit + 7) // 8
