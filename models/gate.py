"""Measure where the installed network helps, and write the gate the receiver reads.

    python -m models.gate [--size 512] [--threads 1] [--dry-run]

For every rate point below, each held-out training photograph (the last ``--holdout`` by name,
the validation split of :mod:`models.train`; never Kodak) is centre-cropped, encoded with the
real codec, decoded, recovered classically as the receiver does it, and run through the
network stage directly (not through :class:`~cloud_receiver.recovery.Recovery`, whose gate
would hide exactly what is being measured). PSNR and SSIM against the source (its JFIF luma
for gray payloads) are averaged per rate point and printed as a Markdown table.

Decisions (:func:`decide`) become ``<model>.gate.json``, read by the receiver at load
(:mod:`cloud_receiver.recovery.gate`):

* ``auto``: one rule per measured quality, covering the qualities nearer to it than to its
  neighbours (20 -> 1-25, 30 -> 26-35, ...), since the payload carries the promised quality;
* every other kind: one rule, from the mean over its rate points, because a payload does not
  say which budget (adaptive) or keep counts produced it in a way worth splitting on here.

The network is applied where the mean PSNR gain over classical exceeds ``--min-gain`` and the
kind is one it was trained on (``--trained-kinds``; by default the ``trained_kinds`` that
``models.export`` writes into the model's metadata from the checkpoint): the gain of the other
kinds is measured and written down, but they stay off (see :mod:`cloud_receiver.recovery.gate`
for why). A model without that metadata is taken to have seen every kind.
Rerun it whenever the model or the encoder changes.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

from cloud_receiver.recovery import DEFAULT_MODEL_PATH, smoothing_for
from cloud_receiver.recovery.classical import recover
from cloud_receiver.recovery.gate import Gate, GateRule, sidecar_path
from cloud_receiver.recovery.network import NetworkStage, load_stage
from models.degrade import DEFAULT_DATA, jpeg_q90_bytes, target_pixels
from shared.codec import Layout, Profile, ProfileKind, decode, encode
from shared.metrics import psnr, ssim

#: The qualities bench.rd sweeps ``auto`` over; each becomes one quality band of the gate.
AUTO_QUALITIES = (20, 30, 40, 50, 60, 75, 85, 90, 95)
Pixels = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class RatePoint:
    name: str
    kind: ProfileKind
    profile: Callable[[Pixels], Profile]
    quality: int | None = None  # the auto quality, which the gate splits on


def _adaptive(percent: int) -> RatePoint:
    def profile(region: Pixels) -> Profile:
        reference = target_pixels(region, Layout.YCBCR420)
        return Profile.adaptive(max(64, round(jpeg_q90_bytes(reference) * percent / 100)))

    return RatePoint(f"adaptive-{percent}pct", ProfileKind.ADAPTIVE, profile)


def _auto(quality: int) -> RatePoint:
    return RatePoint(f"auto-q{quality}", ProfileKind.AUTO, lambda _: Profile.auto(quality), quality)


def _fixed(name: str, kind: ProfileKind, profile: Profile) -> RatePoint:
    return RatePoint(name, kind, lambda _: profile)


def rate_points(auto_qualities: Sequence[int] = AUTO_QUALITIES) -> list[RatePoint]:
    """``auto`` at each quality, adaptive budgets, and the rate points of bench.rd / train.py."""
    return [
        *(_auto(q) for q in sorted(auto_qualities)),
        *(_adaptive(p) for p in (20, 30, 40, 50, 70)),
        _fixed("lowpass-q90-28-10", ProfileKind.LOWPASS, Profile.lowpass(90, 28, 10)),
        _fixed("lowpass-q90-15-6", ProfileKind.LOWPASS, Profile.lowpass(90, 15, 6)),
        _fixed("lowpass-q90-6-1", ProfileKind.LOWPASS, Profile.lowpass(90, 6, 1)),
        _fixed("lowpass-q60-6-2", ProfileKind.LOWPASS, Profile.lowpass(60, 6, 2)),
        _fixed("lossless-q50", ProfileKind.LOSSLESS, Profile.lossless(50)),
        _fixed("lossless-q75", ProfileKind.LOSSLESS, Profile.lossless(75)),
        _fixed("lossless-q90", ProfileKind.LOSSLESS, Profile.lossless(90)),
        _fixed("paper-q50-gray-a8", ProfileKind.PAPER, Profile.paper(50, 8, layout=Layout.GRAY)),
    ]


@dataclass(frozen=True)
class Row:
    """One photograph at one rate point."""

    point: str
    image: str
    bpp: float
    classical_psnr: float
    enhanced_psnr: float
    classical_ssim: float
    enhanced_ssim: float


@dataclass(frozen=True)
class Summary:
    """The means of one rate point (or one kind) over the photographs."""

    name: str
    images: int
    bpp: float
    classical_psnr: float
    enhanced_psnr: float
    classical_ssim: float
    enhanced_ssim: float
    worse: int  # photographs whose enhanced PSNR is below classical

    @property
    def psnr_gain(self) -> float:
        return self.enhanced_psnr - self.classical_psnr

    @property
    def ssim_gain(self) -> float:
        return self.enhanced_ssim - self.classical_ssim


def summarise(name: str, rows: Sequence[Row]) -> Summary:
    def mean(values: list[float]) -> float:
        return float(np.mean(values))

    return Summary(
        name,
        len(rows),
        mean([r.bpp for r in rows]),
        mean([r.classical_psnr for r in rows]),
        mean([r.enhanced_psnr for r in rows]),
        mean([r.classical_ssim for r in rows]),
        mean([r.enhanced_ssim for r in rows]),
        sum(r.enhanced_psnr < r.classical_psnr for r in rows),
    )


def validation_images(folder: Path, holdout: int, size: int) -> list[tuple[str, Pixels]]:
    """The last ``holdout`` .png photographs by name (models.train's split), centre-cropped.

    Crops are ``size`` pixels a side on the 16-pixel coding grid, as train.py cuts its
    validation crops; ``size`` 0 keeps whole photographs.
    """
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if len(paths) <= holdout:
        raise SystemExit(f"need more than {holdout} .png images in {folder}")
    images = []
    for path in paths[-holdout:]:
        image = np.asarray(Image.open(path).convert("RGB"))
        h, w = image.shape[:2]
        if size:
            side = min(size, h, w) // 16 * 16
            top, left = (h - side) // 32 * 16, (w - side) // 32 * 16
            image = image[top : top + side, left : left + side]
        images.append((path.name, np.ascontiguousarray(image)))
    return images


def measure_one(stage: NetworkStage, name: str, region: Pixels, point: RatePoint) -> Row:
    payload = encode(region, point.profile(region))
    decoded = decode(payload)
    parameters = smoothing_for(decoded)
    classical = decoded.to_rgb() if parameters is None else recover(decoded, parameters)
    enhanced = stage.enhance(classical, decoded)
    target = target_pixels(region, decoded.layout)
    return Row(
        point.name,
        name,
        8 * len(payload) / (region.shape[0] * region.shape[1]),
        psnr(target, classical),
        psnr(target, enhanced),
        ssim(target, classical),
        ssim(target, enhanced),
    )


def auto_bands(qualities: Sequence[int]) -> list[tuple[int, int, int]]:
    """(quality, low, high): each measured quality stands for the qualities nearest to it."""
    ordered = sorted(qualities)
    bands = []
    for i, q in enumerate(ordered):
        low = 1 if i == 0 else (ordered[i - 1] + q) // 2 + 1
        high = 100 if i == len(ordered) - 1 else (q + ordered[i + 1]) // 2
        bands.append((q, low, high))
    return bands


def decide(
    rows: Sequence[Row],
    points: Sequence[RatePoint],
    *,
    model_version: str,
    min_gain: float,
    validation: str,
    trained_kinds: Collection[str] | None = None,
) -> Gate:
    """The gate: one rule per auto quality band and one per other kind (module docstring).

    ``trained_kinds`` (lower-case kind names; None: every kind) are the kinds the network saw
    in training; the others are off whatever their gain.
    """

    def trained(kind: str) -> bool:
        return trained_kinds is None or kind in trained_kinds

    rules: list[GateRule] = []
    by_point = {p.name: [r for r in rows if r.point == p.name] for p in points}
    auto = {p.quality: p.name for p in points if p.kind is ProfileKind.AUTO and p.quality}
    for quality, low, high in auto_bands(list(auto)):
        summary = summarise(auto[quality], by_point[auto[quality]])
        rules.append(
            GateRule(
                "auto",
                summary.psnr_gain > min_gain and trained("auto"),
                round(summary.psnr_gain, 6),
                round(summary.ssim_gain, 6),
                low,
                high,
                auto[quality],
                trained("auto"),
            )
        )
    for kind in ProfileKind:
        names = [p.name for p in points if p.kind is kind and kind is not ProfileKind.AUTO]
        if not names:
            continue
        name = kind.name.lower()
        summary = summarise(name, [r for n in names for r in by_point[n]])
        rules.append(
            GateRule(
                name,
                summary.psnr_gain > min_gain and trained(name),
                round(summary.psnr_gain, 6),
                round(summary.ssim_gain, 6),
                measured_at=", ".join(names),
                trained=trained(name),
            )
        )
    return Gate(model_version, tuple(rules), min_gain, validation)


def table(rows: Sequence[Row], points: Sequence[RatePoint], gate: Gate) -> str:
    """Markdown: per rate point the means, how many photographs got worse, the decision."""
    lines = [
        "| rate point | bpp | PSNR classical | enhanced | gain dB | SSIM classical | enhanced"
        " | gain | worse | network |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for point in points:
        s = summarise(point.name, [r for r in rows if r.point == point.name])
        rule = next(
            r for r in gate.rules if point.name in r.measured_at.split(", ")
        )  # every point feeds exactly one rule
        lines.append(
            f"| {s.name} | {s.bpp:.3f} | {s.classical_psnr:.3f} | {s.enhanced_psnr:.3f}"
            f" | {s.psnr_gain:+.4f} | {s.classical_ssim:.4f} | {s.enhanced_ssim:.4f}"
            f" | {s.ssim_gain:+.5f} | {s.worse}/{s.images} | {_decision(rule)} |"
        )
    lines += ["", "| rule | PSNR gain dB | SSIM gain | network |", "| --- | --- | --- | --- |"]
    for rule in gate.rules:
        ssim_gain = "" if rule.ssim_gain is None else f"{rule.ssim_gain:+.5f}"
        lines.append(
            f"| {rule.scope} | {rule.psnr_gain_db:+.4f} | {ssim_gain} | {_decision(rule)} |"
        )
    return "\n".join(lines)


def _decision(rule: GateRule) -> str:
    return "on" if rule.apply else "off" if rule.trained else "off (not trained on)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m models.gate", description=__doc__)
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="folder of .png images")
    parser.add_argument("--holdout", type=int, default=5, help="the last N images (train.py's)")
    parser.add_argument("--size", type=int, default=512, help="centre crop side; 0: whole")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument(
        "--min-gain", type=float, default=0.0, help="apply where the mean gain exceeds (dB)"
    )
    parser.add_argument(
        "--trained-kinds",
        default="model",
        help="comma-separated kinds the network was trained on (the others stay off);"
        " 'model': its metadata's (default); 'all'",
    )
    parser.add_argument(
        "--auto-qualities", default=",".join(map(str, AUTO_QUALITIES)), help="comma-separated"
    )
    parser.add_argument("--out", type=Path, default=None, help="default: the model's sidecar")
    parser.add_argument("--dry-run", action="store_true", help="print the table only")
    args = parser.parse_args(argv)
    kinds: frozenset[str] | None = None
    if args.trained_kinds not in ("all", "model"):
        kinds = frozenset(args.trained_kinds.split(","))
    unknown = (kinds or frozenset()) - {kind.name.lower() for kind in ProfileKind}
    if unknown:
        parser.error(f"unknown kinds in --trained-kinds: {', '.join(sorted(unknown))}")
    qualities = [int(q) for q in args.auto_qualities.split(",") if q]
    points = rate_points(qualities)
    stage = load_stage(args.model, threads=args.threads)
    if args.trained_kinds == "model":
        kinds = stage.trained_kinds
        if kinds is None:
            print(f"{args.model} does not say what it was trained on: every kind", file=sys.stderr)
    images = validation_images(args.data, args.holdout, args.size)
    started = time.monotonic()
    rows = []
    for point in points:
        rows += [measure_one(stage, name, region, point) for name, region in images]
        print(f"{point.name}: {time.monotonic() - started:.0f} s", file=sys.stderr)
    crop = f"{args.size}-pixel centre crops" if args.size else "whole photographs"
    names = [name for name, _ in images]
    validation = f"{len(images)} held-out training photographs ({names[0]}-{names[-1]}), {crop}"
    gate = decide(
        rows,
        points,
        model_version=stage.version,
        min_gain=args.min_gain,
        validation=validation,
        trained_kinds=kinds,
    )
    print(f"{stage.version} on {validation}; enhanced minus classical\n")
    print(table(rows, points, gate))
    if not args.dry_run:
        out = args.out or sidecar_path(args.model)
        out.write_text(gate.to_json(), encoding="utf-8")
        print(f"\nwrote {out} ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
