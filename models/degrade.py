"""Training pairs made by the real codec and the receiver's own classical recovery.

A clean region goes through ``shared.codec`` with a profile sampled over the ranges users run,
is decoded and recovered exactly as the receiver does it, and comes back as the network's two
inputs (``cloud_receiver.recovery.network.network_inputs``) plus the target the receiver should
have produced. The network therefore trains on precisely what it will see at run time.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from cloud_receiver.recovery import smoothing_for
from cloud_receiver.recovery.classical import recover
from cloud_receiver.recovery.network import network_inputs
from shared.codec import Layout, Profile, decode, encode
from shared.codec.colour import luma

Pixels = npt.NDArray[np.uint8]
Float = npt.NDArray[np.float32]

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "train"

#: Profile kinds and how often each is drawn: what the edge sends by default (issue 15), and
#: ``lossless`` (standard JPEG tables, every coefficient), which a network trained without it
#: made worse than classical recovery on Kodak. The receiver's gate keeps the network to these
#: kinds (``python -m models.gate``).
KIND_WEIGHTS: Mapping[str, float] = {"auto": 0.7, "adaptive": 0.15, "lossless": 0.15}
#: The kinds :func:`sample_profile` can draw.
DRAWABLE = ("auto", "adaptive", "lossless")
#: ``auto`` and ``lossless`` qualities drawn uniformly over the range the edge offers.
AUTO_QUALITIES = (20, 95)
#: ``adaptive`` budgets as fractions of the region's Pillow q90 JPEG.
ADAPTIVE_BUDGETS = (0.15, 0.7)


@dataclass(frozen=True)
class Pair:
    """One degraded region: the network's inputs and its target, CHW float32 in [0, 1]."""

    image: Float
    condition: Float
    target: Float
    profile: Profile


def load_images(folder: Path) -> list[Pixels]:
    """The .png photographs in ``folder`` as RGB arrays, sorted by name (the split's order)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not paths:
        raise SystemExit(f"no .png training images in {folder}")
    return [np.asarray(Image.open(p).convert("RGB")) for p in paths]


def jpeg_q90_bytes(pixels: Pixels) -> int:
    """Bytes of Pillow's quality-90 JPEG, the reference adaptive budgets are fractions of."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.tell()


def parse_mix(text: str) -> dict[str, float]:
    """``"auto=0.8,adaptive=0.2"`` -> ``{"auto": 0.8, "adaptive": 0.2}``; ValueError if bad."""
    mix: dict[str, float] = {}
    for item in text.split(","):
        kind, _, weight = item.partition("=")
        if kind not in DRAWABLE:
            raise ValueError(f"unknown kind {kind!r} in the mix; kinds: {', '.join(DRAWABLE)}")
        try:
            mix[kind] = float(weight)
        except ValueError:
            raise ValueError(f"the mix needs kind=share items, got {item!r}") from None
    if any(w < 0 for w in mix.values()) or abs(sum(mix.values()) - 1) > 1e-6:
        raise ValueError(f"the mix's weights must be non-negative and sum to 1: {text}")
    return mix


def format_mix(mix: Mapping[str, float]) -> str:
    """The inverse of :func:`parse_mix`."""
    return ",".join(f"{kind}={weight:g}" for kind, weight in mix.items())


def mix_name(mix: Mapping[str, float]) -> str:
    """A file-name tag, e.g. ``auto70-adaptive15-lossless15`` (per cent, rounded)."""
    return "-".join(f"{kind}{round(100 * weight)}" for kind, weight in mix.items())


def sample_profile(
    rng: np.random.Generator, region: Pixels, mix: Mapping[str, float] = KIND_WEIGHTS
) -> Profile:
    """A profile drawn from ``mix`` over the ranges the edge sends, for this region.

    Mostly colour 4:2:0 (what ``auto`` picks for colour input), with some 4:4:4 and gray.
    """
    kind = rng.choice(list(mix), p=list(mix.values()))
    roll = rng.random()
    layout = Layout.GRAY if roll < 0.1 else Layout.YCBCR444 if roll < 0.2 else Layout.YCBCR420
    if kind == "auto":
        low, high = AUTO_QUALITIES
        return Profile.auto(int(rng.integers(low, high + 1)), layout=layout)
    if kind == "lossless":
        low, high = AUTO_QUALITIES
        return Profile.lossless(int(rng.integers(low, high + 1)), layout=layout)
    reference = target_pixels(region, layout)
    budget = round(jpeg_q90_bytes(reference) * rng.uniform(*ADAPTIVE_BUDGETS))
    return Profile.adaptive(max(64, budget), layout=layout)


def describe(profile: Profile) -> str:
    """A short name for logs and the cache, e.g. ``auto-q45-420`` or ``adaptive-9000B-gray``."""
    layout = {Layout.GRAY: "gray", Layout.YCBCR444: "444", Layout.YCBCR420: "420", None: "420"}
    rate = f"{profile.max_bytes}B" if profile.max_bytes else f"q{profile.quality}"
    return f"{profile.kind.name.lower()}-{rate}-{layout[profile.layout]}"


def target_pixels(region: Pixels, layout: Layout) -> Pixels:
    """What a perfect receiver would show: the region itself, or its JFIF luma for gray."""
    if layout is not Layout.GRAY:
        return region
    return np.clip(np.rint(luma(region) + 128), 0, 255).astype(np.uint8)


def degrade(region: Pixels, profile: Profile) -> Pair:
    """Encode, decode and classically recover ``region`` (HxWx3 uint8) as the receiver does."""
    decoded = decode(encode(region, profile))
    parameters = smoothing_for(decoded)
    classical = decoded.to_rgb() if parameters is None else recover(decoded, parameters)
    inputs = network_inputs(classical, decoded)
    target = target_pixels(region, decoded.layout).astype(np.float32) / np.float32(255)
    target = np.repeat(target[None], 3, axis=0) if target.ndim == 2 else target.transpose(2, 0, 1)
    return Pair(inputs["image"][0], inputs["condition"][0], np.ascontiguousarray(target), profile)


def augment(pixels: Pixels, rng: np.random.Generator) -> Pixels:
    """One of the eight flips and quarter turns, drawn uniformly."""
    turned = np.rot90(pixels, int(rng.integers(4)))
    return np.ascontiguousarray(turned[:, ::-1] if rng.random() < 0.5 else turned)
