"""What the receiver knows about each coded plane: the quantisation interval of every coefficient.

A received coefficient ``q`` with step ``s`` says the encoder's DCT value lay in
``[(q - 1/2) s, (q + 1/2) s]`` (it was rounded to the nearest multiple of ``s``); a coefficient
that did not travel says nothing. Recovery keeps every estimate inside this set, so whatever it
adds is consistent with the payload.

Blocks are rows of ``(N, 64)`` zigzag matrices, as ``shared.codec.transform`` wants them; planes
are level-shifted float32 arrays at coded (padded) resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from shared.codec import DcMode, Decoded, Retention
from shared.codec.quantisation import to_zigzag

Float = npt.NDArray[np.float32]
Mask = npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PlaneConstraints:
    """The constraint set of one plane.

    ``centre``: float32 ``(N, 64)`` dequantised coefficients (zero where nothing arrived).
    ``half_step``: float32 ``(64,)`` half the quantisation step of each zigzag band.
    ``received``: bool ``(N, 64)``, True where the coefficient travelled.
    """

    blocks_y: int
    blocks_x: int
    centre: Float
    half_step: Float
    received: Mask
    retention: Retention

    @property
    def lower(self) -> Float:
        return self.centre - self.half_step

    @property
    def upper(self) -> Float:
        return self.centre + self.half_step

    @cached_property
    def bounds(self) -> tuple[Float, Float]:
        """``lower`` and ``upper`` where a coefficient travelled, -inf and +inf elsewhere.

        Computed once per plane: :func:`project` runs on every iteration.
        """
        infinity = np.float32(np.inf)
        return (
            np.where(self.received, self.lower, -infinity),
            np.where(self.received, self.upper, infinity),
        )

    @property
    def dc_received(self) -> Mask:
        """bool ``(blocks_y, blocks_x)``: blocks whose DC travelled."""
        return self.received[:, 0].reshape(self.blocks_y, self.blocks_x)


def plane_constraints(decoded: Decoded) -> list[PlaneConstraints]:
    """One :class:`PlaneConstraints` per coded channel of ``decoded``."""
    planes = []
    for channel, table, kept in zip(
        decoded.coefficients, decoded.tables, decoded.retention, strict=True
    ):
        blocks_y, blocks_x = channel.shape[:2]
        steps = to_zigzag(table)
        received = np.zeros((blocks_y * blocks_x, 64), dtype=bool)
        received[:, : kept.keep] = True
        if kept.dc_mode is not DcMode.ALL:
            received[:, 0] = kept.anchor_mask(blocks_y, blocks_x).reshape(-1)
        centre: Float = channel.reshape(-1, 64).astype(np.float32) * steps
        half_step: Float = np.asarray(steps / 2, dtype=np.float32)
        planes.append(PlaneConstraints(blocks_y, blocks_x, centre, half_step, received, kept))
    return planes


def project(coefficients: Float, constraints: PlaneConstraints) -> Float:
    """The nearest point of the constraint set: received coefficients clipped to their intervals.

    The DCT is orthonormal, so clipping in the coefficient domain is also the Euclidean
    projection in the pixel domain (the P in POCS).
    """
    lower, upper = constraints.bounds  # infinite where nothing travelled: those stay as they are
    return np.clip(coefficients, lower, upper)


def to_blocks(plane: Float) -> Float:
    """``(8 by, 8 bx)`` plane -> ``(by * bx, 64)`` blocks in raster order, pixels row-major."""
    h, w = plane.shape
    return np.ascontiguousarray(
        plane.reshape(h // 8, 8, w // 8, 8).transpose(0, 2, 1, 3).reshape(-1, 64)
    )


def from_blocks(blocks: Float, blocks_y: int, blocks_x: int) -> Float:
    """Inverse of :func:`to_blocks`."""
    return np.ascontiguousarray(
        blocks.reshape(blocks_y, blocks_x, 8, 8)
        .transpose(0, 2, 1, 3)
        .reshape(blocks_y * 8, blocks_x * 8)
    )
