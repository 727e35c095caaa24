"""The spool keeps a frame's capture time to the microsecond, as the payload header does."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image

from edge_sender.config import EdgeSettings, SpoolSettings
from edge_sender.sender import Sender
from edge_sender.sources import Frame
from edge_sender.spool import Spool
from shared.codec import decode

# datetime.timestamp() * 1e6 truncates this one to ...501339 (a float's rounding).
CAPTURED = datetime.fromtimestamp(1_086_812_194, UTC).replace(microsecond=501_340)


def test_the_spooled_capture_time_is_exact_and_equals_the_payloads(tmp_path: Path) -> None:
    assert int(CAPTURED.timestamp() * 1_000_000) != 1_086_812_194_501_340  # the old way
    settings = EdgeSettings(device_id="cam-time", spool=SpoolSettings(path=tmp_path / "s.db"))
    with Spool(settings.spool.path, settings.spool.max_bytes) as spool:
        sender = Sender(settings, spool)  # never started: accept() only spools
        sender.accept(Frame(Image.new("RGB", (16, 16), "gray"), CAPTURED, "test"))
        (entry,) = spool.peek(1)
    assert entry.captured_us == 1_086_812_194_501_340
    assert decode(entry.payload).captured_at == CAPTURED
    with sqlite3.connect(settings.spool.path) as db:
        assert db.execute("SELECT captured_us FROM images").fetchone() == (entry.captured_us,)
