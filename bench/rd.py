"""Rate-distortion benchmark: payload bytes and quality of every profile against JPEG.

    python -m bench.rd [--data DIR] [--out DIR] [--limit N] [--threads N]
                       [--baseline NAME=MODEL.onnx ...]

Writes ``rd.csv`` (one row per image and rate point), ``rd.md`` (means per rate point) and
``rd.png`` (PSNR against bits per pixel). Quality columns are named ``<metric>_<stage>`` after
the receiver's stages (DESIGN.md section 5): ``received`` (the zero-filled reconstruction),
``classical`` and ``enhanced`` (cloud_receiver.recovery; ``enhanced`` stays blank while no
trained model is installed). A stage added to ``STAGES`` gets its columns everywhere;
``--baseline dncnn=out/export/dncnn.onnx`` adds one for another network run on the same
classical reconstruction (the model card's DnCNN column).
"""

from __future__ import annotations

import argparse
import csv
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from bench.jpeg import Pixels, decode_jpeg, equal_bytes_jpeg, pillow_jpeg, truncated_jpeg_bytes
from bench.report import write_plot, write_summary
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


RATE_POINTS: tuple[RatePoint, ...] = (
    _lowpass(28, 10),
    _lowpass(15, 6),
    _lowpass(10, 3),
    _lowpass(6, 1),
    _lossless(75),
    _lossless(90),
    RatePoint("paper-q50-gray-a8", lambda _: Profile.paper(50, 8, layout=Layout.GRAY)),
    _adaptive(30),
    _adaptive(50),
    _adaptive(70),
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
    payload = encode(source.pixels, point.profile(source))
    decoded = decode(payload)
    reference = codec_view(source.pixels, decoded.layout)
    pixels = decoded.width * decoded.height
    row: Row = {
        "image": source.name,
        "rate_point": point.name,
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


def run(paths: Sequence[Path], out: Path, points: Sequence[RatePoint] = RATE_POINTS) -> list[Row]:
    out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    with (
        tempfile.TemporaryDirectory(prefix="dctlink-rd-") as tmp,
        open(out / "rd.csv", "w", newline="") as handle,
        tqdm(total=len(paths) * len(points), unit="point", file=sys.stderr) as progress,
    ):
        columns = fields()
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        for path in paths:
            pixels = load(path)
            source = Source(path.name, pixels, len(pillow_jpeg(pixels, 90)))
            for point in points:
                progress.set_postfix_str(f"{path.name} {point.name}")
                row = measure(source, point, Path(tmp))
                writer.writerow({key: _cell(row.get(key)) for key in columns})
                handle.flush()
                rows.append(row)
                progress.update()
    write_summary(rows, [p.name for p in points], tuple(STAGES), out / "rd.md")
    write_plot(rows, tuple(STAGES), out / "rd.png")
    return rows


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
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        parser.error(f"--data {args.data} is not a folder")
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
        paths = images_in(args.data, args.limit)
        if not paths:
            parser.error(f"no images in {args.data}")
        run(paths, args.out)
    finally:
        for name in added:  # the stages table is module state; leave it as it was
            del STAGES[name]
    print(f"wrote {args.out / 'rd.csv'}, {args.out / 'rd.md'}, {args.out / 'rd.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
