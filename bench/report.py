"""The rate-distortion summary tables and plot, from the rows bench.rd measured."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

# Headless: benchmarks run on servers and in CI. Must precede the pyplot import.
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.bdrate import Summary, Window

Value = str | int | float | None
Row = Mapping[str, Value]


@dataclass(frozen=True)
class BdRow:
    """One line of the BD-rate table: a curve against the libjpeg-turbo anchor."""

    curve: str
    psnr: Summary
    ssim: Summary
    #: Encode CPU time as a multiple of libjpeg-turbo's at quality 75; None when not timed.
    encode_cpu: float | None


#: (rate point, column, what the ratio means) for the headline figures.
HEADLINES: tuple[tuple[str, str, str], ...] = (
    ("lossless-q75", "ratio_to_jpeg", "lossless q75 payload / Pillow JPEG q75 (optimize=True)"),
    ("lossless-q90", "ratio_to_jpeg", "lossless q90 payload / Pillow JPEG q90 (optimize=True)"),
    (
        "lossless+coder2-q75",
        "ratio_to_jpeg",
        "lossless q75 payload with coder 2 / Pillow JPEG q75 (optimize=True)",
    ),
    (
        "lossless+coder2-q90",
        "ratio_to_jpeg",
        "lossless q90 payload with coder 2 / Pillow JPEG q90 (optimize=True)",
    ),
    (
        "lowpass-q90-15-6",
        "ratio_to_truncated_jpeg",
        "lowpass q90 (15, 6) payload / JPEG of the same truncated coefficients "
        "(libjpeg, optimised Huffman)",
    ),
)


#: Rate points whose coder 2 twin (``<curve>+coder2-...``) gets a bytes ratio headline.
CODER2_HEADLINES: tuple[str, ...] = ("auto-q75", "lossless-q75", "lossless-q90")


def coder2_ratio(rows: Sequence[Row], point: str) -> float | None:
    """Mean per-image bytes of ``point`` coded by coder 2 over coder 1 (same coefficients)."""
    curve, _, rest = point.partition("-")
    one = {r["image"]: r["payload_bytes"] for r in rows if r["rate_point"] == point}
    two = {
        r["image"]: r["payload_bytes"] for r in rows if r["rate_point"] == f"{curve}+coder2-{rest}"
    }
    ratios = [float(two[i]) / float(one[i]) for i in one.keys() & two.keys()]  # type: ignore[arg-type]
    return sum(ratios) / len(ratios) if ratios else None


def mean(rows: Sequence[Row], column: str) -> float | None:
    """Arithmetic mean of a column over the rows that have it; None when none do."""
    values = [float(v) for r in rows if isinstance(v := r.get(column), int | float)]
    return sum(values) / len(values) if values else None


def _fmt(value: float | None, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:+.1f}%"


def _worst(summary: Summary) -> str:
    return "-" if summary.worst is None else f"{summary.worst:+.1f}% ({summary.worst_image})"


def bd_markdown(table: Sequence[BdRow], window: Window | None = None) -> list[str]:
    """The BD-rate table's lines: negative is fewer bytes than libjpeg-turbo at equal quality."""
    window = window or Window()
    lines = [
        "## BD-rate against libjpeg-turbo",
        "",
        f"Per image over {window.low:g}-{window.high:g} bpp (PCHIP of log-rate against quality,",
        "bench.bdrate), then the mean over images and the worst (largest) image. Negative means",
        "fewer bytes than libjpeg-turbo (Pillow, optimize=True, 4:2:0) at the same PSNR or SSIM.",
        "Skipped: images whose curve has under 2 points in the window or does not overlap the",
        "baseline's. Encode CPU: on a 768x512 image, as a multiple of libjpeg-turbo at q75",
        "(DCTLink curves: the mean over their rate points). The gray paper point is left out.",
        "",
        "| curve | BD-rate PSNR | worst PSNR | BD-rate SSIM | worst SSIM | skipped PSNR/SSIM "
        "| encode CPU x libjpeg-turbo |",
        "|" + " --- |" * 7,
    ]
    return [*lines, *_bd_cells(table), ""]


