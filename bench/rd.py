"""Rate-distortion benchmark: DCTLink's profiles against what a Pi could send instead.

    python -m bench.rd [--data DIR] [--out DIR] [--limit N] [--threads N]
                       [--baseline NAME=MODEL.onnx ...] [--quick] [--codecs NAME,...]
                       [--qualities Q,...] [--points NAME,...] [--repeats N]

Writes ``rd.csv`` (one row per image and DCTLink rate point), ``codecs.csv`` (one row per
image, other codec and quality: bench.codecs), ``rd.md`` and ``rd.png``. Quality columns are
named ``<metric>_<stage>`` after the receiver's stages (docs/architecture.md section 5):
``received`` (the zero-filled reconstruction), ``classical`` and ``enhanced``
(cloud_receiver.recovery; ``enhanced`` stays blank while no trained model is installed). A
stage added to ``STAGES`` gets its columns everywhere; ``--baseline
dncnn=out/export/dncnn.onnx`` adds one for another network run on the same classical
reconstruction (the model card's DnCNN column).

``rd.md`` opens with BD-rates against libjpeg-turbo (bench.bdrate, 0.3-2 bpp, PSNR and SSIM)
for every DCTLink curve (the rate points sharing a name prefix, such as ``lowpass``) at every
stage and for every other codec, with each one's encode CPU time on a 768x512 image as a
multiple of libjpeg-turbo's at quality 75 (bench.cputime; ``--repeats`` interleaved rounds,
0 skips timing). A second table gives each stage after ``classical`` against ``classical``
on the same payloads: what the network stage alone is worth, as a BD-rate. The gray
``paper`` point is left out of the BD-rates: its anchor would be a
gray JPEG, and no other codec here codes gray. The per-rate-point table follows.

``--quick`` (a couple of minutes on two cores) keeps the first 4 images (unless ``--limit``),
sweeps each codec over 6 qualities instead of 12, keeps 9 rate points plus 4 ``auto`` ones
(dropping lowpass-q90-10-3, lossless-q30, the gray paper point and 5 of the 9 ``auto`` points)
and the coder 2 twins of the auto and lossless points it keeps, and times 3 rounds instead of 7.

Coder 2 (payload v2) codes the ``auto`` and ``lossless`` points a second time, as the curves
``auto+coder2`` and ``lossless+coder2``: the same coefficients, so the same quality, in its
own bytes. ``--codecs``, ``--qualities`` and ``--points`` (names or
prefixes) narrow a run further; the libjpeg-turbo anchor is always swept.
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.bdrate import points_by_image, summarise
from bench.codecs import (
    BASELINE,
    BY_NAME,
    CODEC_FIELDS,
    CODECS,
    QUICK_QUALITIES,
    TIMING_QUALITY,
    Codec,
    order,
    sweep,
)
from bench.cputime import interleaved_cpu, timing_image
from bench.jpeg import Pixels, decode_jpeg, equal_bytes_jpeg, pillow_jpeg, truncated_jpeg_bytes
from bench.report import BdRow, write_plot, write_summary
from cloud_receiver.recovery import Recovery, Stages
from cloud_receiver.recovery.network import ModelUnavailableError, load_stage
from shared.codec import Decoded, Layout, Profile, decode, encode
from shared.metrics import psnr, ssim

REPO = Path(__file__).resolve().parents[1]
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm"}

_recovery: Recovery | None = None
_last_run: tuple[Decoded, Stages] | None = None
#: ONNX Runtime threads for every network stage; set by ``--threads``.
_threads = 1


def recovered(decoded: Decoded) -> Stages:
    """The receiver's stages for ``decoded``, run once per payload whatever the stages asked."""
    global _recovery, _last_run  # noqa: PLW0603 - one model load for the whole benchmark
    if _last_run is None or _last_run[0] is not decoded:
        _recovery = _recovery or Recovery(threads=_threads)
        _last_run = (decoded, _recovery.run(decoded))
    return _last_run[1]


#: Reconstructions scored per payload, by receiver stage name; None leaves the columns blank.
STAGES: dict[str, Callable[[Decoded], Pixels | None]] = {
    "received": Decoded.to_rgb,
    "classical": lambda decoded: recovered(decoded).classical,
    "enhanced": lambda decoded: recovered(decoded).enhanced,
}

