"""The pair cache: built once from the real codec, the same for any worker count, and sampled
into aligned, consistently turned patches."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cloud_receiver.recovery.network import conditioning
from models.degrade import degrade
from models.pairs import (
    BLOCK,
    PairCache,
    build_cache,
    cache_path,
    cached_pairs,
    load_cache,
    sample_batch,
)
from shared.codec import Profile, decode, encode

SAMPLES = sorted((Path(__file__).resolve().parents[2] / "samples").glob("*.png"))


@pytest.fixture(scope="module")
def images() -> list[np.ndarray]:
    return [np.asarray(Image.open(p).convert("RGB"))[:160, :200].copy() for p in SAMPLES[:2]]


def test_the_cache_is_the_same_whatever_the_worker_count(images: list[np.ndarray]) -> None:
    one = build_cache(images, regions=2, size=64, seed=4, workers=1)
    two = build_cache(images, regions=2, size=64, seed=4, workers=2)
    assert len(one) == 4
    assert one.classical.shape == (4, 3, 64, 64)
    assert one.condition.shape == (4, 6, 64 // BLOCK, 64 // BLOCK)
    assert one.profiles == two.profiles
    for name in ("classical", "target", "condition"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
    other_seed = build_cache(images, regions=2, size=64, seed=5, workers=1)
    assert not np.array_equal(one.target, other_seed.target)


def test_cached_pairs_keep_what_the_receiver_computes(images: list[np.ndarray]) -> None:
    # The block-resolution conditioning expands back to exactly the receiver's maps.
    region = images[0][:64, :64]
    pair = degrade(region, Profile.auto(50))
    maps = conditioning(decode(encode(region, Profile.auto(50))))[0]
    small = pair.condition[:, ::BLOCK, ::BLOCK]
    np.testing.assert_array_equal(np.repeat(np.repeat(small, BLOCK, 1), BLOCK, 2), maps)


def test_a_cache_is_saved_and_loaded_under_its_options(
    images: list[np.ndarray], tmp_path: Path
) -> None:
    built = cached_pairs(images, tmp_path, regions=1, size=64, seed=2, workers=1)
    path = cache_path(tmp_path, images=2, regions=1, size=64, seed=2)
    assert path.is_file()
    loaded = load_cache(path)
    assert loaded.profiles == built.profiles
    np.testing.assert_array_equal(loaded.classical, built.classical)
    np.testing.assert_array_equal(loaded.condition, built.condition)
    assert cached_pairs(images, tmp_path, regions=1, size=64, seed=2, workers=1).profiles == (
        built.profiles
    )
    # Another mix of profile kinds is another cache, never the stale one.
    only_lossless = {"lossless": 1.0}
    other = cached_pairs(images, tmp_path, regions=1, size=64, seed=2, workers=1, mix=only_lossless)
    assert cache_path(tmp_path, images=2, regions=1, size=64, seed=2, mix=only_lossless) != path
    assert all(name.startswith("lossless-") for name in other.profiles)


def test_batches_turn_image_condition_and_target_together() -> None:
    # A cache whose three arrays are the same coordinate pattern: any patch cut or turned
    # differently in one of them would no longer match the others.
    side = 64
    rows, cols = np.mgrid[0:side, 0:side]
    pattern = (rows * 3 + cols * 7) % 251
    classical = np.broadcast_to(pattern, (2, 3, side, side)).astype(np.uint8)
    blocks = pattern[::BLOCK, ::BLOCK].astype(np.float32) / 255
    condition = np.broadcast_to(blocks, (2, 6, side // BLOCK, side // BLOCK)).copy()
    cache = PairCache(classical, classical.copy(), condition, ("a", "b"))
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(40):
        image, cond, target = sample_batch(cache, rng, batch=4, patch=32)
        assert image.shape == target.shape == (4, 3, 32, 32)
        assert cond.shape == (4, 6, 32, 32)
        np.testing.assert_array_equal(image, target)
        for patch, maps in zip(image, cond, strict=True):
            seen.add(patch[0].tobytes())
            # The conditioning is constant over 8x8 blocks aligned with the patch ...
            for y in range(0, 32, BLOCK):
                for x in range(0, 32, BLOCK):
                    assert np.ptp(maps[0, y : y + BLOCK, x : x + BLOCK]) == 0
            # ... and at the corner where the patch's origin went, it is that pixel's block,
            # whose first pixel is the origin itself.
            corners = [(y, x) for y in (0, 31) for x in (0, 31)]
            assert any(np.isclose(maps[0, y, x], patch[0, y, x]) for y, x in corners)
    assert len(seen) > 40  # many distinct patches and orientations
