"""Training pairs made by the real codec and the receiver's own classical recovery.

A clean region goes through ``shared.codec`` with a profile sampled over the ranges users run,
is decoded and recovered exactly as the receiver does it, and comes back as the network's two
inputs (``cloud_receiver.recovery.network.network_inputs``) plus the target the receiver should
have produced. The network therefore trains on precisely what it will see at run time.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

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

#: Profile kinds and how often each is drawn; lossless payloads still gain from deblocking.
KIND_WEIGHTS = {"lowpass": 0.4, "paper": 0.2, "adaptive": 0.3, "lossless": 0.1}


@dataclass(frozen=True)
class Pair:
    """One degraded region: the network's inputs and its target, CHW float32 in [0, 1]."""

    image: Float
    condition: Float
    target: Float
    profile: Profile


def jpeg_q90_bytes(pixels: Pixels) -> int:
    """Bytes of Pillow's quality-90 JPEG, the reference adaptive budgets are fractions of."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.tell()


def sample_profile(rng: np.random.Generator, region: Pixels) -> Profile:
    """A profile drawn over the ranges users run (issue 6), for this region."""
    kind = rng.choice(list(KIND_WEIGHTS), p=list(KIND_WEIGHTS.values()))
    if kind == "paper":
        # The paper's experiments are grayscale; colour payloads with anchors exist too.
        layout = Layout.GRAY if rng.random() < 0.6 else Layout.YCBCR420
        return Profile.paper(int(rng.integers(30, 91)), int(rng.integers(4, 17)), layout=layout)
    roll = rng.random()
    layout = Layout.GRAY if roll < 0.1 else Layout.YCBCR444 if roll < 0.2 else Layout.YCBCR420
    if kind == "lowpass":
        luma_keep = int(rng.integers(3, 37))
        chroma_keep = int(rng.integers(1, min(15, luma_keep) + 1))
        return Profile.lowpass(int(rng.integers(50, 96)), luma_keep, chroma_keep, layout=layout)
    if kind == "adaptive":
        reference = target_pixels(region, layout)
        budget = round(jpeg_q90_bytes(reference) * rng.uniform(0.2, 0.8))
        return Profile.adaptive(max(64, budget), layout=layout)
    return Profile.lossless(int(rng.integers(50, 96)), layout=layout)


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
