"""Interleaved rANS over numpy lanes: an arithmetic coder with no Python loop per symbol.

Symbols come in *passes*. Within a pass every symbol's frequency and cumulative start are
known before any of them is decoded (the model adapts between passes, never inside one),
so the decoder can take ``lanes`` symbols at a time, one per lane, in a handful of vector
operations. Symbol ``i`` of a pass is coded by lane ``i % lanes``; each lane is one rANS
state (Duda's asymmetric numeral systems, in the byte-wise form of Giesen's ``rans_byte``).

The state of a lane lies in ``[LOW, LOW << 8)``: 24 bits, so the encoder's final states cost
three bytes a lane. Renormalisation moves whole bytes; a lane needs at most two per symbol
(the frequency is at least 1 in ``PRECISION`` = 4096). All lanes share one byte stream:
after each step the lanes that need a byte read it in lane order, so where each byte goes
is decided by a cumulative sum, not by a loop.

Stream layout (what :func:`encode` returns and :func:`decode` reads)::

    3 bytes per lane    the encoder's final state of each lane, big-endian, lane 0 first
    ...                 renormalisation bytes in the order the decoder consumes them

The decoder consumes a prefix of the stream for every prefix of the passes, so a stream cut
after pass ``p``'s bytes (:attr:`Encoded.pass_ends`) still decodes passes ``0..p``.

Every value is an integer; encoder and decoder agree bit for bit on every platform.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

PRECISION_BITS = 12
PRECISION = 1 << PRECISION_BITS
LOW = 1 << 16
STATE_BYTES = 3
#: A state at or above ``freq << _SHIFT`` must shed a byte before it codes a symbol of ``freq``.
_SHIFT = 16 - PRECISION_BITS + 8

U64 = npt.NDArray[np.uint64]
I64 = npt.NDArray[np.int64]


class RansError(ValueError):
    """The stream ended early or holds what no encoder writes."""


@dataclass(frozen=True)
class Pass:
    """One pass to encode: each symbol's cumulative start and frequency (both < PRECISION)."""

    starts: I64
    freqs: I64


@dataclass(frozen=True)
class Encoded:
    data: bytes
    #: Bytes of ``data`` the decoder has consumed once pass ``p`` is decoded.
    pass_ends: list[int]


def encode(passes: Sequence[Pass], lanes: int) -> Encoded:
    """Code every pass's symbols; the last pass is encoded first (rANS is last in, first out)."""
    # States stay below 2**24 and products below 2**36: int64 holds every step exactly.
    state = np.full(lanes, LOW, dtype=np.int64)
    # Bytes shed, newest first: each step appends its two-byte lanes' first bytes, then every
    # shedding lane's last byte, so that the reversed list is in the decoder's order.
    shed: list[I64] = []
    # Bytes emitted for each pass, to find where each pass ends in the decoder's stream.
    emitted = [0] * len(passes)
    for index in range(len(passes) - 1, -1, -1):
        starts = passes[index].starts.astype(np.int64)
        freqs = passes[index].freqs.astype(np.int64)
        # A state at or above bound sheds a byte, at or above bound << 8 two (per pass, once).
        bounds = freqs << _SHIFT
        bounds_two = bounds << 8
        count = starts.size
        for first in range(((count - 1) // lanes) * lanes if count else -1, -1, -lanes):
            stop = min(first + lanes, count)
            x = state[: stop - first]
            one = x >= bounds[first:stop]
            if one.any():
                # The decoder reads, lane by lane in ascending order, the last byte shed by
                # every lane that shed one, then the first byte of those that shed two.
                two = x >= bounds_two[first:stop]
                shed.append(x[two])
                shed.append(np.where(two, x >> 8, x)[one])
                emitted[index] += int(np.count_nonzero(one)) + int(np.count_nonzero(two))
                x >>= (one + two.astype(np.int64)) * 8
            f = freqs[first:stop]
            quotient = x // f
            x += (quotient << PRECISION_BITS) - quotient * f + starts[first:stop]
    body = (np.concatenate(shed[::-1]) & 0xFF).astype(np.uint8) if shed else np.zeros(0, np.uint8)
    header = np.zeros((lanes, STATE_BYTES), dtype=np.uint8)
    for byte in range(STATE_BYTES):
        header[:, byte] = (state >> (8 * (STATE_BYTES - 1 - byte))) & 0xFF
    ends = np.cumsum([lanes * STATE_BYTES, *emitted])[1:].tolist()
    return Encoded(header.tobytes() + body.tobytes(), [int(e) for e in ends])


#: Given the symbols decoded so far (one array per pass), the next pass's model:
#: ``(cumulative, rows)``, where ``cumulative[r]`` is a row of ``PRECISION``-summing
#: cumulative frequencies (``nsym + 1`` entries, starting at 0) and ``rows[i]`` the row of
#: the pass's i-th symbol; None when there is no further pass.
NextPass = Callable[[list[I64]], tuple[I64, I64] | None]


def decode(data: bytes | memoryview, lanes: int, next_pass: NextPass) -> tuple[list[I64], int]:
    """Decode passes until ``next_pass`` says there are no more; returns them and the bytes read.

    Raises :class:`RansError` when the stream ends before the last pass is decoded or a state
    is out of range (neither happens to a stream :func:`encode` wrote).
    """
    stream = np.frombuffer(data, dtype=np.uint8)
    if stream.size < lanes * STATE_BYTES:
        raise RansError(f"stream of {stream.size} bytes is shorter than its {lanes} lane states")
    head = stream[: lanes * STATE_BYTES].reshape(lanes, STATE_BYTES).astype(np.uint64)
    state = np.zeros(lanes, dtype=np.uint64)
    for byte in range(STATE_BYTES):
        state = (state << np.uint64(8)) | head[:, byte]
    if ((state < LOW) | (state >= LOW << 8)).any():
        raise RansError("a lane's initial state is out of range")
    position = lanes * STATE_BYTES
    decoded: list[I64] = []
    # States stay below 2**24 and products below 2**36: int64 holds every step exactly.
    states = state.astype(np.int64)
    body = stream.astype(np.int64)
    mask = PRECISION - 1
    while (model := next_pass(decoded)) is not None:
        cumulative, rows = model
        if (
            (np.diff(cumulative, axis=1) <= 0).any()
            or (cumulative[:, 0] != 0).any()
            or (cumulative[:, -1] != PRECISION).any()
        ):
            raise RansError("a model gives a symbol zero frequency or does not sum to PRECISION")
        count = rows.size
        width = cumulative.shape[1]
        symbols = np.empty(count, dtype=np.int64)
        tables = cumulative[rows]  # (count, nsym + 1): one gather for the whole pass
        flat = tables.ravel()
        uppers = tables[:, 1:]
        row_starts = np.arange(count, dtype=np.int64) * width
        for first in range(0, count, lanes):
            stop = min(first + lanes, count)
            x = states[: stop - first]
            slot = x & mask
            symbol = (uppers[first:stop] <= slot[:, None]).sum(axis=1)
            symbols[first:stop] = symbol
            at = row_starts[first:stop] + symbol
            start = flat[at]
            x[:] = (flat[at + 1] - start) * (x >> PRECISION_BITS) + slot - start
            for _ in range(2):
                need = x < LOW
                wanted = int(np.count_nonzero(need))
                if not wanted:
                    break
                if position + wanted > stream.size:
                    raise RansError("the stream ended inside a pass")
                x[need] = (x[need] << 8) | body[position : position + wanted]
                position += wanted
        decoded.append(symbols)
    return decoded, position
