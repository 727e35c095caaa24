"""shared.metrics against closed-form values and scikit-image's SSIM."""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from skimage.metrics import structural_similarity as _untyped_ssim

from shared.metrics import psnr, psnr_luma, ssim, ssim_luma

# skimage ships no type hints; this is the one signature the tests rely on.
structural_similarity = cast(Callable[..., Any], _untyped_ssim)

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))


def _load(path: Path) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(path).convert("RGB"))


def _reference_ssim(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8]) -> float:
    return float(
        structural_similarity(
            a,
            b,
            gaussian_weights=True,
            sigma=1.5,
            use_sample_covariance=False,
            data_range=255,
            channel_axis=2 if a.ndim == 3 else None,
        )
    )


def _degrade(image: npt.NDArray[np.uint8], quality: int) -> npt.NDArray[np.uint8]:
    """A JPEG round trip: the kind of distortion the benchmarks measure."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    return np.asarray(Image.open(buffer))


def test_psnr_of_identical_images_is_inf() -> None:
    image = np.full((16, 16, 3), 77, dtype=np.uint8)
    assert psnr(image, image) == float("inf")
    assert psnr_luma(image, image) == float("inf")


def test_psnr_of_known_mse() -> None:
    reference = np.zeros((8, 8), dtype=np.uint8)
    test = np.full((8, 8), 10, dtype=np.uint8)
    # MSE 100: 10 log10(255^2 / 100)
    assert psnr(reference, test) == pytest.approx(10 * np.log10(255.0**2 / 100.0))
    assert psnr(reference, test) == pytest.approx(28.1308036, abs=1e-6)


def test_ssim_of_identical_images_is_one() -> None:
    image = np.random.default_rng(0).integers(0, 256, (32, 40, 3), dtype=np.uint8)
    assert ssim(image, image) == pytest.approx(1.0)
    assert ssim_luma(image, image) == pytest.approx(1.0)


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_ssim_matches_skimage_on_samples(path: Path) -> None:
    image = _load(path)
    degraded = _degrade(image, 30)
    assert ssim(image, degraded) == pytest.approx(_reference_ssim(image, degraded), abs=1e-4)
    gray, gray_degraded = image[:, :, 1], degraded[:, :, 1]
    assert ssim(gray, gray_degraded) == pytest.approx(
        _reference_ssim(gray, gray_degraded), abs=1e-4
    )


def test_ssim_matches_skimage_on_noise() -> None:
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    b = np.clip(a.astype(np.int16) + rng.integers(-40, 41, a.shape), 0, 255).astype(np.uint8)
    c = rng.integers(0, 256, a.shape, dtype=np.uint8)
    assert ssim(a, b) == pytest.approx(_reference_ssim(a, b), abs=1e-4)
    assert ssim(a, c) == pytest.approx(_reference_ssim(a, c), abs=1e-4)


def test_ssim_luma_is_ssim_of_luma_plane() -> None:
    image = _load(SAMPLES[0])
    degraded = _degrade(image, 20)
    expected = structural_similarity(
        image.astype(np.float64) @ np.array([0.299, 0.587, 0.114]),
        degraded.astype(np.float64) @ np.array([0.299, 0.587, 0.114]),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=255,
    )
    assert ssim_luma(image, degraded) == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("metric", [psnr, psnr_luma, ssim, ssim_luma])
def test_shape_mismatch_raises(
    metric: Callable[[npt.NDArray[np.uint8], npt.NDArray[np.uint8]], float],
) -> None:
    a = np.zeros((16, 16, 3), dtype=np.uint8)
    b = np.zeros((16, 17, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="shapes differ"):
        metric(a, b)


def test_ssim_rejects_images_smaller_than_the_window() -> None:
    tiny = np.zeros((8, 8), dtype=np.uint8)
    with pytest.raises(ValueError, match="at least 11x11"):
        ssim(tiny, tiny)
