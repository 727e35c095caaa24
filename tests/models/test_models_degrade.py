"""Training pairs come from the real codec and the receiver's own classical recovery."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cloud_receiver.recovery import Recovery
from cloud_receiver.recovery.network import conditioning
from models.degrade import (
    KIND_WEIGHTS,
    augment,
    degrade,
    describe,
    format_mix,
    mix_name,
    parse_mix,
    sample_profile,
    target_pixels,
)
from shared.codec import Layout, Profile, ProfileKind, decode, encode

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "kodim23-half.png"


@pytest.fixture(scope="module")
def region() -> np.ndarray:
    return np.asarray(Image.open(SAMPLE).convert("RGB"))[:96, :128].copy()


@pytest.mark.parametrize(
    "profile",
    [Profile.auto(40), Profile.adaptive(3000), Profile.lowpass(90, 15, 6), Profile.paper(50, 4)],
    ids=["auto", "adaptive", "lowpass", "paper"],
)
def test_pairs_are_what_the_receiver_sees(region: np.ndarray, profile: Profile) -> None:
    pair = degrade(region, profile)
    decoded = decode(encode(region, profile))
    classical = Recovery(model_path=Path("/nonexistent.onnx")).run(decoded).classical
    assert pair.image.shape == (3, 96, 128)
    assert pair.condition.shape == (6, 96, 128)
    np.testing.assert_array_equal(
        np.rint(pair.image * 255).astype(np.uint8).transpose(1, 2, 0), classical
    )
    np.testing.assert_array_equal(pair.condition, conditioning(decoded)[0])
    np.testing.assert_array_equal(
        np.rint(pair.target * 255).astype(np.uint8).transpose(1, 2, 0), region
    )


def test_gray_pairs_repeat_luma_and_say_chroma_is_exact(region: np.ndarray) -> None:
    pair = degrade(region, Profile.paper(50, 8, layout=Layout.GRAY))
    assert np.array_equal(pair.image[0], pair.image[2])
    expected = target_pixels(region, Layout.GRAY).astype(np.float32) / 255
    for channel in pair.target:
        np.testing.assert_array_equal(channel, expected)
    assert np.all(pair.condition[2:] == np.array([0, 1, 0, 1])[:, None, None])


def test_profiles_are_drawn_over_what_the_edge_sends(region: np.ndarray) -> None:
    rng = np.random.default_rng(3)
    drawn = [sample_profile(rng, region) for _ in range(400)]
    # Issue 15: the edge's default profile over its whole range, adaptive budgets, and
    # lossless (which a network trained without it made worse on Kodak).
    assert {p.kind for p in drawn} == {ProfileKind.AUTO, ProfileKind.ADAPTIVE, ProfileKind.LOSSLESS}
    for kind in (ProfileKind.AUTO, ProfileKind.LOSSLESS):
        qualities = [p.quality for p in drawn if p.kind is kind]
        assert min(qualities) <= 25
        assert max(qualities) >= 90
        assert all(20 <= q <= 95 for q in qualities)
    assert all(p.max_bytes >= 64 for p in drawn if p.kind is ProfileKind.ADAPTIVE)  # type: ignore[operator]
    assert {p.layout for p in drawn} == {Layout.YCBCR420, Layout.YCBCR444, Layout.GRAY}
    assert describe(Profile.auto(45, layout=Layout.GRAY)) == "auto-q45-gray"
    assert describe(Profile.adaptive(9000)) == "adaptive-9000B-420"


def test_a_mix_names_the_kinds_drawn_and_their_shares(region: np.ndarray) -> None:
    assert parse_mix(format_mix(KIND_WEIGHTS)) == KIND_WEIGHTS
    assert mix_name(parse_mix("auto=0.8,adaptive=0.2")) == "auto80-adaptive20"
    rng = np.random.default_rng(4)
    drawn = {sample_profile(rng, region, {"lossless": 1.0}).kind for _ in range(20)}
    assert drawn == {ProfileKind.LOSSLESS}
    for bad in ("auto=0.5,paper=0.5", "auto=0.5", "auto=1.5,adaptive=-0.5", "auto"):
        with pytest.raises(ValueError, match="mix"):
            parse_mix(bad)


def test_augment_draws_all_eight_orientations() -> None:
    square = np.arange(16, dtype=np.uint8).reshape(4, 4)
    rng = np.random.default_rng(0)
    seen = {augment(square, rng).tobytes() for _ in range(200)}
    assert len(seen) == 8
