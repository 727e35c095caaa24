"""The live line the demo prints: images received and their bytes against JPEG, from /metrics."""

from __future__ import annotations

from dataclasses import dataclass

IMAGES = "dctlink_images_received_total"
PAYLOAD_BYTES = "dctlink_payload_bytes_received_total"
JPEG_BYTES = "dctlink_equivalent_jpeg_bytes_total"


@dataclass(frozen=True)
class Totals:
    images: int
    payload_bytes: int
    jpeg_bytes: int


def parse_totals(metrics_text: str) -> Totals:
    """The receiver's counters from Prometheus text (labelled series are summed)."""
    sums = {IMAGES: 0.0, PAYLOAD_BYTES: 0.0, JPEG_BYTES: 0.0}
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, value = line.rpartition(" ")
        name = name.split("{", 1)[0]
        if name in sums:
            sums[name] += float(value)
    return Totals(int(sums[IMAGES]), int(sums[PAYLOAD_BYTES]), int(sums[JPEG_BYTES]))


def _kb(count: int) -> str:
    return f"{count / 1000:.1f} kB"


def format_totals(elapsed_s: float, totals: Totals) -> str:
    line = f"[{elapsed_s:5.0f} s] {totals.images} images received"
    if totals.images:
        line += f": {_kb(totals.payload_bytes)} of payloads"
        if totals.jpeg_bytes:
            share = totals.payload_bytes / totals.jpeg_bytes
            line += f" vs {_kb(totals.jpeg_bytes)} as JPEG ({share:.0%} of the JPEG bytes)"
    return line
