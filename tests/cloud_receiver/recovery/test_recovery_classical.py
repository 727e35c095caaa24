"""Classical recovery never hurts, stays consistent with the payload, and takes any geometry."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from bench.jpeg import pillow_jpeg
from cloud_receiver.recovery import Recovery, smoothing_for
from cloud_receiver.recovery.classical import SmoothingParameters, recover, recover_planes
from cloud_receiver.recovery.constraints import plane_constraints, to_blocks
from shared.codec import Layout, Profile, decode, encode
from shared.codec.transform import forward_dct
from shared.metrics import psnr

SAMPLES = sorted((Path(__file__).resolve().parents[3] / "samples").glob("*.png"))
PROFILES = {
    "lowpass": Profile.lowpass(90, 15, 6),
    "lowpass-coarse": Profile.lowpass(90, 6, 1),
    "paper": Profile.paper(50, 8, layout=Layout.GRAY),
    "adaptive": Profile.adaptive(max_bytes=6000),
}


def _rgb(path: Path) -> npt.NDArray[np.uint8]:
    return np.asarray(Image.open(path).convert("RGB"))


def _reference(image: npt.NDArray[np.uint8], layout: Layout) -> npt.NDArray[np.uint8]:
    if layout is not Layout.GRAY:
        return image
    gray = np.rint(image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32))
    return np.clip(gray, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("profile", PROFILES.values(), ids=PROFILES.keys())
@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_classical_never_lowers_psnr_below_zero_fill(path: Path, profile: Profile) -> None:
    image = _rgb(path)
    decoded = decode(encode(image, profile))
    stages = Recovery(model_path=path.with_suffix(".missing")).run(decoded)
    reference = _reference(image, decoded.layout)
    assert psnr(reference, stages.classical) >= psnr(reference, stages.received)


@pytest.mark.parametrize("percent", [30, 50, 70])
@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_classical_never_lowers_psnr_at_adaptive_budgets_of_the_q90_jpeg(
    path: Path, percent: int
) -> None:
    # The budgets bench.rd measures: the encoder then picks quality ~40-85 and keeps many bands,
    # so quantisation intervals are wide; smoothing inside them must not remove texture.
    image = _rgb(path)
    budget = max(64, round(len(pillow_jpeg(image, 90)) * percent / 100))
    decoded = decode(encode(image, Profile.adaptive(max_bytes=budget)))
    stages = Recovery(model_path=path.with_suffix(".missing")).run(decoded)
    assert psnr(image, stages.classical) >= psnr(image, stages.received)


def test_paper_dc_estimate_beats_anchor_interpolation_by_far() -> None:
    image = _rgb(SAMPLES[0])
    decoded = decode(encode(image, PROFILES["paper"]))
    reference = _reference(image, decoded.layout)
    gain = psnr(reference, recover(decoded)) - psnr(reference, decoded.to_rgb())
    assert gain > 5.0


@pytest.mark.parametrize("layout", list(Layout), ids=[layout.name for layout in Layout])
@pytest.mark.parametrize(
    "profile",
    [Profile.lowpass(90, 10, 3), Profile.paper(75, 3), Profile.adaptive(max_bytes=800)],
    ids=["lowpass", "paper", "adaptive"],
)
def test_received_coefficients_stay_inside_their_quantisation_intervals(
    layout: Layout, profile: Profile
) -> None:
    image = _rgb(SAMPLES[1])[:77, :91]
    decoded = decode(encode(image, replace(profile, layout=layout)))
    planes = recover_planes(decoded, SmoothingParameters(iterations=6))
    for plane, constraints in zip(planes, plane_constraints(decoded), strict=True):
        reanalysed = forward_dct(to_blocks(plane))
        received = constraints.received
        # float32 inverse-then-forward DCT rounds by ~1e-4 of a coefficient's magnitude.
        slack = 1e-3 * np.maximum(np.abs(constraints.centre), 1.0)
        assert np.all(reanalysed[received] >= (constraints.lower - slack)[received])
        assert np.all(reanalysed[received] <= (constraints.upper + slack)[received])


@pytest.mark.parametrize("size", [(1, 1), (7, 13), (17, 9), (33, 65)])
@pytest.mark.parametrize("layout", list(Layout), ids=[layout.name for layout in Layout])
@pytest.mark.parametrize(
    "profile",
    [Profile.lowpass(90, 15, 6), Profile.paper(50, 2), Profile.lossless(90)],
    ids=["lowpass", "paper", "lossless"],
)
def test_any_size_and_layout_recovers_to_the_image_shape(
    size: tuple[int, int], layout: Layout, profile: Profile
) -> None:
    rng = np.random.default_rng(size[0] * 100 + size[1])
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    decoded = decode(encode(image, replace(profile, layout=layout)))
    stages = Recovery(iterations=2, model_path=Path("no-such-model.onnx")).run(decoded)
    expected = size if layout is Layout.GRAY else (*size, 3)
    assert stages.classical.shape == stages.received.shape == expected
    assert stages.classical.dtype == np.uint8
    assert stages.enhanced is None


def test_lossless_passes_the_preview_through() -> None:
    decoded = decode(encode(_rgb(SAMPLES[2]), Profile.lossless(90)))
    assert smoothing_for(decoded) is None
    stages = Recovery(model_path=Path("no-such-model.onnx")).run(decoded)
    assert np.array_equal(stages.classical, stages.received)
    assert set(stages.timings_s) == {"received", "classical"}
