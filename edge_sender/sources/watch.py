"""The ``watch`` source: a folder; each file is taken once it is fully written.

"Fully written" is judged by polling: a file whose size and modification time have not
changed for ``stable_polls`` consecutive polls. Polling (rather than inotify's close-write)
works the same on every filesystem a board mounts, network shares included. Files whose
name starts with "." are ignored, so writers can use the write-then-rename pattern.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

from edge_sender.sources.base import Frame, SourceError, frame_from_path

log = logging.getLogger(__name__)

After = Literal["keep", "move", "delete"]


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


def watch_source(
    folder: Path,
    *,
    after: After = "keep",
    move_to: Path | None = None,
    poll_interval_s: float = 1.0,
    stable_polls: int = 2,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    if after == "move" and move_to is None:
        raise SourceError(f"watch:{folder}", "--after move needs --move-to DIR")
    if not folder.is_dir():
        raise SourceError(f"watch:{folder}", "is not a folder")
    stop = stop or threading.Event()
    seen_state: dict[Path, tuple[int, int, int]] = {}  # path -> (size, mtime_ns, stable count)
    done: set[tuple[Path, int, int]] = set()
    while not stop.is_set():
        current = {p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")}
        for path in sorted(current):
            try:
                info = path.stat()
            except FileNotFoundError:
                continue
            key = (path, info.st_size, info.st_mtime_ns)
            if key in done:
                continue
            size, mtime, stable = seen_state.get(path, (-1, -1, 0))
            stable = stable + 1 if (size, mtime) == (info.st_size, info.st_mtime_ns) else 0
            seen_state[path] = (info.st_size, info.st_mtime_ns, stable)
            if stable < stable_polls - 1:
                continue
            done.add(key)
            del seen_state[path]
            try:
                yield frame_from_path(path, _after_spooled(path, after, move_to))
            except SourceError as error:
                log.warning(
                    "skipped file", extra={"fields": {"path": str(path), "error": str(error)}}
                )
        for gone in set(seen_state) - current:
            del seen_state[gone]
        if stop.wait(poll_interval_s):
            return
