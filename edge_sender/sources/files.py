"""The ``file`` source: one or more paths, in the order given."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

from edge_sender.sources.base import Frame, frame_from_path


def file_source(paths: Iterable[Path]) -> Iterator[Frame]:
    for path in paths:
        yield frame_from_path(path)
