"""What ``watch`` has already spooled, so a restart does not send a whole folder again.

One row per file path: the size, modification time and SHA-256 of the content last spooled
from it. A file whose size and mtime match its row is skipped without being read; one whose
content matches (touched, or copied over with the same bytes) is skipped after one read; any
other content under that path is new and goes. The table lives in the spool's SQLite file,
so the memory and the images it vouches for are kept, moved and deleted together, and a row
goes when its file leaves the folder, so the table never outgrows the folder.

A row is written just after the spool has committed the image: a crash in between sends that
file again on restart (a duplicate, never a loss), which is why ``synchronous=NORMAL`` is
enough here while the spool itself needs FULL.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sent_files (
    path TEXT PRIMARY KEY,
    folder TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    sent_us INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sent_files_by_folder ON sent_files (folder);
"""


def _key(path: Path) -> str:
    # Absolute, so a restart from another working directory finds the same rows.
    return str(path.absolute())


class SentFiles:
    """Used from the one thread that runs the watch source."""

    def __init__(self, spool_path: Path) -> None:
        spool_path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(spool_path, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def __enter__(self) -> SentFiles:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._db.close()

    def has_stat(self, path: Path, size: int, mtime_ns: int) -> bool:
        """The file is unchanged (by size and mtime) since it was last spooled."""
        row = self._db.execute(
            "SELECT 1 FROM sent_files WHERE path = ? AND size = ? AND mtime_ns = ?",
            (_key(path), size, mtime_ns),
        ).fetchone()
        return row is not None

    def has_content(self, path: Path, digest: str) -> bool:
        """The file holds the very bytes last spooled from it."""
        row = self._db.execute(
            "SELECT 1 FROM sent_files WHERE path = ? AND sha256 = ?", (_key(path), digest)
        ).fetchone()
        return row is not None

    def remember(self, path: Path, size: int, mtime_ns: int, digest: str) -> None:
        self._db.execute(
            "INSERT INTO sent_files VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(path) DO UPDATE SET"
            " size = excluded.size, mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256,"
            " sent_us = excluded.sent_us",
            (_key(path), _key(path.parent), size, mtime_ns, digest, time.time_ns() // 1000),
        )

    def forget_missing(self, folder: Path, present: Collection[Path]) -> int:
        """Drop the rows of ``folder``'s files that are not in ``present``; returns how many."""
        keep = {_key(p) for p in present}
        rows = self._db.execute("SELECT path FROM sent_files WHERE folder = ?", (_key(folder),))
        gone = [(path,) for (path,) in rows.fetchall() if path not in keep]
        if gone:
            self._db.execute("BEGIN")
            self._db.executemany("DELETE FROM sent_files WHERE path = ?", gone)
            self._db.execute("COMMIT")
        return len(gone)

    def count(self, folder: Path) -> int:
        row = self._db.execute(
            "SELECT COUNT(*) FROM sent_files WHERE folder = ?", (_key(folder),)
        ).fetchone()
        return int(row[0])
