"""Recovery latency: classical plus network per image, in process, by ONNX Runtime threads.

    python -m bench.recovery [--data DIR] [--limit N] [--model PATH] [--threads 1 2]

Each image (Kodak when ``../shared/datasets/kodak`` exists, else the bundled samples) is
encoded with one profile per rate point family (the sender's default ``auto`` at q75 and q40,
lowpass q90 (15, 6), the paper's q50 gray with anchors every 8, an adaptive budget), decoded,
and recovered by :class:`cloud_receiver.recovery.Recovery` as the receiver does it, with BLAS
held to one thread as the ingest service holds it (``cloud_receiver/ingest/service.py``):
otherwise numpy's BLAS threads, spinning after each small product of the classical stage,
take the cores from ONNX Runtime's, and the network stage measures about 1.9x slower than it
runs in the service. The figures are medians of the per-image wall times of each stage, after
one warm-up image. Where
the model's gate keeps the network off (MODEL_CARD.md), the network column stays empty.
Target (issue 15): classical plus network at most 200 ms for a 768x512 image on 2 threads.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]  # untyped

from bench.rd import default_data, images_in, load
from cloud_receiver.recovery import DEFAULT_MODEL_PATH, Recovery
from shared.codec import Layout, Profile, decode, encode

PROFILES = {
    "auto-q75": Profile.auto(75),
    "auto-q40": Profile.auto(40),
    "lowpass-q90-15-6": Profile.lowpass(90, 15, 6),
    "paper-q50-gray-a8": Profile.paper(50, 8, layout=Layout.GRAY),
    "adaptive-40kB": Profile.adaptive(40_000),
}


def measure(paths: list[Path], model: Path, threads: int) -> dict[str, dict[str, float]]:
    """Median milliseconds per stage and in total, per profile."""
    recovery = Recovery(model_path=model, threads=threads)
    if not recovery.network_available:
        raise SystemExit(f"error: {recovery.network_detail}")
    result: dict[str, dict[str, float]] = {}
    with threadpool_limits(1, user_api="blas"):  # as the ingest service runs recovery
        for name, profile in PROFILES.items():
            decoded = [decode(encode(load(p), profile)) for p in paths]
            recovery.run(decoded[0])  # warm-up: first-run allocations stay out of the figures
            stages: dict[str, list[float]] = {}
            for payload in decoded:
                timings = recovery.run(payload).timings_s
                for stage, seconds in timings.items():
                    stages.setdefault(stage, []).append(1000 * seconds)
                stages.setdefault("total", []).append(1000 * sum(timings.values()))
            result[name] = {stage: statistics.median(ms) for stage, ms in stages.items()}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recovery", description=__doc__)
    parser.add_argument("--data", type=Path, default=default_data())
    parser.add_argument("--limit", type=int, default=8, help="first N images")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args(argv)
    paths = images_in(args.data, args.limit)
    sizes = sorted({load(p).shape[:2] for p in paths})
    print(f"{len(paths)} images from {args.data} ({', '.join(f'{w}x{h}' for h, w in sizes)})")
    print("| threads | rate point | received ms | classical ms | enhanced ms | total ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for threads in args.threads:
        for name, ms in measure(paths, args.model, threads).items():
            cells = " | ".join(
                f"{ms.get(s, float('nan')):.0f}" for s in ("received", "classical", "enhanced")
            )
            print(f"| {threads} | {name} | {cells} | {ms['total']:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
