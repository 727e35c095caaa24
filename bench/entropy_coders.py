"""Entropy coder 1 against coder 2 (work in progress, issue 14) on the very same coefficients.

    python -m bench.entropy_coders [--data DIR] [--limit N] [--repeats N]

For every image: ``lossless`` at quality 75 and 90 and ``auto`` at quality 75 are encoded once,
and their quantised coefficients coded by both coders. Payload sizes are whole payloads (the
same v1 header, then each coder's bands). The lossless rows also compare with the JPEG that
holds exactly those coefficients (Pillow, optimised Huffman tables) and with Lepton's
recompression of that JPEG, the targets of issue 14. Each coder's time is measured on the
entropy stage alone, encode and decode, interleaved over ``--repeats`` rounds (median per
image), beside Pillow's whole JPEG encode and decode of the same image at quality 75.

Data defaults to ../shared/datasets/kodak (the evaluation set; coder 2's priors are fitted on
../shared/datasets/train only).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import lepton_jpeg_python  # type: ignore[import-untyped]  # ships no stubs or py.typed
import numpy as np
from PIL import Image

from bench.jpeg import Pixels, decode_jpeg, pillow_jpeg, truncated_jpeg_bytes
from shared.codec import Decoded, Profile, decode, encode, entropy, entropy2, wire

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "datasets" / "kodak"
PROFILES = {
    "lossless q75": Profile.lossless(75),
    "lossless q90": Profile.lossless(90),
    "auto q75": Profile.auto(75),
}


@dataclass(frozen=True)
class Sizes:
    coder1: int
    coder2: int
    jpeg: int | None  # the JPEG of the same coefficients (lossless only)
    lepton: int | None


def _segments(decoded: Decoded) -> tuple[list[bytes], list[bytes]]:
    channels, retention = list(decoded.coefficients), list(decoded.retention)
    return entropy.encode_bands(channels, retention), entropy2.encode_bands(channels, retention)


def sizes(pixels: Pixels, profile: Profile, workdir: Path) -> Sizes:
    payload = encode(pixels, profile)
    decoded = decode(payload)
    header = len(payload) - sum(wire.unpack_header(memoryview(payload)[:-4]).band_sizes)
    first, second = _segments(decoded)
    jpeg = lepton = None
    if profile.kind.name == "LOSSLESS":
        jpeg = truncated_jpeg_bytes(decoded, workdir, name="same")
        lepton = len(lepton_jpeg_python.compress_bytes((workdir / "same.jpg").read_bytes()))
    return Sizes(header + sum(map(len, first)), header + sum(map(len, second)), jpeg, lepton)


def _median_ms(run: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return 1000 * statistics.median(times)


def timings(pixels: Pixels, profile: Profile, repeats: int) -> dict[str, float]:
    """Median ms of each coder's encode and decode of one image's coefficients."""
    decoded = decode(encode(pixels, profile))
    channels, retention = list(decoded.coefficients), list(decoded.retention)
    shapes = [c.shape[:2] for c in channels]
    out: dict[str, float] = {}
    for name, coder in (("coder 1", entropy), ("coder 2", entropy2)):
        views = [memoryview(s) for s in coder.encode_bands(channels, retention)]
        encoding = partial(coder.encode_bands, channels, retention)
        decoding = partial(coder.decode_bands, views, [0] * len(views), shapes, retention)
        out[f"{name} encode"] = _median_ms(encoding, repeats)
        out[f"{name} decode"] = _median_ms(decoding, repeats)
    jpeg = pillow_jpeg(pixels, 75)
    out["Pillow JPEG encode (whole)"] = _median_ms(partial(pillow_jpeg, pixels, 75), repeats)
    out["Pillow JPEG decode (whole)"] = _median_ms(partial(decode_jpeg, jpeg), repeats)
    return out


def _mean_ratio(rows: list[Sizes], top: str, bottom: str) -> str:
    """Mean of ``top / bottom`` over the rows that have both, or "-"."""
    values = []
    for row in rows:
        a, b = getattr(row, top), getattr(row, bottom)
        if a is not None and b is not None:
            values.append(a / b)
    return f"{statistics.fmean(values):.3f}" if values else "-"


def report(paths: Sequence[Path], repeats: int) -> list[str]:
    per_profile: dict[str, list[Sizes]] = {name: [] for name in PROFILES}
    times: dict[str, dict[str, list[float]]] = {name: {} for name in PROFILES}
    with tempfile.TemporaryDirectory(prefix="entropy-coders-") as work:
        for path in paths:
            with Image.open(path) as image:
                pixels = np.asarray(image.convert("RGB"))
            for name, profile in PROFILES.items():
                per_profile[name].append(sizes(pixels, profile, Path(work)))
                if repeats:
                    for key, value in timings(pixels, profile, repeats).items():
                        times[name].setdefault(key, []).append(value)
            print(f"{path.name} done", file=sys.stderr, flush=True)
    lines = [
        "| profile | coder 2 / coder 1 | coder 2 / JPEG | coder 1 / JPEG | Lepton / JPEG |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, rows in per_profile.items():
        lines.append(
            f"| {name} | {_mean_ratio(rows, 'coder2', 'coder1')} "
            f"| {_mean_ratio(rows, 'coder2', 'jpeg')} | {_mean_ratio(rows, 'coder1', 'jpeg')} "
            f"| {_mean_ratio(rows, 'lepton', 'jpeg')} |"
        )
    lines.append("")
    lines.append(f"Means over {len(paths)} images; whole payloads (same header) or files.")
    if repeats:
        keys = list(next(iter(times.values())))
        lines += ["", "| profile | " + " | ".join(f"{k} (ms)" for k in keys) + " |"]
        lines.append("| --- |" + " --- |" * len(keys))
        for name, columns in times.items():
            cells = " | ".join(f"{statistics.median(columns[k]):.1f}" for k in keys)
            lines.append(f"| {name} | {cells} |")
        lines.append("")
        lines.append(f"Median over images of each image's median of {repeats} rounds.")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3, help="timing rounds; 0 skips timing")
    args = parser.parse_args(argv)
    paths = sorted(p for p in args.data.glob("*.png"))[: args.limit]
    if not paths:
        parser.error(f"no PNG images in {args.data}")
    print("\n".join(report(paths, args.repeats)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
