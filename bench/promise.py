"""Does ``auto(quality=q)`` keep its promise? The receiver's picture against libjpeg at q.

    python -m bench.promise [--data DIR] [--qualities 30,50,75,90] [--limit N]

For every image and quality: the auto payload, the receiver's classical (and, with the
installed model, enhanced) picture, and Pillow's libjpeg-turbo JPEG at the same quality
(``optimize=True``, 4:2:0: the JPEG whose size the payload carries). Prints, per quality, how
many images' classical picture reaches the JPEG's PSNR, the worst margin, and the payload's
bytes as a fraction of the JPEG's (mean and worst). The promise: at least 90 % of images, at
mean bytes of at most 0.75x.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.jpeg import decode_jpeg, pillow_jpeg
from bench.rd import default_data, images_in, load
from cloud_receiver.recovery import Recovery
from shared.codec import Profile, decode, encode
from shared.metrics import psnr

QUALITIES = (30, 50, 75, 90)


@dataclass(frozen=True)
class Outcome:
    image: str
    quality: int
    margin_db: float  # classical PSNR minus the JPEG's
    enhanced_margin_db: float | None
    bytes_ratio: float


def measure(path: Path, quality: int, recovery: Recovery) -> Outcome:
    pixels = load(path)
    payload = encode(pixels, Profile.auto(quality))
    stages = recovery.run(decode(payload))
    jpeg = pillow_jpeg(pixels, quality)
    reference = psnr(pixels, decode_jpeg(jpeg))
    enhanced = None if stages.enhanced is None else psnr(pixels, stages.enhanced) - reference
    return Outcome(
        path.name,
        quality,
        psnr(pixels, stages.classical) - reference,
        enhanced,
        len(payload) / len(jpeg),
    )


def table(outcomes: list[Outcome], qualities: tuple[int, ...]) -> str:
    lines = [
        "| quality | classical >= JPEG PSNR | worst margin | mean margin | "
        "enhanced >= JPEG | bytes / JPEG (mean) | worst |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for quality in qualities:
        group = [o for o in outcomes if o.quality == quality]
        margins = np.array([o.margin_db for o in group])
        ratios = np.array([o.bytes_ratio for o in group])
        worst = min(group, key=lambda o: o.margin_db)
        enhanced = [o.enhanced_margin_db for o in group if o.enhanced_margin_db is not None]
        enhanced_cell = f"{sum(m >= 0 for m in enhanced)}/{len(enhanced)}" if enhanced else "-"
        lines.append(
            f"| {quality} | {int((margins >= 0).sum())}/{len(group)} "
            f"({100 * float((margins >= 0).mean()):.0f} %) | {worst.margin_db:+.2f} dB "
            f"({worst.image}) | {float(margins.mean()):+.2f} dB | {enhanced_cell} | "
            f"{float(ratios.mean()):.3f} | {float(ratios.max()):.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.promise", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=default_data(), help="folder of images")
    parser.add_argument(
        "--qualities",
        default=",".join(map(str, QUALITIES)),
        help="comma-separated qualities (default %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    args = parser.parse_args(argv)
    try:
        qualities = tuple(int(q) for q in args.qualities.split(","))
    except ValueError:
        parser.error(f"--qualities {args.qualities!r}: want numbers like 30,50,75,90")
    paths = images_in(args.data, args.limit)
    if not paths:
        parser.error(f"no images in {args.data}")
    recovery = Recovery()
    outcomes = [measure(p, q, recovery) for p in paths for q in qualities]
    print(f"auto(quality=q) on {len(paths)} images of {args.data}:\n")
    print(table(outcomes, qualities))
    return 0


if __name__ == "__main__":
    sys.exit(main())
