"""8x8 orthonormal DCT-II in zigzag order, as one matrix product over all blocks."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from shared.codec.zigzag import ZIGZAG


def _dct_matrix() -> npt.NDArray[np.float64]:
    n = np.arange(8)
    basis = np.cos((2 * n[None, :] + 1) * n[:, None] * np.pi / 16)
    basis[0] *= np.sqrt(1 / 8)
    basis[1:] *= np.sqrt(2 / 8)
    return basis


DCT_1D = _dct_matrix()
# Row k of the 64x64 2-D basis is the k-th zigzag coefficient's basis image, flattened, so a
# (blocks, 64) pixel matrix times its transpose gives zigzag coefficients directly, and a
# truncated product computes only the retained bands.
DCT_2D_ZIGZAG = np.kron(DCT_1D, DCT_1D)[ZIGZAG].astype(np.float32)


def forward_dct(blocks: npt.NDArray[np.float32], bands: int = 64) -> npt.NDArray[np.float32]:
    """(N, 64) level-shifted pixels -> (N, bands) zigzag coefficients."""
    return blocks @ DCT_2D_ZIGZAG[:bands].T


def inverse_dct(coefficients: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """(N, bands) zigzag coefficients (missing bands taken as zero) -> (N, 64) pixels."""
    bands = coefficients.shape[1]
    return coefficients @ DCT_2D_ZIGZAG[:bands]
