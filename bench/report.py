"""The rate-distortion summary table and plot, from the rows bench.rd measured."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

# Headless: benchmarks run on servers and in CI. Must precede the pyplot import.
matplotlib.use("Agg")
import matplotlib.pyplot as plt

Value = str | int | float | None
Row = Mapping[str, Value]

#: (rate point, column, what the ratio means) for the headline figures.
HEADLINES: tuple[tuple[str, str, str], ...] = (
    ("lossless-q75", "ratio_to_jpeg", "lossless q75 payload / Pillow JPEG q75 (optimize=True)"),
    ("lossless-q90", "ratio_to_jpeg", "lossless q90 payload / Pillow JPEG q90 (optimize=True)"),
    (
        "lowpass-q90-15-6",
        "ratio_to_truncated_jpeg",
        "lowpass q90 (15, 6) payload / JPEG of the same truncated coefficients "
        "(libjpeg, optimised Huffman)",
    ),
)


def mean(rows: Sequence[Row], column: str) -> float | None:
    """Arithmetic mean of a column over the rows that have it; None when none do."""
    values = [float(v) for r in rows if isinstance(v := r.get(column), int | float)]
    return sum(values) / len(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def summary_markdown(rows: Sequence[Row], points: Sequence[str], stages: Sequence[str]) -> str:
    images = len({r["image"] for r in rows})
    lines = [
        "# Rate-distortion summary",
        "",
        f"{images} images. Ratios and qualities are arithmetic means of per-image values.",
        "Quality is measured against the image the codec coded (the gray rate point against",
        "the source's luma, rounded).",
        "",
    ]
    for point, column, label in HEADLINES:
        value = mean([r for r in rows if r["rate_point"] == point], column)
        if value is not None:
            lines.append(f"- {label}: **{value:.3f}**")
    quality_headers = [f"{m} {s}" for s in stages for m in ("PSNR", "SSIM")]
    headers = [
        "rate point",
        "profile",
        "q",
        "payload B",
        "bpp",
        "/ JPEG same q",
        "/ truncated JPEG",
        *quality_headers,
        "eq-bytes JPEG q",
        "eq-bytes JPEG PSNR",
        "eq-bytes JPEG SSIM",
    ]
    lines += ["", "| " + " | ".join(headers) + " |", "|" + " --- |" * len(headers)]
    for point in points:
        group = [r for r in rows if r["rate_point"] == point]
        if not group:
            continue
        cells = [
            point,
            str(group[0]["profile"]),
            _fmt(mean(group, "quality"), 1),
            _fmt(mean(group, "payload_bytes"), 0),
            _fmt(mean(group, "bpp"), 3),
            _fmt(mean(group, "ratio_to_jpeg"), 3),
            _fmt(mean(group, "ratio_to_truncated_jpeg"), 3),
            *(
                _fmt(mean(group, f"{m}_{s}"), 2 if m == "psnr" else 4)
                for s in stages
                for m in ("psnr", "ssim")
            ),
            _fmt(mean(group, "equal_bytes_jpeg_quality"), 1),
            _fmt(mean(group, "equal_bytes_jpeg_psnr"), 2),
            _fmt(mean(group, "equal_bytes_jpeg_ssim"), 4),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    rows: Sequence[Row], points: Sequence[str], stages: Sequence[str], path: Path
) -> None:
    path.write_text(summary_markdown(rows, points, stages))


def _series(rows: Sequence[Row], x: str, y: str) -> tuple[list[float], list[float]]:
    """Mean (x, y) per rate point, sorted by x, so each profile draws as one curve."""
    points: list[tuple[float, float]] = []
    for point in dict.fromkeys(r["rate_point"] for r in rows):
        group = [r for r in rows if r["rate_point"] == point]
        mx, my = mean(group, x), mean(group, y)
        if mx is not None and my is not None:
            points.append((mx, my))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


def write_plot(rows: Sequence[Row], stages: Sequence[str], path: Path) -> None:
    """PSNR against bits per pixel: one curve per profile and stage, and the JPEG baseline."""
    figure, axes = plt.subplots(figsize=(8, 5.5))
    colour = [r for r in rows if r["layout"] != "gray"]
    gray = [r for r in rows if r["layout"] == "gray"]
    for profile in dict.fromkeys(str(r["profile"]) for r in colour):
        group = [r for r in colour if r["profile"] == profile]
        for stage in stages:
            xs, ys = _series(group, "bpp", f"psnr_{stage}")
            axes.plot(xs, ys, marker="o", label=f"{profile} ({stage})")
    xs, ys = _series(colour, "equal_bytes_jpeg_bpp", "equal_bytes_jpeg_psnr")
    axes.plot(xs, ys, marker="s", color="black", linestyle="--", label="JPEG (Pillow, equal bytes)")
    if gray:
        for stage in stages:
            xs, ys = _series(gray, "bpp", f"psnr_{stage}")
            axes.plot(xs, ys, marker="^", linestyle="none", label=f"paper, gray ({stage})")
        xs, ys = _series(gray, "equal_bytes_jpeg_bpp", "equal_bytes_jpeg_psnr")
        axes.plot(
            xs, ys, marker="s", color="grey", linestyle="none", label="JPEG gray, equal bytes"
        )
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR (dB)")
    axes.set_title("DCTLink rate-distortion (means over images)")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
