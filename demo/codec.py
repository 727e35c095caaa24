"""``python -m demo codec``: the codec round trip on the sample images, no services needed.

For each image: payload bytes against a libjpeg (Pillow) JPEG of the same quality, and the PSNR
of the zero-filled reconstruction the receiver starts from.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
from PIL import Image

from shared.codec import Profile, decode, encode
from shared.metrics import psnr

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("images", nargs="*", type=Path, help="images to encode (default: samples/)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality factor 1..100")
    parser.add_argument("--luma-keep", type=int, default=15, help="zigzag bands kept for luma")
    parser.add_argument("--chroma-keep", type=int, default=6, help="zigzag bands kept for chroma")


def run(args: argparse.Namespace) -> int:
    paths: list[Path] = args.images or sorted(SAMPLES.glob("*.png"))
    if not paths:
        raise SystemExit(f"python -m demo codec: no images given and none found in {SAMPLES}")
    profile = Profile.lowpass(args.quality, args.luma_keep, args.chroma_keep)
    print(
        f"{'image':<24}{'payload':>9}{'JPEG q' + str(args.quality):>10}{'ratio':>7}{'PSNR dB':>9}"
    )
    for path in paths:
        rgb = np.asarray(Image.open(path).convert("RGB"))
        payload = encode(rgb, profile, device_id="demo")
        jpeg = io.BytesIO()
        Image.fromarray(rgb).save(jpeg, "JPEG", quality=args.quality, optimize=True)
        received = decode(payload).to_rgb()
        ratio = len(payload) / jpeg.tell()
        print(
            f"{path.name:<24}{len(payload):>9}{jpeg.tell():>10}{ratio:>7.2f}"
            f"{psnr(rgb, received):>9.2f}"
        )
    return 0
