"""Encode/decode speed and memory of the codec, relative to Pillow's JPEG on the same image.

    python -m bench.speed [--data DIR] [--repeats N] [--size WxH ...]

Ours and Pillow's runs alternate in one process, so both see the same machine load; each
figure is the median of ``--repeats`` runs. Pillow encodes baseline JPEG at quality 90 with
4:2:0 chroma and default (not optimised) Huffman tables, as a camera would. The "coder 2" rows
are the same profiles as payload v2 (entropy coder 2, work in progress), beside coder 1's.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from bench.jpeg import Pixels, decode_jpeg, pillow_jpeg
from bench.rd import default_data, images_in, load
from shared.codec import Profile, decode, encode

SIZES: tuple[tuple[int, int], ...] = ((768, 512), (1920, 1080))
#: (label, profile, entropy coder)
PROFILES: tuple[tuple[str, Profile, int], ...] = (
    ("auto q75 (default)", Profile.auto(75), 1),
    ("auto q75 coder 2", Profile.auto(75), 2),
    ("adaptive 40 kB", Profile.adaptive(40_000), 1),
    ("lowpass", Profile.lowpass(), 1),
    ("lossless q90", Profile.lossless(90), 1),
    ("lossless q90 coder 2", Profile.lossless(90), 2),
)


@dataclass(frozen=True)
class Timing:
    size: str
    profile: str
    payload_bytes: int
    jpeg_bytes: int
    encode_ms: float
    jpeg_encode_ms: float
    decode_ms: float
    jpeg_decode_ms: float
    encode_peak_mib: float
    decode_peak_mib: float


def speed_image(data: Path, width: int, height: int) -> Pixels:
    """The first image of ``data`` resized (Lanczos) to width x height."""
    paths = images_in(data, 1)
    if not paths:
        raise FileNotFoundError(f"no images in {data}")
    image = Image.fromarray(load(paths[0]))
    if image.size != (width, height):
        image = image.resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(image)


def _seconds(task: Callable[[], object]) -> float:
    start = time.perf_counter()
    task()
    return time.perf_counter() - start


def interleaved(
    ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> tuple[float, float]:
    """Median seconds of each task, run alternately after one warm-up of each."""
    ours()
    theirs()
    mine, other = [], []
    for _ in range(repeats):
        mine.append(_seconds(ours))
        other.append(_seconds(theirs))
    return statistics.median(mine), statistics.median(other)


def _peak_mib(task: Callable[[], object]) -> float:
    tracemalloc.start()
    try:
        task()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def measure(pixels: Pixels, label: str, profile: Profile, repeats: int, coder: int = 1) -> Timing:
    payload = encode(pixels, profile, coder=coder)
    jpeg = pillow_jpeg(pixels, 90, optimize=False)
    encode_s, jpeg_encode_s = interleaved(
        lambda: encode(pixels, profile, coder=coder),
        lambda: pillow_jpeg(pixels, 90, optimize=False),
        repeats,
    )
    decode_s, jpeg_decode_s = interleaved(
        lambda: decode(payload).to_rgb(), lambda: decode_jpeg(jpeg), repeats
    )
    return Timing(
        f"{pixels.shape[1]}x{pixels.shape[0]}",
        label,
        len(payload),
        len(jpeg),
        encode_s * 1e3,
        jpeg_encode_s * 1e3,
        decode_s * 1e3,
        jpeg_decode_s * 1e3,
        _peak_mib(lambda: encode(pixels, profile, coder=coder)),
        _peak_mib(lambda: decode(payload).to_rgb()),
    )


def table(timings: list[Timing]) -> str:
    header = (
        f"{'size':<10}{'profile':<21}{'payload B':>10}{'JPEG B':>9}"
        f"{'enc ms':>9}{'JPEG enc':>9}{'x':>7}{'dec ms':>9}{'JPEG dec':>9}{'x':>7}"
        f"{'enc MiB':>9}{'dec MiB':>9}"
    )
    lines = [header, "-" * len(header)]
    for t in timings:
        lines.append(
            f"{t.size:<10}{t.profile:<21}{t.payload_bytes:>10}{t.jpeg_bytes:>9}"
            f"{t.encode_ms:>9.1f}{t.jpeg_encode_ms:>9.1f}{t.encode_ms / t.jpeg_encode_ms:>7.1f}"
            f"{t.decode_ms:>9.1f}{t.jpeg_decode_ms:>9.1f}{t.decode_ms / t.jpeg_decode_ms:>7.1f}"
            f"{t.encode_peak_mib:>9.1f}{t.decode_peak_mib:>9.1f}"
        )
    return "\n".join(lines)


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 768x512, got {text!r}") from None
    if width < 1 or height < 1:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.speed", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--data", type=Path, default=default_data(), help="folder of images")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each task")
    parser.add_argument(
        "--size",
        type=_size,
        action="append",
        help="WxH to time at (repeatable; default 768x512 and 1920x1080)",
    )
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    timings = [
        measure(speed_image(args.data, width, height), label, profile, args.repeats, coder)
        for width, height in args.size or SIZES
        for label, profile, coder in PROFILES
    ]
    print(f"images from {args.data}; medians of {args.repeats} interleaved runs")
    print(table(timings))
    print(
        "x: ours / Pillow. enc/dec MiB: tracemalloc peak of one encode / one decode "
        "(numpy buffers included, Pillow's C allocations not)."
    )
    # ru_maxrss is in KiB on Linux.
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS: {max_rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
