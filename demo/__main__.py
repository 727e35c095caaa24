"""Codec round trip on the shipped sample images: payload bytes against JPEG, and PSNR.

Later the demo grows into the whole stack (broker, receiver, sender); the codec is its core.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from shared.codec import Profile, decode, encode
from shared.metrics import psnr

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__)
    parser.add_argument("images", nargs="*", type=Path, help="images to send (default: samples/)")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality factor 1..100")
    parser.add_argument("--luma-keep", type=int, default=15, help="zigzag bands kept for luma")
    parser.add_argument("--chroma-keep", type=int, default=6, help="zigzag bands kept for chroma")
    args = parser.parse_args(argv)
    paths = args.images or sorted(SAMPLES.glob("*.png"))
    if not paths:
        parser.error(f"no images given and none found in {SAMPLES}")
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


if __name__ == "__main__":
    sys.exit(main())
