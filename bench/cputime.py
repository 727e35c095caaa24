"""Encode CPU time of several encoders on one image, measured so that all see the same load."""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Mapping

import numpy as np
from PIL import Image

from bench.jpeg import Pixels

#: The frame size encode times are quoted for: a Kodak image, roughly a small camera frame.
SIZE = (768, 512)


def timing_image(pixels: Pixels) -> Pixels:
    """``pixels`` resized (Lanczos) to :data:`SIZE` unless it already is that size."""
    image = Image.fromarray(pixels)
    if image.size != SIZE:
        image = image.resize(SIZE, Image.Resampling.LANCZOS)
    return np.asarray(image)


#: A timed sample repeats a fast task until it lasts about this long (CPU seconds), so the
#: few-millisecond JPEG encode every ratio divides by is not at the mercy of one scheduler tick.
MIN_SAMPLE_S = 0.02


def _cpu(task: Callable[[], object], loops: int) -> float:
    start = time.process_time()
    for _ in range(loops):
        task()
    return (time.process_time() - start) / loops


def interleaved_cpu(tasks: Mapping[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median CPU seconds of each task over ``repeats`` rounds, the tasks run round-robin.

    Round-robin rather than one task after another: a neighbour's load on a shared machine
    then slows every task alike, and the ratios between them hold. CPU time (all threads of
    this process) rather than wall time, for the same reason. One untimed warm-up round first
    takes lazy imports, table set-up and first-touch allocations out of the figures, and
    tells how many calls make one sample of :data:`MIN_SAMPLE_S`.
    """
    loops = {
        name: max(1, math.ceil(MIN_SAMPLE_S / max(_cpu(task, 1), 1e-6)))
        for name, task in tasks.items()
    }
    samples: dict[str, list[float]] = {name: [] for name in tasks}
    for _ in range(repeats):
        for name, task in tasks.items():
            samples[name].append(_cpu(task, loops[name]))
    return {name: statistics.median(values) for name, values in samples.items()}
