"""What a Raspberry Pi owner could send instead of a DCTLink payload: one table of image codecs.

Every codec turns RGB pixels and a quality (1..100, the codec's own scale) into bytes and back.
``BASELINE`` (libjpeg-turbo through Pillow, optimised Huffman tables, 4:2:0) is the anchor every
BD-rate and encode-time ratio is taken against. Encoders that can spawn threads are held to one,
so their CPU time is the cost on one core of the Pi and not thread start-up on a shared machine.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import lepton_jpeg_python  # type: ignore[import-untyped]  # ships no stubs or py.typed
import numpy as np
import pillow_jxl  # noqa: F401 - registers the JXL format with Pillow on import

# Its stub is a lone pyjpegli.pyi, which PEP 561 (so mypy) only reads from a package.
import pyjpegli  # type: ignore[import-not-found]
from PIL import Image

from bench.jpeg import Pixels, decode_jpeg, pillow_jpeg
from shared.metrics import psnr, ssim

#: Qualities every codec is swept over: about 8-10 points land in 0.2-2.5 bpp on Kodak for each.
QUALITIES: tuple[int, ...] = (5, 10, 20, 30, 40, 50, 60, 70, 80, 85, 90, 95)
#: The ``--quick`` sweep of every codec: enough points for a BD-rate curve, half the encodes.
QUICK_QUALITIES: tuple[int, ...] = (10, 30, 50, 70, 85, 95)
#: The quality the encode-time reference (and every codec's timed encode) runs at.
TIMING_QUALITY = 75


def _rgb(pixels: Pixels) -> Pixels:
    """Gray sources as three equal channels: not every encoder here takes one channel."""
    return pixels if pixels.ndim == 3 else np.repeat(pixels[:, :, None], 3, axis=2)


def _pillow(fmt: str, **options: Any) -> Callable[[Pixels, int], bytes]:
    def encode(pixels: Pixels, quality: int) -> bytes:
        buffer = io.BytesIO()
        Image.fromarray(_rgb(pixels)).save(buffer, format=fmt, quality=quality, **options)
        return buffer.getvalue()

    return encode


def _pillow_decode(data: bytes) -> Pixels:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def _baseline(pixels: Pixels, quality: int) -> bytes:
    return pillow_jpeg(_rgb(pixels), quality)


def _jpegli(pixels: Pixels, quality: int) -> bytes:
    rgb = np.ascontiguousarray(_rgb(pixels))
    data: bytes = pyjpegli.encode(rgb.tobytes(), rgb.shape[1], rgb.shape[0], quality)
    return data


def _jpegli_decode(data: bytes) -> Pixels:
    # jpegli's own decoder: the pairing its authors measure with (a little more precise).
    raw, width, height = pyjpegli.decode(data)
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 3)


def _lepton(pixels: Pixels, quality: int) -> bytes:
    # The Pi encodes the baseline JPEG first, then Lepton repacks it: both count as encode time.
    compressed: bytes = lepton_jpeg_python.compress_bytes(_baseline(pixels, quality))
    return compressed


def _lepton_decode(data: bytes) -> Pixels:
    jpeg: bytes = lepton_jpeg_python.decompress_bytes(data)
    return decode_jpeg(jpeg)


@dataclass(frozen=True)
class Codec:
    """One codec setting swept over ``qualities``; ``same_pixels_as`` names a lossless twin."""

    name: str
    label: str
    encode: Callable[[Pixels, int], bytes]
    decode: Callable[[bytes], Pixels]
    qualities: tuple[int, ...] = QUALITIES
    #: The codec whose decoded pixels this one must reproduce exactly (Lepton: the baseline).
    same_pixels_as: str | None = field(default=None)


BASELINE = "libjpeg-turbo"

CODECS: tuple[Codec, ...] = (
    Codec(BASELINE, "libjpeg-turbo (Pillow, optimize, 4:2:0)", _baseline, decode_jpeg),
    Codec("jpegli", "jpegli (pyjpegli defaults)", _jpegli, _jpegli_decode),
    Codec(
        "lepton",
        "Lepton of the baseline JPEG",
        _lepton,
        _lepton_decode,
        same_pixels_as=BASELINE,
    ),
    Codec("webp-m0", "WebP method 0", _pillow("WEBP", method=0), _pillow_decode),
    Codec("webp-m4", "WebP method 4", _pillow("WEBP", method=4), _pillow_decode),
    Codec("avif-s10", "AVIF speed 10", _pillow("AVIF", speed=10, max_threads=1), _pillow_decode),
    Codec(
        "avif-s6", "AVIF speed 6 (default)", _pillow("AVIF", speed=6, max_threads=1), _pillow_decode
    ),
    Codec("jxl-e3", "JPEG XL effort 3", _pillow("JXL", effort=3, num_threads=1), _pillow_decode),
    Codec("jxl-e7", "JPEG XL effort 7", _pillow("JXL", effort=7, num_threads=1), _pillow_decode),
)

BY_NAME: dict[str, Codec] = {codec.name: codec for codec in CODECS}

CODEC_FIELDS: tuple[str, ...] = (
    "image",
    "codec",
    "quality",
    "width",
    "height",
    "bytes",
    "bpp",
    "psnr",
    "ssim",
)

Row = dict[str, str | int | float | None]


class LosslessMismatchError(RuntimeError):
    """A codec that should reproduce another's pixels (Lepton) decoded something else."""

    def __init__(self, codec: str, quality: int) -> None:
        super().__init__(f"{codec} at quality {quality} did not decode to its twin's pixels")
        self.codec = codec
        self.quality = quality


def sweep(
    image: str, pixels: Pixels, codecs: Sequence[Codec], qualities: Sequence[int] | None
) -> list[Row]:
    """One row per codec and quality; ``qualities`` None takes each codec's own list.

    A codec with ``same_pixels_as`` is checked pixel for pixel against its twin and reuses the
    twin's scores, which it must equal anyway (SSIM is the slow part of the sweep).
    """
    reference = _rgb(pixels)
    height, width = reference.shape[:2]
    rows: list[Row] = []
    decoded: dict[tuple[str, int], tuple[Pixels, float, float]] = {}
    for codec in codecs:
        for quality in qualities if qualities is not None else codec.qualities:
            data = codec.encode(pixels, quality)
            image_out = codec.decode(data)
            twin = decoded.get((codec.same_pixels_as or "", quality))
            if codec.same_pixels_as is not None and twin is not None:
                if not np.array_equal(twin[0], image_out):
                    raise LosslessMismatchError(codec.name, quality)
                scores = twin[1:]
            else:
                scores = (psnr(reference, image_out), ssim(reference, image_out))
            decoded[(codec.name, quality)] = (image_out, *scores)
            rows.append(
                {
                    "image": image,
                    "codec": codec.name,
                    "quality": quality,
                    "width": width,
                    "height": height,
                    "bytes": len(data),
                    "bpp": 8 * len(data) / (width * height),
                    "psnr": scores[0],
                    "ssim": scores[1],
                }
            )
    return rows


def order(codecs: Sequence[Codec]) -> list[Codec]:
    """``codecs``, the anchor and each lossless twin's source, in :data:`CODECS` order.

    :data:`CODECS` lists every twin's source before the twin, so its pixels are there to check.
    """
    names = {BASELINE} | {c.name for c in codecs} | {c.same_pixels_as or "" for c in codecs}
    return [codec for codec in CODECS if codec.name in names]
