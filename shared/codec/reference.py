"""The JPEG a payload is compared with: what libjpeg would have sent for the same image.

``auto(quality=q)`` promises the receiver's picture is at least as good as this JPEG at
``q``, so its size is the honest yardstick for the payload's: the sender measures it once
(one in-memory Pillow encode with optimised Huffman tables and 4:2:0 chroma, Pillow's
default) and carries it in the header, and the receiver shows "N x smaller than the JPEG
of equal quality" from it rather than from a guess.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image


def reference_jpeg_bytes(pixels: npt.NDArray[np.uint8], quality: int) -> int:
    """Bytes of libjpeg's JPEG of ``pixels`` (HxW or HxWx3 uint8) at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.tell()
