"""``python -m demo codec``: the codec round trip on the sample images, no services needed.

For each image: payload bytes against the libjpeg (Pillow) JPEG it is compared with, and the
PSNR of the zero-filled reconstruction the receiver starts from. With ``auto`` (the default)
that JPEG is the one of equal quality (the sender's own measurement, read from the payload);
with ``lowpass`` it is libjpeg's JPEG at the same quality setting, whose picture is better
than the payload's, so its ratio is no saving at equal quality.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from shared.codec import Profile, decode, encode
from shared.codec.reference import reference_jpeg_bytes
from shared.metrics import psnr

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="images to encode (default: samples/)")
    parser.add_argument(
        "--profile",
        choices=["auto", "lowpass"],
        default="auto",
        help="auto: at least the quality of a JPEG at --quality in the fewest bytes (default);"
        " lowpass: the first K zigzag bands at --quality tables",
    )
    parser.add_argument(
        "--quality", type=int, default=75, help="libjpeg quality 1..100 (default 75)"
    )
    parser.add_argument("--luma-keep", type=int, default=15, help="lowpass: bands kept for luma")
    parser.add_argument("--chroma-keep", type=int, default=6, help="lowpass: bands kept for chroma")


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.images or sorted(SAMPLES.glob("*.png"))
    if not paths:
        raise SystemExit(f"python -m demo codec: no images given and none found in {SAMPLES}")
    if args.profile == "auto":
        profile = Profile.auto(args.quality)
        compared = f"JPEG q{args.quality} (equal quality)"
    else:
        profile = Profile.lowpass(args.quality, args.luma_keep, args.chroma_keep)
        compared = f"JPEG q{args.quality} (quality not matched)"
    print(compared)
    print(f"{'image':<24}{'payload':>9}{'JPEG':>9}{'ratio':>7}{'PSNR dB':>9}")
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        payload = encode(rgb, profile, device_id="demo")
        decoded = decode(payload)
        jpeg = decoded.reference_jpeg_bytes or reference_jpeg_bytes(rgb, args.quality)
        print(
            f"{path.name:<24}{len(payload):>9}{jpeg:>9}{len(payload) / jpeg:>7.2f}"
            f"{psnr(rgb, decoded.to_rgb()):>9.2f}"
        )
    return 0
