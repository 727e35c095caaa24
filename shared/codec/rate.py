"""Rate control for the ``adaptive`` profile.

What it optimises: the RGB PSNR of the zero-filled reconstruction, estimated in the DCT
domain. The DCT is orthonormal, so each plane's pixel error equals its coefficient error
(quantisation error of kept bands plus the energy of dropped ones, Parseval); the chroma
errors are weighted by how much the YCbCr -> RGB matrix amplifies them. Rates come from the
order-0 entropy of each band's tokens plus their raw bits, scaled by the ratio of the real
payload to the estimate once one candidate has been encoded for real.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.codec.frontend import Pixels, _planes, _to_blocks, channel_tables
from shared.codec.profiles import Layout, Profile
from shared.codec.quantisation import standard_tables, to_zigzag
from shared.codec.transform import forward_dct

QUALITIES = (10, 20, 30, 40, 50, 60, 70, 75, 80, 85, 90, 95)
# Mean square RGB error per unit of Cb / Cr error, from the JFIF inverse matrix.
_CHROMA_WEIGHTS = ((0.344136**2 + 1.772**2) / 3, (1.402**2 + 0.714136**2) / 3)
# Fixed header, retention, band count and checksum; band lengths take a byte or two each.
_HEADER_BYTES = 38 + 9 + 1 + 4
_ATTEMPTS = 5
# Each band present costs its length field and the compressor's flush (measured: ~3-4 bytes).
_BAND_BYTES = 4.0
_BANDS = np.arange(1, 65, dtype=np.float64)[:, None]


def _band_bits(levels: npt.NDArray[np.int32]) -> npt.NDArray[np.float64]:
    """Estimated bits per band for (blocks, 64) quantised levels."""
    tokens = np.frexp(np.abs(levels).astype(np.float32))[1]
    bits = np.zeros(64)
    for band in range(64):
        counts = np.bincount(tokens[:, band], minlength=16).astype(np.float64)
        p = counts[counts > 0] / levels.shape[0]
        bits[band] = -(counts[counts > 0] * np.log2(p)).sum() + tokens[:, band].sum()
    return bits


def _channel_tables(quality: int, layout: Layout) -> list[npt.NDArray[np.float32]]:
    return [to_zigzag(t) for t in channel_tables(layout, *standard_tables(quality))]


def _candidates(
    pixels: Pixels, layout: Layout
) -> list[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]]:
    """Per quality: estimated bits and weighted squared error for every (luma, chroma) keep."""
    coefficients = [forward_dct(_to_blocks(p)) for p in _planes(pixels, layout)]
    pixel_count = pixels.shape[0] * pixels.shape[1]
    out = []
    for quality in QUALITIES:
        rates, errors = [], []
        for c, (coef, steps) in enumerate(
            zip(coefficients, _channel_tables(quality, layout), strict=True)
        ):
            levels = np.rint(coef / steps).astype(np.int32)
            kept_error = ((coef - levels * steps) ** 2).sum(axis=0, dtype=np.float64)
            dropped_error = (coef.astype(np.float64) ** 2).sum(axis=0)
            # error(K) = quantisation error of bands < K + energy of bands >= K
            error = np.cumsum(kept_error) + dropped_error.sum() - np.cumsum(dropped_error)
            weight = 1.0 if c == 0 else _CHROMA_WEIGHTS[c - 1]
            # per coded sample, so a 4:2:0 chroma error counts once per pixel it covers
            errors.append(weight * error / coef.shape[0] / 64 * pixel_count)
            rates.append(np.cumsum(_band_bits(levels)) / 8)
        if layout is Layout.GRAY:
            out.append((quality, rates[0][:, None] + _BAND_BYTES * _BANDS, errors[0][:, None]))
        else:
            bands = np.maximum(_BANDS, _BANDS.T)
            rate = rates[0][:, None] + (rates[1] + rates[2])[None, :] + _BAND_BYTES * bands
            error = errors[0][:, None] + (errors[1] + errors[2])[None, :]
            out.append((quality, rate, error))
    return out


def _best(
    candidates: list[tuple[int, npt.NDArray[np.float64], npt.NDArray[np.float64]]], budget: float
) -> tuple[int, int, int] | None:
    best: tuple[float, int, int, int] | None = None
    for quality, rate, error in candidates:
        fits = rate <= budget
        if not fits.any():
            continue
        masked = np.where(fits, error, np.inf)
        ky, kc = np.unravel_index(int(np.argmin(masked)), masked.shape)
        if best is None or masked[ky, kc] < best[0]:
            best = (float(masked[ky, kc]), quality, int(ky) + 1, int(kc) + 1)
    return None if best is None else best[1:]


def choose_lowpass(pixels: Pixels, layout: Layout, max_bytes: int, device_bytes: int) -> Profile:
    """The lowpass profile with the best estimated PSNR whose payload fits ``max_bytes``.

    Raises ValueError when even the coarsest setting does not fit.
    """
    from shared.codec.payload import encode  # noqa: PLC0415 - payload imports this module

    candidates = _candidates(pixels, layout)
    overhead = _HEADER_BYTES + device_bytes
    scale = 0.9  # context modelling beats the order-0 estimate; corrected below
    best_fit: tuple[int, Profile] | None = None
    tried: list[tuple[int, int, int]] = []
    coarsest = (QUALITIES[0], 1, 1)
    rates = {q: r for q, r, _ in candidates}
    while len(tried) < _ATTEMPTS:
        # When the estimate says nothing fits, the coarsest setting still may.
        choice = _best(candidates, (max_bytes - overhead) / scale) or coarsest
        if choice in tried:
            if best_fit is not None or coarsest in tried:
                break
            choice = coarsest
        tried.append(choice)
        quality, luma_keep, chroma_keep = choice
        profile = Profile.lowpass(quality, luma_keep, chroma_keep, layout=layout)
        size = len(encode(pixels, profile, device_id="x" * device_bytes))
        estimate = float(
            rates[quality][luma_keep - 1, 0 if layout is Layout.GRAY else chroma_keep - 1]
        )
        if size <= max_bytes and (best_fit is None or size > best_fit[0]):
            best_fit = (size, profile)
        scale = max((size - overhead) / max(estimate, 1.0), 0.05)
        if best_fit is not None and size <= max_bytes and size > 0.97 * max_bytes:
            break
    if best_fit is None and coarsest not in tried:
        # Every estimate overshot: the coarsest setting is the last resort.
        profile = Profile.lowpass(*coarsest, layout=layout)
        size = len(encode(pixels, profile, device_id="x" * device_bytes))
        if size <= max_bytes:
            best_fit = (size, profile)
    if best_fit is None:
        raise ValueError(
            f"max_bytes={max_bytes} is too small for a {pixels.shape[1]}x{pixels.shape[0]} image "
            "even at the coarsest setting"
        )
    return best_fit[1]
