"""Time-ordered image ids (UUID version 7 layout: 48-bit milliseconds, then randomness)."""

from __future__ import annotations

import os
import time
import uuid


def new_image_id() -> uuid.UUID:
    millis = time.time_ns() // 1_000_000
    value = (millis << 80) | int.from_bytes(os.urandom(10), "big")
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # RFC 4122 variant
    return uuid.UUID(int=value)
