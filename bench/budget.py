"""What one image costs the receiver, stage by stage: the figures behind its budget estimates.

    python -m bench.budget [--size WxH ...] [--cases NAME ...]

Each case runs in a fresh process (peak memory is a process's ``ru_maxrss``), decodes one
payload without limits and runs every stage without a budget, then prints peak bytes per pixel
above the idle process and seconds per megapixel beside what
:mod:`cloud_receiver.recovery.budget` estimates for it. An estimate below the measurement is a
bound that does not hold on this machine; raise the table there.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from cloud_receiver.imaging import png_bytes
from cloud_receiver.recovery import DEFAULT_MODEL_PATH, Recovery
from cloud_receiver.recovery.budget import estimate
from shared.codec import DcMode, DecodeLimits, Layout, Profile, decode, decode_header, encode

CASES: dict[str, tuple[Layout, Profile]] = {
    "flat-444": (Layout.YCBCR444, Profile.lowpass(50, 1, 1, layout=Layout.YCBCR444)),
    "texture-444": (Layout.YCBCR444, Profile.auto(75, layout=Layout.YCBCR444)),
    "texture-420": (Layout.YCBCR420, Profile.auto(75, layout=Layout.YCBCR420)),
    "anchors-gray": (Layout.GRAY, Profile.paper(50, 255)),
}
_UNLIMITED = DecodeLimits(
    max_width=65535,
    max_height=65535,
    max_pixels=1 << 40,
    max_payload_bytes=1 << 31,
    max_pixels_per_byte=1 << 40,
)


def _payload(case: str, width: int, height: int) -> bytes:
    layout, profile = CASES[case]
    shape = (height, width) if layout is Layout.GRAY else (height, width, 3)
    if case.startswith("flat") or case.startswith("anchors"):
        pixels = np.zeros(shape, np.uint8)
    else:  # blurred noise: every band busy, as a worst case for the entropy decoder
        noise = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
        pixels = np.asarray(Image.fromarray(noise).filter(ImageFilter.GaussianBlur(2)))
    return encode(pixels, profile)


def _measure(path: Path) -> dict[str, float]:
    """One payload through every stage, in this (fresh) process."""
    payload = path.read_bytes()
    recovery = Recovery(model_path=DEFAULT_MODEL_PATH)

    def peak() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024.0

    idle = peak()
    started = time.process_time()
    decoded = decode(payload, limits=_UNLIMITED)
    stages = recovery.run(decoded)
    for image in (stages.received, stages.classical, stages.enhanced):
        if image is not None:
            png_bytes(image)
    return {
        "peak_bytes": peak() - idle,
        "seconds": time.process_time() - started,
        **{f"{k}_s": v for k, v in stages.timings_s.items()},
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", nargs="+", default=["1024x1024", "2048x2048"])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--measure", type=Path, help=argparse.SUPPRESS)  # the child process
    args = parser.parse_args(argv)
    if args.measure is not None:
        print(json.dumps(_measure(args.measure)))
        return
    print(
        f"{'case':<14}{'size':>11}{'bytes':>9}{'peak B/px':>11}{'est B/px':>10}"
        f"{'s/Mpx':>8}{'classical s':>13}{'est':>7}{'network s':>11}{'est':>7}"
    )
    with tempfile.TemporaryDirectory() as folder:
        for case in args.cases:
            for size in args.size:
                width, height = (int(v) for v in size.split("x"))
                path = Path(folder) / f"{case}-{size}.bin"
                path.write_bytes(_payload(case, width, height))
                out = subprocess.run(
                    [sys.executable, "-m", "bench.budget", "--measure", str(path)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                got = json.loads(out.stdout.strip().splitlines()[-1])
                header = decode_header(path.read_bytes())
                guess = estimate(
                    width,
                    height,
                    header.layout,
                    dc_missing=any(k.dc_mode is not DcMode.ALL for k in header.retention),
                )
                pixels = width * height
                est_peak = max(guess.classical_bytes, guess.enhanced_bytes) / pixels
                print(
                    f"{case:<14}{size:>11}{path.stat().st_size:>9}"
                    f"{got['peak_bytes'] / pixels:>11.0f}{est_peak:>10.0f}"
                    f"{got['seconds'] / pixels * 1e6:>8.2f}"
                    f"{got.get('classical_s', 0):>13.2f}{guess.classical_seconds:>7.2f}"
                    f"{got.get('enhanced_s', 0):>11.2f}{guess.enhanced_seconds:>7.2f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