_LUMA_WEIGHTS = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass(frozen=True)
class Source:
    name: str
    pixels: Pixels
    jpeg_q90_bytes: int


@dataclass(frozen=True)
class RatePoint:
    name: str
    profile: Callable[[Source], Profile]
    #: The entropy coder (payload v1 or v2); coder 2 points code the same coefficients.
    coder: int = 1


def family(point: str) -> str:
    """The curve a rate point belongs to: its name up to the first '-' (``lowpass``)."""
    return point.partition("-")[0]


def _lowpass(luma_keep: int, chroma_keep: int) -> RatePoint:
    return RatePoint(
        f"lowpass-q90-{luma_keep}-{chroma_keep}",
        lambda _: Profile.lowpass(90, luma_keep, chroma_keep),
    )


def _lossless(quality: int) -> RatePoint:
    return RatePoint(f"lossless-q{quality}", lambda _: Profile.lossless(quality))


def _adaptive(percent: int) -> RatePoint:
    return RatePoint(
        f"adaptive-{percent}pct",
        lambda s: Profile.adaptive(max_bytes=max(64, round(s.jpeg_q90_bytes * percent / 100))),
    )


#: Profile.auto is being added to shared.codec separately: its points join once it exists.
_AUTO: Callable[..., Profile] | None = getattr(Profile, "auto", None)
AUTO_QUALITIES: tuple[int, ...] = (20, 30, 40, 50, 60, 75, 85, 90, 95)
QUICK_AUTO_QUALITIES: tuple[int, ...] = (30, 50, 75, 90)


def _auto(factory: Callable[..., Profile], quality: int) -> RatePoint:
    return RatePoint(f"auto-q{quality}", lambda _: factory(quality=quality))


#: Curves whose coefficients are coded by entropy coder 2 (payload v2) too, side by side with
#: coder 1's: the same rate points, named ``<curve>+coder2-...``.
CODER2_CURVES: tuple[str, ...] = ("auto", "lossless")


def with_coder2(point: RatePoint) -> RatePoint:
    curve, _, rest = point.name.partition("-")
    return replace(point, name=f"{curve}+coder2-{rest}", coder=2)


RATE_POINTS: tuple[RatePoint, ...] = (
    _lowpass(28, 10),
    _lowpass(15, 6),
    _lowpass(10, 3),
    _lowpass(6, 1),
    # q30 and q50 give the lossless curve a span of rates a BD-rate can be taken over.
    _lossless(30),
    _lossless(50),
    _lossless(75),
    _lossless(90),
    RatePoint("paper-q50-gray-a8", lambda _: Profile.paper(50, 8, layout=Layout.GRAY)),
    _adaptive(30),
    _adaptive(50),
    _adaptive(70),
    *(() if _AUTO is None else tuple(_auto(_AUTO, q) for q in AUTO_QUALITIES)),
)
RATE_POINTS += tuple(with_coder2(p) for p in RATE_POINTS if family(p.name) in CODER2_CURVES)

#: The ``--quick`` subset of :data:`RATE_POINTS`, by name.
QUICK_POINTS: tuple[str, ...] = (
    "lowpass-q90-28-10",
    "lowpass-q90-15-6",
    "lowpass-q90-6-1",
    "lossless-q50",
    "lossless-q75",
    "lossless-q90",
    "adaptive-30pct",
    "adaptive-50pct",
    "adaptive-70pct",
    *(f"auto-q{q}" for q in QUICK_AUTO_QUALITIES if _AUTO is not None),
)
QUICK_POINTS += tuple(
    with_coder2(p).name
    for p in RATE_POINTS
    if p.name in QUICK_POINTS and family(p.name) in CODER2_CURVES
)


def add_network_stage(name: str, model: Path) -> None:
    """Score another ONNX network (same contract) on the receiver's classical reconstruction."""
    stage = load_stage(model, threads=_threads)
    STAGES[name] = lambda decoded: stage.enhance(recovered(decoded).classical, decoded)


def fields() -> tuple[str, ...]:
    """The CSV columns for the stages now in :data:`STAGES`."""
    return (
        *_FIELDS_BEFORE,
        *(f"{m}_{s}" for s in STAGES for m in ("psnr", "ssim")),
        *_FIELDS_AFTER,
    )


