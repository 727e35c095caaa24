"""Image quality metrics in numpy: PSNR (RGB and luma)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_LUMA = np.array([0.299, 0.587, 0.114])


def _check(reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8]) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {test.shape}")


def psnr(reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8],
         data_range: float = 255.0) -> float:
    """Peak signal-to-noise ratio in dB over all samples; inf for identical images."""
    _check(reference, test)
    mse = float(np.mean((reference.astype(np.float64) - test.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(data_range**2 / mse))


def luma(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    """JFIF luma (BT.601 weights) of an HxWx3 image, unrounded; HxW images pass through."""
    return rgb.astype(np.float64) if rgb.ndim == 2 else rgb.astype(np.float64) @ _LUMA


def psnr_luma(reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8]) -> float:
    """PSNR of the luma channel."""
    _check(reference, test)
    mse = float(np.mean((luma(reference) - luma(test)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))
