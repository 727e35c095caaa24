"""The live line the demo prints: images received and their bytes against JPEG, from /metrics.

The receiver counts payload and JPEG bytes by the ``basis`` of each image's ``jpeg_bytes``
(its metadata field ``jpeg_bytes_basis``), and only ``equal_quality`` (auto payloads, against
libjpeg's JPEG at the promised quality) is a saving at an equal picture; the line says
"smaller than the JPEG of equal quality" for those alone and names the basis of the rest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

IMAGES = "dctlink_images_received_total"
PAYLOAD_BYTES = "dctlink_payload_bytes_received_total"
JPEG_BYTES = "dctlink_equivalent_jpeg_bytes_total"
EQUAL_QUALITY = "equal_quality"
#: How the line names each basis but equal quality (an older receiver labels none: unknown).
BASIS_NAMES = {
    "same_quality_setting": "JPEG at the same quality setting",
    "assumed_quality_90": "JPEG at quality 90",
}
_BASIS = re.compile(r'\bbasis="([^"]*)"')


@dataclass(frozen=True)
class Bytes:
    payload: int = 0
    jpeg: int = 0


@dataclass(frozen=True)
class Totals:
    """Images received, and payload/JPEG bytes per basis of the JPEG size."""

    images: int
    by_basis: dict[str, Bytes] = field(default_factory=dict)

    @property
    def payload_bytes(self) -> int:
        return sum(b.payload for b in self.by_basis.values())


def parse_totals(metrics_text: str) -> Totals:
    """The receiver's counters from Prometheus text, summed per ``basis`` label."""
    images = 0.0
    sums: dict[str, list[float]] = {}
    for line in metrics_text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        series, _, value = line.rpartition(" ")
        name = series.split("{", 1)[0]
        if name == IMAGES:
            images += float(value)
        elif name in (PAYLOAD_BYTES, JPEG_BYTES):
            found = _BASIS.search(series)
            pair = sums.setdefault(found.group(1) if found else "unknown", [0.0, 0.0])
            pair[1 if name == JPEG_BYTES else 0] += float(value)
    return Totals(
        int(images), {basis: Bytes(int(p), int(j)) for basis, (p, j) in sorted(sums.items())}
    )


def _kb(count: int) -> str:
    return f"{count / 1000:.1f} kB"


def format_totals(elapsed_s: float, totals: Totals) -> str:
    line = f"[{elapsed_s:5.0f} s] {totals.images} images received"
    if not totals.images:
        return line
    line += f": {_kb(totals.payload_bytes)} of payloads"
    parts = []
    equal = totals.by_basis.get(EQUAL_QUALITY)
    if equal is not None and equal.payload and equal.jpeg:
        parts.append(
            f"{equal.jpeg / equal.payload:.1f}x smaller than the JPEG of equal quality"
            f" ({_kb(equal.payload)} vs {_kb(equal.jpeg)})"
        )
    for basis, sizes in totals.by_basis.items():
        if basis != EQUAL_QUALITY and sizes.jpeg:
            name = BASIS_NAMES.get(basis, f"JPEG of unknown basis {basis!r}")
            parts.append(
                f"{_kb(sizes.payload)} vs {_kb(sizes.jpeg)} as {name} (quality not matched)"
            )
    return ", ".join([line, *parts])