_FIELDS_BEFORE: tuple[str, ...] = (
    "image",
    "rate_point",
    "coder",
    "profile",
    "layout",
    "quality",
    "luma_keep",
    "chroma_keep",
    "width",
    "height",
    "payload_bytes",
    "bpp",
    "jpeg_bytes",
    "ratio_to_jpeg",
    "truncated_jpeg_bytes",
    "ratio_to_truncated_jpeg",
)
_FIELDS_AFTER: tuple[str, ...] = (
    "equal_bytes_jpeg_quality",
    "equal_bytes_jpeg_bytes",
    "equal_bytes_jpeg_bpp",
    "equal_bytes_jpeg_psnr",
    "equal_bytes_jpeg_ssim",
)

Row = dict[str, str | int | float | None]


def codec_view(pixels: Pixels, layout: Layout) -> Pixels:
    """The image as the codec saw it: colour sources go gray as shared.codec.frontend does."""
    if layout is not Layout.GRAY or pixels.ndim == 2:
        return pixels
    gray = np.rint(pixels.astype(np.float32) @ _LUMA_WEIGHTS)
    return np.asarray(np.clip(gray, 0, 255), dtype=np.uint8)


def load(path: Path) -> Pixels:
    image = Image.open(path)
    return np.asarray(image.convert("L" if image.mode in ("L", "1", "I", "I;16") else "RGB"))


def measure(source: Source, point: RatePoint, workdir: Path) -> Row:
    """Encode one image at one rate point and score it and its JPEG baselines."""
    payload = encode(source.pixels, point.profile(source), coder=point.coder)
    decoded = decode(payload)
    reference = codec_view(source.pixels, decoded.layout)
    pixels = decoded.width * decoded.height
    row: Row = {
        "image": source.name,
        "rate_point": point.name,
        "coder": point.coder,
        "profile": decoded.profile.name.lower(),
        "layout": decoded.layout.name.lower(),
        "quality": decoded.quality,
        "luma_keep": decoded.retention[0].keep,
        "chroma_keep": decoded.retention[1].keep if len(decoded.retention) > 1 else None,
        "width": decoded.width,
        "height": decoded.height,
        "payload_bytes": len(payload),
        "bpp": 8 * len(payload) / pixels,
    }
    if decoded.quality is not None:
        jpeg = len(pillow_jpeg(reference, decoded.quality, layout=decoded.layout))
        row["jpeg_bytes"] = jpeg
        row["ratio_to_jpeg"] = len(payload) / jpeg
    truncated = truncated_jpeg_bytes(decoded, workdir)
    row["truncated_jpeg_bytes"] = truncated
    row["ratio_to_truncated_jpeg"] = len(payload) / truncated
    for stage, reconstruct in STAGES.items():
        image = reconstruct(decoded)
        if image is None:
            continue
        row[f"psnr_{stage}"] = psnr(reference, image)
        row[f"ssim_{stage}"] = ssim(reference, image)
    baseline = equal_bytes_jpeg(reference, len(payload))
    if baseline is not None:
        quality, data = baseline
        image = decode_jpeg(data)
        row["equal_bytes_jpeg_quality"] = quality
        row["equal_bytes_jpeg_bytes"] = len(data)
        row["equal_bytes_jpeg_bpp"] = 8 * len(data) / pixels
        row["equal_bytes_jpeg_psnr"] = psnr(reference, image)
        row["equal_bytes_jpeg_ssim"] = ssim(reference, image)
    return row


def _cell(value: str | int | float | None) -> str | int | float:
    if value is None:
        return ""
    return round(value, 6) if isinstance(value, float) else value


def images_in(folder: Path, limit: int | None) -> list[Path]:
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    return paths[:limit] if limit is not None else paths


def default_data() -> Path:
    kodak = REPO.parent / "shared" / "datasets" / "kodak"
    return kodak if kodak.is_dir() else REPO / "samples"


@dataclass(frozen=True)
class Plan:
    """What one run measures besides the images: see the module docstring for ``--quick``."""

    points: tuple[RatePoint, ...] = RATE_POINTS
    codecs: tuple[Codec, ...] = CODECS
    #: Every codec's qualities; None keeps each codec's own list.
    qualities: tuple[int, ...] | None = None
    #: Interleaved timing rounds; 0 leaves the encode-time column blank.
    repeats: int = 7


