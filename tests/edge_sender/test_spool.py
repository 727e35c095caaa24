"""The spool: durable, capture-ordered, bounded with counted drops."""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from edge_sender.spool import Spool, SpoolError


def _put(spool: Spool, captured_us: int, size: int = 100) -> int:
    seq, _ = spool.put(uuid.uuid4(), captured_us, "test", 1000, bytes(size))
    return seq


def test_entries_come_out_in_capture_order_and_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    with Spool(path, 10_000) as spool:
        late, early = _put(spool, 2000), _put(spool, 1000)
    with Spool(path, 10_000) as spool:
        assert [e.seq for e in spool.peek(10)] == [early, late]
        assert [e.seq for e in spool.peek(10, exclude=[early])] == [late]
        assert spool.depth() == (2, 200)
    mode = sqlite3.connect(path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_ack_removes_and_counts(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3", 10_000) as spool:
        first, _ = _put(spool, 1), _put(spool, 2)
        assert spool.ack([first]) == 1
        assert spool.depth() == (1, 100)
        counters = spool.counters()
        assert counters["published_total"] == 1
        assert counters["payload_bytes_total"] == 100
        assert counters["source_bytes_total"] == 1000
        assert counters["last_publish_us"] > 0


def test_when_full_the_oldest_is_dropped_and_counted(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3", 250) as spool:
        oldest = _put(spool, 1)
        _put(spool, 2)
        _, dropped = spool.put(uuid.uuid4(), 3, "test", 0, bytes(100))
        assert [d.seq for d in dropped] == [oldest]
        assert spool.depth() == (2, 200)
        assert spool.counters()["dropped_total"] == 1
        with pytest.raises(SpoolError, match="exceeds"):
            spool.put(uuid.uuid4(), 4, "test", 0, bytes(300))
