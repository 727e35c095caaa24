"""The ``camera`` source: picamera2 on a Raspberry Pi, a clear error elsewhere."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

from PIL import Image

from edge_sender.sources.base import Frame, SourceError


def _load_picamera2() -> Any:
    try:
        return importlib.import_module("picamera2")
    except ImportError as error:
        raise SourceError(
            "camera",
            "needs the 'picamera2' package, which is not installed; on Raspberry Pi OS run "
            "'apt install python3-picamera2' (and create the venv with --system-site-packages)",
        ) from error


def camera_source(
    count: int = 0,
    interval_s: float = 1.0,
    size: tuple[int, int] = (1920, 1080),
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Stills every ``interval_s`` seconds; ``count`` 0 runs until ``stop`` is set."""
    picamera2 = _load_picamera2()
    stop = stop or threading.Event()
    camera = picamera2.Picamera2()
    # RGB888 is BGR in memory order on picamera2; the array is flipped below.
    camera.configure(camera.create_still_configuration(main={"size": size, "format": "RGB888"}))
    camera.start()
    try:
        taken = 0
        while not stop.is_set() and (count == 0 or taken < count):
            pixels = camera.capture_array("main")
            yield Frame(Image.fromarray(pixels[..., ::-1]), datetime.now(UTC), "camera")
            taken += 1
            if stop.wait(interval_s):
                break
    finally:
        camera.stop()
        camera.close()
