"""Zigzag scan order and the frequency-plane neighbours used for entropy contexts."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def _zigzag() -> npt.NDArray[np.intp]:
    order = sorted(
        ((u, v) for u in range(8) for v in range(8)),
        key=lambda uv: (uv[0] + uv[1], uv[0] if (uv[0] + uv[1]) % 2 else uv[1]),
    )
    return np.array([u * 8 + v for u, v in order], dtype=np.intp)


#: ZIGZAG[i] is the natural (row-major) index of the i-th coefficient in zigzag order.
ZIGZAG = _zigzag()
#: INVERSE_ZIGZAG[n] is the zigzag position of natural index n.
INVERSE_ZIGZAG = np.argsort(ZIGZAG)


def _frequency_neighbours() -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Zigzag indices of the (u-1, v) and (u, v-1) neighbours of each band, 64 when absent.

    Both neighbours come earlier in zigzag order, so a decoder working band by band
    already has them. The DC is left out (64): it measures brightness, not activity.
    """
    above = np.full(64, 64, dtype=np.intp)
    left = np.full(64, 64, dtype=np.intp)
    for k, natural in enumerate(ZIGZAG):
        u, v = divmod(int(natural), 8)
        if u > 0 and (u - 1, v) != (0, 0):
            above[k] = INVERSE_ZIGZAG[(u - 1) * 8 + v]
        if v > 0 and (u, v - 1) != (0, 0):
            left[k] = INVERSE_ZIGZAG[u * 8 + v - 1]
    return above, left


FREQ_ABOVE, FREQ_LEFT = _frequency_neighbours()