def _write(writer: csv.DictWriter[str], columns: Sequence[str], row: Row) -> None:
    writer.writerow({key: _cell(row.get(key)) for key in columns})


def encode_cpu(path: Path, plan: Plan) -> dict[str, float]:
    """Encode CPU per codec and rate point, as a multiple of the baseline JPEG at quality 75."""
    if plan.repeats <= 0:
        return {}
    pixels = timing_image(load(path))
    source = Source(path.name, pixels, len(pillow_jpeg(pixels, 90)))
    # The baseline codec is libjpeg-turbo at quality 75 with optimize=True: the reference.
    tasks: dict[str, Callable[[], object]] = {
        codec.name: partial(codec.encode, pixels, TIMING_QUALITY) for codec in plan.codecs
    }
    for point in plan.points:
        # The profile is built outside the timed call: the Pi builds it once, not per frame.
        tasks[point.name] = partial(encode, pixels, point.profile(source), coder=point.coder)
    seconds = interleaved_cpu(tasks, plan.repeats)
    reference = seconds[BASELINE]
    return {name: value / reference for name, value in seconds.items()}


def bd_rows(rows: Sequence[Row], codec_rows: Sequence[Row], cpu: dict[str, float]) -> list[BdRow]:
    """One BD-rate row per colour DCTLink curve and stage, then one per other codec."""
    anchor_rows = [r for r in codec_rows if r["codec"] == BASELINE]
    anchor = {m: points_by_image(anchor_rows, m) for m in ("psnr", "ssim")}
    table: list[BdRow] = []
    colour = [r for r in rows if r["layout"] != "gray"]
    for curve in dict.fromkeys(family(str(r["rate_point"])) for r in colour):
        group = [r for r in colour if family(str(r["rate_point"])) == curve]
        timed = [cpu[p] for p in dict.fromkeys(str(r["rate_point"]) for r in group) if p in cpu]
        for stage in STAGES:
            psnr_bd, ssim_bd = (
                summarise(anchor[m], points_by_image(group, f"{m}_{stage}")) for m in anchor
            )
            cost = sum(timed) / len(timed) if timed else None
            table.append(BdRow(f"DCTLink {curve} ({stage})", psnr_bd, ssim_bd, cost))
    for codec in dict.fromkeys(str(r["codec"]) for r in codec_rows):
        group = [r for r in codec_rows if r["codec"] == codec]
        psnr_bd, ssim_bd = (summarise(anchor[m], points_by_image(group, m)) for m in anchor)
        table.append(BdRow(BY_NAME[codec].label, psnr_bd, ssim_bd, cpu.get(codec)))
    return table


def stage_bd_rows(rows: Sequence[Row]) -> list[BdRow]:
    """Per colour curve, each stage after ``classical`` against ``classical`` itself."""
    later = [s for s in STAGES if s not in ("received", "classical")]
    table: list[BdRow] = []
    colour = [r for r in rows if r["layout"] != "gray"]
    for curve in dict.fromkeys(family(str(r["rate_point"])) for r in colour):
        group = [r for r in colour if family(str(r["rate_point"])) == curve]
        for stage in later:
            psnr_bd, ssim_bd = (
                summarise(
                    points_by_image(group, f"{m}_classical"), points_by_image(group, f"{m}_{stage}")
                )
                for m in ("psnr", "ssim")
            )
            table.append(
                BdRow(f"DCTLink {curve}: {stage} against classical", psnr_bd, ssim_bd, None)
            )
    return table


