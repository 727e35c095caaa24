"""Global DC estimation from block-boundary smoothness (the ``paper`` profile's first step).

Qiu et al. recover missing DCs block by block, each from its already-estimated neighbours, so
errors accumulate along the scan. Here every missing DC is solved for at once: each block's AC
content is known, so across every horizontal and vertical block boundary the DC difference of
the two blocks is the one that makes the boundary as smooth as its surroundings predict. That is
a weighted least-squares problem on the block grid (a graph Laplacian), anchored by the DCs
that did travel (hard constraints: their unknowns are eliminated), solved with a sparse direct
solver. Edges of real objects do cross block boundaries; iteratively reweighted least squares
(weights ``1 / |residual|``, an L1 fit) keeps them from smearing the estimate.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import scipy.sparse.linalg as spla

from cloud_receiver.recovery.constraints import Float, Mask, PlaneConstraints
from shared.codec.transform import inverse_dct

#: With orthonormal 8x8 DCT a DC coefficient d adds d / 8 to every pixel of its block.
_DC_GAIN = np.float32(1 / 8)
#: How much of the extrapolated gradient the boundary model trusts. The inner gradients carry
#: the AC quantisation error, so the full extrapolation (1) is noisy and a zero-jump model (0)
#: flattens ramps; halfway measured best for the first estimate on the training set (paper q50
#: gray, anchors every 8: 0 -> 26.70 dB, 0.5 -> 27.11 dB, 0.75 -> 27.07 dB, 1 -> 26.87 dB before
#: smoothing). Re-estimated from smoothed AC (see classical.recover_planes) the gradients are less
#: noisy and 0.75 wins: 8 half-size training crops, 27.17 dB (0.5, one solve) -> 27.45 dB.
_GRADIENT_TRUST = 0.75
#: Residual (in grey levels per boundary pixel) below which IRLS stops trusting an edge less;
#: 0.5 -> 2 added 0.03-0.05 dB on the same crops.
_IRLS_FLOOR = 2.0


def _boundary_targets(ac: npt.NDArray[np.float32]) -> tuple[Float, Float]:
    """Per boundary pixel, the DC difference that makes the boundary follow its neighbours.

    ``ac``: ``(by, bx, 8, 8)`` pixels of the AC content alone. The jump across a boundary is
    predicted as the mean of the gradients just inside the two blocks (linear extrapolation
    from both sides), so smooth ramps are not flattened into staircases as a zero-jump model
    would; the prediction is shrunk by ``_GRADIENT_TRUST``. Returns (horizontal neighbours
    ``(by, bx-1, 8)``, vertical ``(by-1, bx, 8)``), in DC
    units: ``dc[right] - dc[left]`` and ``dc[below] - dc[above]``.
    """
    left, left_in = ac[:, :-1, :, 7], ac[:, :-1, :, 6]
    right, right_in = ac[:, 1:, :, 0], ac[:, 1:, :, 1]
    predicted = 0.5 * _GRADIENT_TRUST * ((left - left_in) + (right_in - right))
    horizontal = (predicted - (right - left)) / _DC_GAIN
    top, top_in = ac[:-1, :, 7, :], ac[:-1, :, 6, :]
    bottom, bottom_in = ac[1:, :, 0, :], ac[1:, :, 1, :]
    predicted = 0.5 * _GRADIENT_TRUST * ((top - top_in) + (bottom_in - bottom))
    vertical = (predicted - (bottom - top)) / _DC_GAIN
    return horizontal.astype(np.float32), vertical.astype(np.float32)


def _edges(blocks_y: int, blocks_x: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """(first, second) block index of every horizontal then every vertical boundary."""
    index = np.arange(blocks_y * blocks_x).reshape(blocks_y, blocks_x)
    first = np.concatenate([index[:, :-1].ravel(), index[:-1, :].ravel()])
    second = np.concatenate([index[:, 1:].ravel(), index[1:, :].ravel()])
    return first, second


def _solve(
    first: npt.NDArray[np.intp],
    second: npt.NDArray[np.intp],
    weights: npt.NDArray[np.float64],
    targets: npt.NDArray[np.float64],
    *,
    known: Mask,
    known_values: npt.NDArray[np.float64],
) -> npt.NDArray[np.float64]:
    """Minimise sum w (d[second] - d[first] - t)^2 with d fixed where ``known``."""
    n = known.size
    edges = first.size
    incidence = sp.csr_matrix(
        (
            np.concatenate([-np.ones(edges), np.ones(edges)]),
            (np.tile(np.arange(edges), 2), np.concatenate([first, second])),
        ),
        shape=(edges, n),
    )
    weighted = (incidence.T @ sp.diags(weights)).tocsr()
    laplacian = (weighted @ incidence).tocsc()
    rhs = weighted @ targets
    free = ~known
    d = np.where(known, known_values, 0.0)
    if not free.any():
        return d
    system = laplacian[free][:, free]
    rhs_free = rhs[free] - laplacian[free][:, known] @ d[known]
    if not known.any():
        # Nothing fixes the overall level: pull it weakly to mid-grey (DC 0) so the system is
        # non-singular; the boundary terms still decide every difference.
        system = system + sp.identity(system.shape[0], format="csc") * 1e-6
    d[free] = spla.spsolve(system.tocsc(), rhs_free)
    return d


def estimate_dc(
    constraints: PlaneConstraints, coefficients: Float | None = None, *, irls_iterations: int = 4
) -> Float:
    """DC of every block of one plane, ``(blocks_y, blocks_x)`` float32; received DCs kept.

    Missing DCs come from boundary smoothness, anchored by the received ones (see the module
    docstring). The AC content is ``coefficients`` ``(N, 64)`` when given (a smoothed estimate
    inside the quantisation intervals), else the dequantised centres. ``irls_iterations`` 0
    gives the plain least-squares fit.
    """
    by, bx = constraints.blocks_y, constraints.blocks_x
    known = constraints.dc_received.ravel()
    known_values = constraints.centre[:, 0].astype(np.float64)
    if known.all():
        return constraints.centre[:, 0].reshape(by, bx).copy()
    ac = (constraints.centre if coefficients is None else coefficients).copy()
    ac[:, 0] = 0
    pixels = inverse_dct(ac).reshape(by, bx, 8, 8)
    horizontal, vertical = _boundary_targets(pixels)
    per_pixel = np.concatenate([horizontal.reshape(-1, 8), vertical.reshape(-1, 8)]).astype(
        np.float64
    )
    first, second = _edges(by, bx)
    pixel_weights = np.ones_like(per_pixel)
    d = np.zeros(by * bx)
    for iteration in range(irls_iterations + 1):
        if iteration:
            residual = (d[second] - d[first])[:, None] - per_pixel
            # L1 by reweighting: an edge that disagrees with the fit (a real object edge)
            # loses influence in proportion, instead of pulling the whole neighbourhood.
            pixel_weights = 1.0 / np.maximum(np.abs(residual) * _DC_GAIN, _IRLS_FLOOR)
        weights = pixel_weights.sum(axis=1)
        targets = (pixel_weights * per_pixel).sum(axis=1) / weights
        d = _solve(first, second, weights, targets, known=known, known_values=known_values)
    return d.reshape(by, bx).astype(np.float32)