def _bd_cells(table: Sequence[BdRow]) -> list[str]:
    lines = []
    for row in table:
        cells = [
            row.curve,
            _percent(row.psnr.mean),
            _worst(row.psnr),
            _percent(row.ssim.mean),
            _worst(row.ssim),
            f"{row.psnr.skipped}/{row.ssim.skipped} of {row.psnr.images}",
            _fmt(row.encode_cpu, 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def stage_markdown(table: Sequence[BdRow], window: Window | None = None) -> list[str]:
    """BD-rates of the receiver's later stages against its classical stage, curve by curve:
    what the network stage alone saves at equal quality (the rates are the same payloads)."""
    window = window or Window()
    return [
        "## Later stages against classical recovery",
        "",
        f"The same payloads, scored after each stage: BD-rate per image over {window.low:g}-"
        f"{window.high:g} bpp against the classical stage's curve, then the mean and the worst.",
        "Negative means the stage reaches the same PSNR or SSIM as classical recovery in fewer",
        "bytes.",
        "",
        "| curve | BD-rate PSNR | worst PSNR | BD-rate SSIM | worst SSIM | skipped PSNR/SSIM "
        "| encode CPU x libjpeg-turbo |",
        "|" + " --- |" * 7,
        *_bd_cells(table),
        "",
    ]


def summary_markdown(
    rows: Sequence[Row],
    points: Sequence[str],
    stages: Sequence[str],
    *,
    bd: Sequence[BdRow] = (),
    cpu: Mapping[str, float] | None = None,
    stages_bd: Sequence[BdRow] = (),
) -> str:
    images = len({r["image"] for r in rows})
    cpu = cpu or {}
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
    for point in CODER2_HEADLINES:
        ratio = coder2_ratio(rows, point)
        if ratio is not None:
            name = point.replace("-q", " q")
            lines.append(
                f"- {name} payload, coder 2 / coder 1 (same coefficients): **{ratio:.3f}**"
            )
    if bd:
        lines += ["", *bd_markdown(bd)]
        if stages_bd:
            lines += stage_markdown(stages_bd)
        lines += ["## Per rate point"]
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
        "encode CPU x JPEG",
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
            _fmt(cpu.get(point), 2),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_summary(
    rows: Sequence[Row],
    points: Sequence[str],
    stages: Sequence[str],
    path: Path,
    *,
    bd: Sequence[BdRow] = (),
    cpu: Mapping[str, float] | None = None,
    stages_bd: Sequence[BdRow] = (),
) -> None:
    path.write_text(summary_markdown(rows, points, stages, bd=bd, cpu=cpu, stages_bd=stages_bd))


def _series(
    rows: Sequence[Row], x: str, y: str, key: str = "rate_point"
) -> tuple[list[float], list[float]]:
    """Mean (x, y) per rate point (or per ``key``), sorted by x, so each draws as one curve."""
    points: list[tuple[float, float]] = []
    for point in dict.fromkeys(r[key] for r in rows):
        group = [r for r in rows if r[key] == point]
        mx, my = mean(group, x), mean(group, y)
        if mx is not None and my is not None:
            points.append((mx, my))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


#: One line style per receiver stage, so a curve's colour names it and its style the stage.
_STAGE_STYLES = ("-", "--", ":", "-.")


def _family(point: Value) -> str:
    return str(point).partition("-")[0]


def _panel(
    axes: Axes,
    rows: Sequence[Row],
    codec_rows: Sequence[Row],
    stages: Sequence[str],
    metric: str,
) -> None:
    colour = [r for r in rows if r["layout"] != "gray"]
    gray = [r for r in rows if r["layout"] == "gray"]
    tab20 = plt.get_cmap("tab20")

    def palette(index: int) -> tuple[float, float, float, float]:
        # tab20's even entries first: its neighbours are pale twins, too alike for two curves.
        return tab20((2 * index) % 20 + (2 * index // 20) % 2)

    index = 0
    for curve in dict.fromkeys(_family(r["rate_point"]) for r in colour):
        group = [r for r in colour if _family(r["rate_point"]) == curve]
        for stage, style in zip(stages, _STAGE_STYLES * len(stages), strict=False):
            xs, ys = _series(group, "bpp", f"{metric}_{stage}")
            if xs:
                axes.plot(
                    xs,
                    ys,
                    style,
                    marker="o",
                    ms=3,
                    color=palette(index),
                    label=f"DCTLink {curve} ({stage})",
                )
        index += 1
    for codec in dict.fromkeys(str(r["codec"]) for r in codec_rows):
        group = [r for r in codec_rows if r["codec"] == codec]
        xs, ys = _series(group, "bpp", metric, key="quality")
        baseline = codec == "libjpeg-turbo"
        axes.plot(
            xs,
            ys,
            marker="s",
            ms=3,
            lw=2.5 if baseline else 1,
            color="black" if baseline else palette(index),
            label=codec,
        )
        index += 1
    for stage in stages if gray else ():
        xs, ys = _series(gray, "bpp", f"{metric}_{stage}")
        axes.plot(xs, ys, marker="^", linestyle="none", label=f"paper, gray ({stage})")
    axes.set_xlim(0, 2.5)
    axes.set_xlabel("bits per pixel")
    axes.set_ylabel("PSNR (dB)" if metric == "psnr" else "SSIM")
    axes.grid(alpha=0.3)


def write_plot(
    rows: Sequence[Row], stages: Sequence[str], path: Path, *, codec_rows: Sequence[Row] = ()
) -> None:
    """PSNR and SSIM against bits per pixel: every DCTLink curve and stage, every other codec."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(15, 6.5))
    _panel(left, rows, codec_rows, stages, "psnr")
    _panel(right, rows, codec_rows, stages, "ssim")
    figure.suptitle("DCTLink against other codecs (means over images per rate point / quality)")
    handles, labels = left.get_legend_handles_labels()
    figure.legend(handles, labels, loc="center right", fontsize="small")
    figure.tight_layout(rect=(0, 0, 0.8, 0.96))
    figure.savefig(path, dpi=120)
    plt.close(figure)
