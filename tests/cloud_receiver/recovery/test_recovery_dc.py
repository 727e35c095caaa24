"""Global DC estimation: smooth images come back with the DCs the sender dropped."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from cloud_receiver.recovery.constraints import plane_constraints
from cloud_receiver.recovery.dc import estimate_dc
from shared.codec import Layout, Profile, decode, encode
from shared.codec.frontend import fill_dc_from_anchors


def _smooth_image(height: int, width: int) -> npt.NDArray[np.uint8]:
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    field = 128 + 60 * np.sin(x / 23.0) * np.cos(y / 31.0) + 0.3 * (x - y)
    image: npt.NDArray[np.uint8] = np.clip(np.rint(field), 0, 255).astype(np.uint8)
    return image


# Mean error bounds in grey levels; measured 0.55, 1.64 and 2.73. The boundary model trusts
# only half the extrapolated gradient (best on real images), so a long smooth ramp between
# far-apart anchors drifts a little.
@pytest.mark.parametrize(("anchor_every", "bound"), [(2, 1.0), (4, 2.0), (8, 3.5)])
def test_missing_dcs_of_a_smooth_image_come_back_within_a_few_grey_levels(
    anchor_every: int, bound: float
) -> None:
    image = _smooth_image(150, 203)
    truth = plane_constraints(decode(encode(image, Profile.lossless(75, layout=Layout.GRAY))))[0]
    decoded = decode(encode(image, Profile.paper(75, anchor_every, layout=Layout.GRAY)))
    constraints = plane_constraints(decoded)[0]
    estimate = estimate_dc(constraints).ravel()
    # An orthonormal DC d adds d / 8 to each pixel: errors in grey levels of the block mean.
    error = np.abs(estimate - truth.centre[:, 0]) / 8
    interpolated = fill_dc_from_anchors(
        constraints.centre[:, 0].reshape(constraints.blocks_y, constraints.blocks_x),
        anchor_every,
    ).ravel()
    interpolation_error = np.abs(interpolated - truth.centre[:, 0]) / 8
    assert error.mean() < bound
    assert error.mean() < interpolation_error.mean() / 2


def test_received_dcs_are_kept_exactly() -> None:
    decoded = decode(encode(_smooth_image(64, 64), Profile.paper(50, 3, layout=Layout.GRAY)))
    constraints = plane_constraints(decoded)[0]
    estimate = estimate_dc(constraints).ravel()
    anchors = constraints.dc_received.ravel()
    assert np.array_equal(estimate[anchors], constraints.centre[anchors, 0])


def test_without_any_anchor_the_differences_still_come_back() -> None:
    image = _smooth_image(96, 96)
    truth = plane_constraints(decode(encode(image, Profile.lossless(75, layout=Layout.GRAY))))[0]
    constraints = plane_constraints(
        decode(encode(image, Profile.paper(75, 255, layout=Layout.GRAY)))
    )[0]
    no_anchor = type(constraints)(
        constraints.blocks_y,
        constraints.blocks_x,
        constraints.centre,
        constraints.half_step,
        constraints.received & ~np.eye(1, 64, dtype=bool),
        constraints.retention,
    )
    estimate = estimate_dc(no_anchor).ravel()
    # Nothing fixes the level, but the pattern of DCs is the image's (measured r = 0.999).
    assert np.corrcoef(estimate, truth.centre[:, 0])[0, 1] > 0.99
