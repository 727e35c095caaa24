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


def test_published_references_are_summed_with_their_payload_bytes(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.sqlite3", 10_000) as spool:
        auto, _ = spool.put(uuid.uuid4(), 1, "test", 1000, bytes(100), reference_jpeg_bytes=250)
        other = _put(spool, 2, size=40)
        spool.ack([auto, other])
        counters = spool.counters()
        assert counters["payload_bytes_total"] == 140
        # Only the image with a reference counts on both sides of the equal-quality ratio.
        assert counters["equal_quality_payload_bytes_total"] == 100
        assert counters["equal_quality_jpeg_bytes_total"] == 250


def test_a_spool_from_before_references_opens_and_delivers(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE images (
                seq INTEGER PRIMARY KEY AUTOINCREMENT, image_id TEXT NOT NULL,
                captured_us INTEGER NOT NULL, source TEXT NOT NULL,
                source_bytes INTEGER NOT NULL, payload BLOB NOT NULL
            );
            CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
            """
        )
        db.execute(
            "INSERT INTO images (image_id, captured_us, source, source_bytes, payload)"
            " VALUES (?, 1, 'old', 500, ?)",
            (str(uuid.uuid4()), bytes(50)),
        )
    db.close()
    with Spool(path, 10_000) as spool:
        (entry,) = spool.peek(10)
        new = _put(spool, 2)
        assert spool.ack([entry.seq, new]) == 2
        counters = spool.counters()
        assert counters["payload_bytes_total"] == 150
        assert counters["equal_quality_jpeg_bytes_total"] == 0


def test_an_image_bigger_than_the_whole_spool_is_refused_and_counted_across_restarts(
    tmp_path: Path,
) -> None:
    path = tmp_path / "s.sqlite3"
    with Spool(path, 250) as spool:
        kept = _put(spool, 1)
        with pytest.raises(SpoolError, match="exceeds the spool bound of 250"):
            spool.put(uuid.uuid4(), 2, "test", 0, bytes(300))
        assert [e.seq for e in spool.peek(10)] == [kept]  # nothing dropped for it
        assert spool.counters()["refused_total"] == 1
    with Spool(path, 250) as spool:
        assert spool.counters()["refused_total"] == 1
