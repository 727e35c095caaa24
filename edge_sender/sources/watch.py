"""The ``watch`` source: a folder; each file is taken once it is fully written.

"Fully written" is judged by polling: a file whose size and modification time have not
changed for ``stable_polls`` consecutive polls. Polling (rather than inotify's close-write)
works the same on every filesystem a board mounts, network shares included. Files whose
name starts with "." are ignored, so writers can use the write-then-rename pattern.

Given a ``sent`` memory (``edge_sender.sent_files``, kept in the spool), a restart skips the
files already spooled: unchanged ones by size and mtime, touched ones by content hash. With
``--after move`` or ``delete`` such a file is one whose move or delete a crash interrupted,
so that step is finished instead.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import threading
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Literal, Protocol

from edge_sender.sources.base import Frame, SourceError, frame_from_bytes, read_file

log = logging.getLogger(__name__)

After = Literal["keep", "move", "delete"]
Stat = tuple[int, int]  # (size, mtime_ns)


class SentMemory(Protocol):
    """What the watch source needs from a memory of spooled files."""

    def has_stat(self, path: Path, size: int, mtime_ns: int) -> bool: ...
    def has_content(self, path: Path, digest: str) -> bool: ...
    def remember(self, path: Path, size: int, mtime_ns: int, digest: str) -> None: ...
    def forget_missing(self, folder: Path, present: Collection[Path]) -> int: ...


def _after_spooled(path: Path, after: After, move_to: Path | None) -> Callable[[], None] | None:
    # Runs only once the payload is committed to the spool: the file is never lost unsent.
    if after == "keep":
        return None
    if after == "delete":
        return lambda: path.unlink(missing_ok=True)
    assert move_to is not None
    target = move_to

    def move() -> None:
        target.mkdir(parents=True, exist_ok=True)
        shutil.move(path, target / path.name)

    return move


def _steps(*steps: Callable[[], None] | None) -> Callable[[], None] | None:
    todo = [step for step in steps if step is not None]
    if not todo:
        return None

    def run() -> None:
        for step in todo:
            step()

    return run


def _stat(path: Path) -> Stat | None:
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    return info.st_size, info.st_mtime_ns


class _Taker:
    """Turns a stable file into a frame, unless the memory says it was already spooled."""

    def __init__(self, after: After, move_to: Path | None, sent: SentMemory | None) -> None:
        self._after = after
        self._move_to = move_to
        self._sent = sent

    def take(self, path: Path, stat: Stat) -> Frame | None:
        finish = _after_spooled(path, self._after, self._move_to)
        sent = self._sent
        if sent is not None and sent.has_stat(path, *stat):
            self._skip(path, "unchanged since it was spooled", finish)
            return None
        try:
            data, captured = read_file(path)
            digest = hashlib.sha256(data).hexdigest()
            if sent is not None and sent.has_content(path, digest):
                sent.remember(path, *stat, digest)
                self._skip(path, "same content as when it was spooled", finish)
                return None
            remember = None if sent is None else lambda: sent.remember(path, *stat, digest)
            return frame_from_bytes(data, f"file:{path}", captured, _steps(remember, finish))
        except SourceError as error:
            log.warning("skipped file", extra={"fields": {"path": str(path), "error": str(error)}})
            return None

    def _skip(self, path: Path, why: str, finish: Callable[[], None] | None) -> None:
        log.info(
            "already sent, skipped",
            extra={"fields": {"path": str(path), "why": why, "after": self._after}},
        )
        if finish is not None:
            finish()


def watch_source(
    folder: Path,
    *,
    after: After = "keep",
    move_to: Path | None = None,
    poll_interval_s: float = 1.0,
    stable_polls: int = 2,
    stop: threading.Event | None = None,
    sent: SentMemory | None = None,
) -> Iterator[Frame]:
    if after == "move" and move_to is None:
        raise SourceError(f"watch:{folder}", "--after move needs --move-to DIR")
    if not folder.is_dir():
        raise SourceError(f"watch:{folder}", "is not a folder")
    stop = stop or threading.Event()
    taker = _Taker(after, move_to, sent)
    changing: dict[Path, tuple[Stat, int]] = {}  # path -> (stat, polls it has held still)
    taken: dict[Path, Stat] = {}  # path -> stat when it was taken (or skipped)
    listed: set[Path] | None = None
    while not stop.is_set():
        current = {p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
        if sent is not None and (listed is None or listed - current):
            sent.forget_missing(folder, current)  # at start, and whenever files went away
        listed = current
        for path in sorted(current):
            stat = _stat(path)
            if stat is None or taken.get(path) == stat:
                continue
            before, stable = changing.get(path, (None, 0))
            stable = stable + 1 if before == stat else 0
            changing[path] = (stat, stable)
            if stable < stable_polls - 1:
                continue
            taken[path] = stat
            del changing[path]
            frame = taker.take(path, stat)
            if frame is not None:
                yield frame
        for gone in (set(changing) | set(taken)) - current:
            changing.pop(gone, None)
            taken.pop(gone, None)
        if stop.wait(poll_interval_s):
            return
