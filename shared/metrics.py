"""Image quality metrics in numpy: PSNR and SSIM (RGB and luma)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

_LUMA = np.array([0.299, 0.587, 0.114])

#: SSIM constants of Wang et al. 2004.
_K1, _K2 = 0.01, 0.03
_SIGMA = 1.5
#: 11 taps: the radius scipy's gaussian_filter uses for sigma 1.5 (int(3.5 * sigma + 0.5)).
_RADIUS = 5


def _check(reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8]) -> None:
    if reference.shape != test.shape:
        raise ValueError(f"shapes differ: {reference.shape} vs {test.shape}")


def psnr(
    reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8], data_range: float = 255.0
) -> float:
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


def _gaussian_taps() -> npt.NDArray[np.float64]:
    x = np.arange(-_RADIUS, _RADIUS + 1, dtype=np.float64)
    taps = np.exp(-0.5 * (x / _SIGMA) ** 2)
    return np.asarray(taps / taps.sum(), dtype=np.float64)


_TAPS = _gaussian_taps()


def _valid_filter(stack: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Separable Gaussian over the last two axes, keeping only windows that fit inside.

    scikit-image filters with reflected borders, then drops a window radius from every edge
    before averaging; the windows left are exactly the ones that never touch the padding, so a
    'valid' filter gives the same numbers without padding at all.
    """
    width = len(_TAPS)
    rows = stack.shape[-2] - width + 1
    cols = stack.shape[-1] - width + 1
    vertical = sum(w * stack[..., k : k + rows, :] for k, w in enumerate(_TAPS))
    return np.asarray(sum(w * vertical[..., k : k + cols] for k, w in enumerate(_TAPS)))


def _ssim_plane(
    reference: npt.NDArray[np.float64], test: npt.NDArray[np.float64], data_range: float
) -> float:
    if min(reference.shape) < len(_TAPS):
        raise ValueError(
            f"SSIM needs images of at least {len(_TAPS)}x{len(_TAPS)}, got {reference.shape}"
        )
    means = _valid_filter(
        np.stack([reference, test, reference * reference, test * test, reference * test])
    )
    mu_x, mu_y, xx, yy, xy = means
    var_x = xx - mu_x * mu_x
    var_y = yy - mu_y * mu_y
    cov = xy - mu_x * mu_y
    c1 = (_K1 * data_range) ** 2
    c2 = (_K2 * data_range) ** 2
    index = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / (
        (mu_x * mu_x + mu_y * mu_y + c1) * (var_x + var_y + c2)
    )
    return float(index.mean())


def ssim(
    reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8], data_range: float = 255.0
) -> float:
    """SSIM of Wang et al. 2004: 11x11 Gaussian window (sigma 1.5), population covariance.

    Matches scikit-image's ``structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False)``. HxWx3 images score the mean over channels.
    """
    _check(reference, test)
    ref = reference.astype(np.float64)
    tst = test.astype(np.float64)
    if ref.ndim == 2:
        return _ssim_plane(ref, tst, data_range)
    return float(
        np.mean([_ssim_plane(ref[..., c], tst[..., c], data_range) for c in range(ref.shape[2])])
    )


def ssim_luma(reference: npt.NDArray[np.uint8], test: npt.NDArray[np.uint8]) -> float:
    """SSIM of the (unrounded) luma channel."""
    _check(reference, test)
    return _ssim_plane(luma(reference), luma(test), 255.0)
