"""Synthetic test images for the codec tests: smooth structure plus seeded noise."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def synthetic_image(height: int, width: int, colour: bool, seed: int) -> npt.NDArray[np.uint8]:
    """HxW (or HxWx3) uint8: a sine pattern every block sees differently, plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    smooth = 128 + 90 * np.sin(x / 3.0) * np.cos(y / 4.0)
    shape = (height, width, 3) if colour else (height, width)
    noise = rng.normal(0, 20, size=shape)
    base = smooth[:, :, None] if colour else smooth
    pixels: npt.NDArray[np.uint8] = np.clip(base + noise, 0, 255).astype(np.uint8)
    return pixels
