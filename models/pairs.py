"""Degraded training pairs, computed once into a cache that every epoch reuses.

    python -m models.pairs [--regions 48] [--size 256] [--workers 2]

Training spent most of each step in the codec and the classical stage when it made its pairs on
the fly (issue 6's run). Here every training photograph gives ``--regions`` regions of ``--size``
pixels, each cut at a random pixel offset (so the content falls on every phase of the 8x8
coding grid), flipped or turned, then encoded with a profile the edge's default sends
(:func:`models.degrade.sample_profile`), decoded and recovered by the receiver's own classical
stage. The cache keeps what the network sees: the classical image and the target as uint8, the
conditioning at block resolution (it is constant over every 8x8 block), and a description of
each profile. ``python -m models.train`` builds the cache itself when it is missing; the file's
name carries the options, so a changed option builds a new one instead of reusing a stale one.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from models.degrade import (
    DEFAULT_DATA,
    KIND_WEIGHTS,
    augment,
    degrade,
    describe,
    format_mix,
    load_images,
    mix_name,
    parse_mix,
    sample_profile,
)

Pixels = npt.NDArray[np.uint8]
Float = npt.NDArray[np.float32]

#: The conditioning maps are constant over each 8x8 block; the cache keeps one value per block.
BLOCK = 8
#: Patch origins keep the 16-pixel phase of 4:2:0 macroblocks, as the receiver's tiles do.
GRID = 16
#: Bump when the pairs change meaning (profile sampler, classical stage): old caches are ignored.
CACHE_VERSION = 2  # 2: the profile mix is part of the name


@dataclass(frozen=True)
class PairCache:
    """``classical`` and ``target`` ``[N, 3, S, S]`` uint8; ``condition`` ``[N, 6, S/8, S/8]``."""

    classical: Pixels
    target: Pixels
    condition: Float
    profiles: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.profiles)


def cache_path(
    folder: Path,
    *,
    images: int,
    regions: int,
    size: int,
    seed: int,
    mix: Mapping[str, float] = KIND_WEIGHTS,
) -> Path:
    stem = f"pairs-v{CACHE_VERSION}-{images}img-{regions}x{size}-seed{seed}-{mix_name(mix)}"
    return folder / f"{stem}.npz"


def _regions_of(
    source: Pixels,
    index: int,
    *,
    regions: int,
    size: int,
    seed: int,
    mix: Mapping[str, float] = KIND_WEIGHTS,
) -> tuple[Pixels, Pixels, Float, list[str]]:
    # One random stream per photograph: the cache is the same whatever the worker count.
    rng = np.random.default_rng([seed, index])
    classical, target, condition, profiles = [], [], [], []
    side = min(size, *source.shape[:2]) // GRID * GRID
    for _ in range(regions):
        top = int(rng.integers(0, source.shape[0] - side + 1))
        left = int(rng.integers(0, source.shape[1] - side + 1))
        region = augment(source[top : top + side, left : left + side], rng)
        profile = sample_profile(rng, region, mix)
        pair = degrade(region, profile)
        classical.append(np.rint(pair.image * 255).astype(np.uint8))
        target.append(np.rint(pair.target * 255).astype(np.uint8))
        condition.append(pair.condition[:, ::BLOCK, ::BLOCK])
        profiles.append(describe(profile))
    return np.stack(classical), np.stack(target), np.stack(condition), profiles


def build_cache(
    images: Sequence[Pixels],
    *,
    regions: int,
    size: int,
    seed: int,
    workers: int,
    mix: Mapping[str, float] = KIND_WEIGHTS,
) -> PairCache:
    """Degrade ``regions`` regions of every image (same result for any ``workers``)."""
    parts: list[tuple[Pixels, Pixels, Float, list[str]]] = []
    kwargs: dict[str, Any] = {"regions": regions, "size": size, "seed": seed, "mix": dict(mix)}
    if workers <= 1:
        parts = [_regions_of(image, i, **kwargs) for i, image in enumerate(images)]
    else:
        with ProcessPoolExecutor(workers) as pool:
            futures = [
                pool.submit(_regions_of, image, i, **kwargs) for i, image in enumerate(images)
            ]
            parts = [future.result() for future in futures]
    return PairCache(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        np.concatenate([p[2] for p in parts]),
        tuple(name for p in parts for name in p[3]),
    )


def save_cache(cache: PairCache, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp.npz")
    np.savez(
        temporary,
        classical=cache.classical,
        target=cache.target,
        condition=cache.condition,
        profiles=np.array(cache.profiles),
    )
    temporary.replace(path)


def load_cache(path: Path) -> PairCache:
    with np.load(path) as data:
        return PairCache(
            data["classical"],
            data["target"],
            data["condition"],
            tuple(str(name) for name in data["profiles"]),
        )


def cached_pairs(
    images: Sequence[Pixels],
    folder: Path,
    *,
    regions: int,
    size: int,
    seed: int,
    workers: int,
    mix: Mapping[str, float] = KIND_WEIGHTS,
) -> PairCache:
    """The cache for these options, built and saved first when it is not on disk."""
    path = cache_path(folder, images=len(images), regions=regions, size=size, seed=seed, mix=mix)
    if path.is_file():
        return load_cache(path)
    start = time.monotonic()
    print(f"building {path} ({len(images)} x {regions} regions) ...", file=sys.stderr)
    cache = build_cache(images, regions=regions, size=size, seed=seed, workers=workers, mix=mix)
    save_cache(cache, path)
    print(f"built {len(cache)} pairs in {time.monotonic() - start:.0f} s", file=sys.stderr)
    return cache


def _turn(array: npt.NDArray[np.generic], turns: int, flip: bool) -> npt.NDArray[np.generic]:
    turned = np.rot90(array, turns, axes=(-2, -1))
    return turned[..., ::-1] if flip else turned


def sample_batch(
    cache: PairCache, rng: np.random.Generator, *, batch: int, patch: int
) -> tuple[Float, Float, Float]:
    """``batch`` random patches as the network's (image, condition, target), float32 in [0, 1].

    Patches start on the 16-pixel grid and are flipped or turned as a whole (every layout's
    coding grid maps onto itself), so each cached region yields many distinct examples.
    """
    side = cache.classical.shape[-1]
    images, conditions, targets = [], [], []
    for index in rng.integers(0, len(cache), size=batch):
        y, x = (int(rng.integers(0, (side - patch) // GRID + 1)) * GRID for _ in range(2))
        turns, flip = int(rng.integers(4)), bool(rng.random() < 0.5)
        window = np.s_[y : y + patch, x : x + patch]
        blocks = np.s_[y // BLOCK : (y + patch) // BLOCK, x // BLOCK : (x + patch) // BLOCK]
        condition = np.repeat(np.repeat(cache.condition[index][(..., *blocks)], BLOCK, 1), BLOCK, 2)
        images.append(_turn(cache.classical[index][(..., *window)], turns, flip))
        targets.append(_turn(cache.target[index][(..., *window)], turns, flip))
        conditions.append(_turn(condition, turns, flip))
    scale = np.float32(1 / 255)
    return (
        np.stack(images).astype(np.float32) * scale,
        np.ascontiguousarray(np.stack(conditions), dtype=np.float32),
        np.stack(targets).astype(np.float32) * scale,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.pairs", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .png images")
    parser.add_argument("--cache", type=Path, default=Path("out/cache"), help="cache folder")
    parser.add_argument("--holdout", type=int, default=5, help="last N images are not cached")
    parser.add_argument("--regions", type=int, default=48, help="regions per photograph")
    parser.add_argument("--size", type=int, default=256, help="region side, pixels")
    parser.add_argument("--seed", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2, help="processes")
    parser.add_argument(
        "--mix", default=format_mix(KIND_WEIGHTS), help="profile kinds and their shares"
    )
    args = parser.parse_args(argv)
    try:
        mix = parse_mix(args.mix)
    except ValueError as error:
        parser.error(str(error))
    images = load_images(args.data)[: -args.holdout]
    cache = cached_pairs(
        images,
        args.cache,
        regions=args.regions,
        size=args.size,
        seed=args.seed,
        workers=args.workers,
        mix=mix,
    )
    kinds: dict[str, int] = {}
    for name in cache.profiles:
        kinds[name.split("-")[0]] = kinds.get(name.split("-")[0], 0) + 1
    print(f"{len(cache)} pairs: {kinds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
