"""Interleaved rANS: exact round trips, band-cut prefixes, and refusals of broken streams."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shared.codec import rans

I64 = npt.NDArray[np.int64]


def _table(rng: np.random.Generator, symbols: int) -> I64:
    """A cumulative row summing to PRECISION, every frequency >= 1, skewed like real tokens."""
    weights = rng.integers(1, 50, symbols) * (rng.random(symbols) < 0.5) + 1
    weights[0] += int(rng.integers(0, 2000))
    freqs = 1 + weights * (rans.PRECISION - symbols) // weights.sum()
    freqs[int(np.argmax(freqs))] += rans.PRECISION - int(freqs.sum())
    return np.concatenate([[0], np.cumsum(freqs)]).astype(np.int64)


def _passes(seed: int, count: int) -> tuple[list[I64], list[I64], list[I64]]:
    """(cumulative tables, rows, symbols) of ``count`` random passes."""
    rng = np.random.default_rng(seed)
    tables, rows, symbols = [], [], []
    for _ in range(count):
        nsym = int(rng.integers(2, 20))
        table = np.stack([_table(rng, nsym) for _ in range(int(rng.integers(1, 6)))])
        n = int(rng.integers(0, 400))
        row = rng.integers(0, table.shape[0], n).astype(np.int64)
        probability = np.diff(table[row], axis=1) / rans.PRECISION
        cumulative = np.cumsum(probability, axis=1)
        draw = rng.random(n)[:, None]
        symbol = np.minimum((cumulative < draw).sum(axis=1), nsym - 1).astype(np.int64)
        tables.append(table)
        rows.append(row)
        symbols.append(symbol)
    return tables, rows, symbols


def _encode(tables: list[I64], rows: list[I64], symbols: list[I64], lanes: int) -> rans.Encoded:
    passes = []
    for table, row, symbol in zip(tables, rows, symbols, strict=True):
        starts = table[row, symbol]
        passes.append(rans.Pass(starts, table[row, symbol + 1] - starts))
    return rans.encode(passes, lanes)


def _decode(data: bytes, lanes: int, tables: list[I64], rows: list[I64]) -> list[I64]:
    def next_pass(done: list[I64]) -> tuple[I64, I64] | None:
        return None if len(done) == len(tables) else (tables[len(done)], rows[len(done)])

    decoded, used = rans.decode(data, lanes, next_pass)
    assert used == len(data)
    return decoded


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), count=st.integers(1, 5), lanes=st.sampled_from([1, 3, 64]))
def test_round_trip_and_every_pass_prefix(seed: int, count: int, lanes: int) -> None:
    tables, rows, symbols = _passes(seed, count)
    encoded = _encode(tables, rows, symbols, lanes)
    assert all(
        (a == b).all()
        for a, b in zip(_decode(encoded.data, lanes, tables, rows), symbols, strict=True)
    )
    # A stream cut where a pass ends still decodes every pass before the cut.
    for cut in range(count):
        kept = cut + 1
        prefix = encoded.data[: encoded.pass_ends[cut]]
        decoded = _decode(prefix, lanes, tables[:kept], rows[:kept])
        assert all((a == b).all() for a, b in zip(decoded, symbols[:kept], strict=True))


def test_it_codes_close_to_the_entropy() -> None:
    tables, rows, symbols = _passes(7, 5)
    encoded = _encode(tables, rows, symbols, 8)
    ideal = sum(
        float(-np.log2(np.diff(t[r], axis=1)[np.arange(r.size), s] / rans.PRECISION).sum())
        for t, r, s in zip(tables, rows, symbols, strict=True)
    )
    # Each lane's final state costs 3 bytes; beyond that, within 1 % of the ideal length.
    assert len(encoded.data) <= ideal / 8 * 1.01 + 8 * rans.STATE_BYTES + 8


def test_a_stream_cut_inside_a_pass_is_refused() -> None:
    tables, rows, symbols = _passes(3, 3)
    encoded = _encode(tables, rows, symbols, 4)
    with pytest.raises(rans.RansError):
        _decode(encoded.data[: encoded.pass_ends[-1] - 1], 4, tables, rows)
    with pytest.raises(rans.RansError):
        _decode(encoded.data[:5], 4, tables, rows)


def test_an_initial_state_out_of_range_is_refused() -> None:
    with pytest.raises(rans.RansError, match="out of range"):
        rans.decode(bytes(3), 1, lambda done: None)


def test_a_model_with_a_symbol_of_zero_frequency_is_refused() -> None:
    # The decoder checks each pass's model once instead of each decoded symbol: a zero-width
    # symbol anywhere in the model is refused, whether or not the stream would reach it.
    table = np.array([[0, 0, rans.PRECISION]], dtype=np.int64)
    encoded = rans.encode([rans.Pass(np.zeros(4, np.int64), np.full(4, rans.PRECISION))], 2)
    with pytest.raises(rans.RansError, match="zero frequency"):
        rans.decode(encoded.data, 2, lambda done: None if done else (table, np.zeros(4, np.int64)))
    # A row short of PRECISION would let its last symbol read past the row: refused too.
    short = np.array([[0, 100, rans.PRECISION - 1]], dtype=np.int64)
    with pytest.raises(rans.RansError, match="does not sum to PRECISION"):
        rans.decode(encoded.data, 2, lambda done: None if done else (short, np.zeros(4, np.int64)))
