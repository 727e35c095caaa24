"""The ``synthetic`` source: the project's sample images, looped, for demos and load tests."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from edge_sender.sources.base import Frame, SourceError, frame_from_path

#: Package data (the repository's ``samples/`` links here), so ``edge-sender demo`` works from a
#: wheel or the Docker image as well as from a checkout.
SAMPLES = Path(str(files("edge_sender") / "samples"))


def synthetic_source(
    count: int = 0,
    interval_s: float = 0.0,
    samples: Path = SAMPLES,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """``count`` frames (0: until ``stop``), each stamped with the time it was produced."""
    paths = sorted(p for p in samples.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if not paths:
        raise SourceError("synthetic", f"no sample images in {samples}")
    # Decode each sample once: a load test should measure the sender, not PNG decoding.
    frames = [frame_from_path(p) for p in paths]
    stop = stop or threading.Event()
    produced = itertools.count() if count == 0 else iter(range(count))
    for number in produced:
        if stop.is_set():
            return
        base = frames[number % len(frames)]
        yield Frame(
            base.image,
            datetime.now(UTC),
            f"synthetic:{Path(base.source).name}",
            base.source_bytes,
            base.jpeg_tables,
        )
        if interval_s and stop.wait(interval_s):
            return