def run(paths: Sequence[Path], out: Path, plan: Plan | None = None) -> list[Row]:
    plan = plan or Plan()
    codecs = order(plan.codecs)
    sweeps = sum(len(plan.qualities if plan.qualities is not None else c.qualities) for c in codecs)
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    codec_rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="dctlink-rd-") as tmp,
        open(out / "rd.csv", "w", newline="") as handle,
        open(out / "codecs.csv", "w", newline="") as codec_handle,
        tqdm(total=len(paths) * (len(plan.points) + sweeps), unit="point", file=sys.stderr) as bar,
    ):
        columns = fields()
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        codec_writer = csv.DictWriter(codec_handle, fieldnames=CODEC_FIELDS)
        codec_writer.writeheader()
        for path in paths:
            pixels = load(path)
            source = Source(path.name, pixels, len(pillow_jpeg(pixels, 90)))
            for point in plan.points:
                bar.set_postfix_str(f"{path.name} {point.name}")
                row = measure(source, point, Path(tmp))
                _write(writer, columns, row)
                handle.flush()
                rows.append(row)
                bar.update()
            bar.set_postfix_str(f"{path.name} other codecs")
            swept = sweep(path.name, pixels, codecs, plan.qualities)
            for row in swept:
                _write(codec_writer, CODEC_FIELDS, row)
            codec_handle.flush()
            codec_rows += swept
            bar.update(len(swept))
    cpu = encode_cpu(paths[0], replace(plan, codecs=tuple(codecs)))
    names = [p.name for p in plan.points]
    table = bd_rows(rows, codec_rows, cpu)
    write_summary(
        rows, names, tuple(STAGES), out / "rd.md", bd=table, cpu=cpu, stages_bd=stage_bd_rows(rows)
    )
    write_plot(rows, tuple(STAGES), out / "rd.png", codec_rows=codec_rows)
    return rows


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _qualities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(q) for q in _names(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"want comma-separated integers, got {text!r}") from None
    if not values or not all(1 <= q <= 100 for q in values):
        raise argparse.ArgumentTypeError(f"want qualities in 1..100, got {text!r}")
    return values


def _plan(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """The run's plan from the flags; ``--quick`` picks the defaults the others then narrow."""
    points = [p for p in RATE_POINTS if p.name in QUICK_POINTS] if args.quick else RATE_POINTS
    if args.points is not None:
        wanted = set(_names(args.points))
        points = [p for p in points if p.name in wanted or family(p.name) in wanted]
        if not points:
            parser.error(f"--points {args.points!r} names no rate point")
    codecs = list(CODECS)
    if args.codecs is not None:
        unknown = set(_names(args.codecs)) - set(BY_NAME)
        if unknown:
            parser.error(f"--codecs: unknown {sorted(unknown)}; known: {', '.join(BY_NAME)}")
        codecs = [c for c in CODECS if c.name in _names(args.codecs) or c.name == BASELINE]
    qualities = args.qualities
    if qualities is None and args.quick:
        qualities = QUICK_QUALITIES
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 7)
    return Plan(tuple(points), tuple(codecs), qualities, repeats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.rd", description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(), help="folder of images")
    parser.add_argument("--out", type=Path, default=Path("out/rd"), help="output folder")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images")
    parser.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads")
    parser.add_argument(
        "--baseline",
        action="append",
        default=[],
        metavar="NAME=MODEL",
        help="also score the ONNX network MODEL as stage NAME (repeatable)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="4 images, fewer qualities and rate points"
    )
    parser.add_argument("--codecs", metavar="NAME,...", help="only these other codecs")
    parser.add_argument(
        "--qualities", type=_qualities, metavar="Q,...", help="every codec at these qualities"
    )
    parser.add_argument("--points", metavar="NAME,...", help="only these rate points or curves")
    parser.add_argument(
        "--repeats", type=int, default=None, help="encode timing rounds (0: no timing)"
    )
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
    plan = _plan(parser, args)
    global _threads  # noqa: PLW0603 - read by the stages when they load their models
    _threads = args.threads
    added: list[str] = []
    try:
        for baseline in args.baseline:
            name, _, model = baseline.partition("=")
            if not name or not model or name in STAGES:
                parser.error(f"--baseline {baseline!r}: want a new NAME=MODEL.onnx")
            try:
                add_network_stage(name, Path(model))
            except ModelUnavailableError as error:
                parser.error(f"--baseline {baseline!r}: {error.reason}")
            added.append(name)
        limit = args.limit if args.limit is not None or not args.quick else 4
        paths = images_in(args.data, limit)
        if not paths:
            parser.error(f"no images in {args.data}")
        run(paths, args.out, plan)
    finally:
        for name in added:  # the stages table is module state; leave it as it was
            del STAGES[name]
    written = ", ".join(str(args.out / f) for f in ("rd.csv", "codecs.csv", "rd.md", "rd.png"))
    print(f"wrote {written}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
