"""What the sender retains: the profiles of docs/architecture.md section 2."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt

from shared.codec.quantisation import standard_tables


class ProfileKind(IntEnum):
    LOWPASS = 0
    PAPER = 1
    ADAPTIVE = 2
    LOSSLESS = 3
    AUTO = 4


class Layout(IntEnum):
    """Colour layout of the coded planes."""

    GRAY = 0
    YCBCR420 = 1
    YCBCR444 = 2

    @property
    def channels(self) -> int:
        return 1 if self is Layout.GRAY else 3


class DcMode(IntEnum):
    """How a channel's DC coefficients travel.

    ``DROPPED`` is reserved: payload v1 refuses it on both sides (see :mod:`shared.codec.wire`)
    and no profile produces it.
    """

    ALL = 0
    DROPPED = 1  # reserved: never written, refused when read
    ANCHORS = 2


Table = tuple[int, ...]


@dataclass(frozen=True)
class Profile:
    """A retention profile; build one with the class methods, not the constructor.

    ``layout`` None follows the input: gray for HxW images, YCbCr 4:2:0 for colour ones.
    ``tables`` overrides the Annex K tables with (luma, chroma) 64-value natural-order tables.
    For ``auto``, ``quality`` is a promise rather than a table scale: the receiver's picture is
    at least as good as a libjpeg JPEG at that quality (see :mod:`shared.codec.auto`).
    """

    kind: ProfileKind
    quality: int = 90
    luma_keep: int = 64
    chroma_keep: int = 64
    anchor_every: int = 0
    max_bytes: int | None = None
    layout: Layout | None = None
    tables: tuple[Table, Table] | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.quality <= 100:
            raise ValueError(f"quality must be in 1..100, got {self.quality}")
        for name, keep in (("luma_keep", self.luma_keep), ("chroma_keep", self.chroma_keep)):
            if not 1 <= keep <= 64:
                raise ValueError(f"{name} must be in 1..64, got {keep}")
        if self.kind is ProfileKind.PAPER and not 1 <= self.anchor_every <= 255:
            raise ValueError(f"anchor_every must be in 1..255, got {self.anchor_every}")
        if self.kind is ProfileKind.ADAPTIVE and (self.max_bytes is None or self.max_bytes < 64):
            raise ValueError(f"adaptive needs max_bytes >= 64, got {self.max_bytes}")
        if self.tables is not None:
            for table in self.tables:
                if len(table) != 64 or not all(1 <= q <= 65535 for q in table):
                    raise ValueError("custom tables need 64 steps each in 1..65535")

    @classmethod
    def lowpass(
        cls,
        quality: int = 90,
        luma_keep: int = 15,
        chroma_keep: int = 6,
        *,
        layout: Layout | None = None,
        tables: tuple[Table, Table] | None = None,
    ) -> Profile:
        """The first ``luma_keep`` / ``chroma_keep`` zigzag coefficients of every block."""
        return cls(ProfileKind.LOWPASS, quality, luma_keep, chroma_keep, 0, None, layout, tables)

    @classmethod
    def paper(
        cls, quality: int = 50, anchor_every: int = 8, *, layout: Layout | None = None
    ) -> Profile:
        """Every AC coefficient; DC only in blocks on an ``anchor_every`` grid (Qiu et al.)."""
        return cls(ProfileKind.PAPER, quality, 64, 64, anchor_every, None, layout)

    @classmethod
    def adaptive(cls, max_bytes: int = 20000, *, layout: Layout | None = None) -> Profile:
        """Quality and keep counts chosen by the encoder so the payload fits ``max_bytes``."""
        return cls(ProfileKind.ADAPTIVE, 90, 64, 64, 0, max_bytes, layout)

    @classmethod
    def auto(cls, quality: int = 75, *, layout: Layout | None = None) -> Profile:
        """At least the quality of a libjpeg JPEG at ``quality``, as the receiver shows it, in
        the fewest bytes: tables, RD-optimised quantisation and retention chosen per image."""
        return cls(ProfileKind.AUTO, quality, 64, 64, 0, None, layout)

    @classmethod
    def lossless(
        cls,
        quality: int = 90,
        *,
        layout: Layout | None = None,
        tables: tuple[Table, Table] | None = None,
    ) -> Profile:
        """All quantised coefficients: no loss beyond JPEG's own quantisation."""
        return cls(ProfileKind.LOSSLESS, quality, 64, 64, 0, None, layout, tables)

    def quantisation_tables(self) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.uint16]]:
        """(luma, chroma) 8x8 natural-order tables this profile quantises with."""
        if self.tables is not None:
            luma, chroma = self.tables
            return (
                np.array(luma, dtype=np.uint16).reshape(8, 8),
                np.array(chroma, dtype=np.uint16).reshape(8, 8),
            )
        return standard_tables(self.quality)
