"""A frame and the one place that turns image bytes into one."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

Table = tuple[int, ...]


class SourceError(RuntimeError):
    """A source cannot produce frames; ``source`` names it and the message says what to do."""

    def __init__(self, source: str, message: str) -> None:
        super().__init__(f"{source}: {message}")
        self.source = source


@dataclass(frozen=True)
class Frame:
    """One captured image and what the sender needs to know about it.

    ``image`` is RGB or L (gray). ``source_bytes`` is the size of the file or snapshot it was
    read from (0 when there was none), the baseline the status compares payload bytes with.
    ``jpeg_tables`` are the (luma, chroma) natural-order quantisation tables of a JPEG input.
    ``on_spooled`` runs once the frame's payload is durably in the spool (watch: move/delete).
    """

    image: Image.Image
    captured_at: datetime
    source: str
    source_bytes: int = 0
    jpeg_tables: tuple[Table, Table] | None = None
    on_spooled: Callable[[], None] | None = None


def _jpeg_tables(image: Image.Image) -> tuple[Table, Table] | None:
    # Pillow exposes the DQT tables already in natural (row-major) order.
    tables = getattr(image, "quantization", None)
    if image.format != "JPEG" or not tables or image.mode not in ("L", "RGB", "YCbCr"):
        return None
    ordered = [tuple(int(q) for q in tables[key]) for key in sorted(tables)]
    if any(len(t) != 64 for t in ordered):
        return None
    return ordered[0], ordered[1] if len(ordered) > 1 else ordered[0]


def _normalise(image: Image.Image) -> Image.Image:
    if image.mode in ("L", "RGB"):
        return image
    if image.mode in ("I;16", "I", "F", "1", "LA"):
        return image.convert("L")
    return image.convert("RGB")


def frame_from_bytes(
    data: bytes,
    source: str,
    captured_at: datetime | None = None,
    on_spooled: Callable[[], None] | None = None,
) -> Frame:
    """Decode image bytes in any format Pillow reads into a frame."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            tables = _jpeg_tables(opened)
            opened.load()
            image = _normalise(opened)
            if image is opened:
                image = opened.copy()
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise SourceError(source, f"not a readable image ({error})") from error
    return Frame(image, captured_at or datetime.now(UTC), source, len(data), tables, on_spooled)


def read_file(path: Path) -> tuple[bytes, datetime]:
    """A file's bytes and its modification time, which stands in for the capture time."""
    try:
        data = path.read_bytes()
        captured = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    except OSError as error:
        raise SourceError(f"file:{path}", f"cannot read ({error.strerror})") from error
    return data, captured


def frame_from_path(path: Path, on_spooled: Callable[[], None] | None = None) -> Frame:
    """A file's frame, captured at the file's modification time."""
    data, captured = read_file(path)
    return frame_from_bytes(data, f"file:{path}", captured, on_spooled)
