"""From a frame to a payload with the configured profile (pure: no I/O)."""

from __future__ import annotations

import uuid

from edge_sender.config import EncodeSettings
from edge_sender.sources import Frame
from shared.codec import Profile, encode
from shared.codec.image_id import new_image_id


def profile_for(settings: EncodeSettings, frame: Frame | None = None) -> Profile:
    """The profile to encode ``frame`` with.

    For a JPEG input the file's own quantisation tables replace the quality-scaled ones
    (lowpass and lossless), so the payload adds no second generation of quantisation loss.
    The coefficients are still re-derived from the decoded pixels (Pillow gives pixels, not
    coefficients), so they can differ from the file's by the rounding of its IDCT, not more.
    """
    tables = frame.jpeg_tables if frame is not None and settings.use_source_tables else None
    match settings.profile:
        case "lowpass":
            return Profile.lowpass(
                settings.quality, settings.luma_keep, settings.chroma_keep, tables=tables
            )
        case "paper":
            return Profile.paper(settings.quality, settings.anchor_every)
        case "adaptive":
            return Profile.adaptive(settings.max_bytes)
        case "lossless":
            return Profile.lossless(settings.quality, tables=tables)


def encode_frame(frame: Frame, settings: EncodeSettings, device_id: str) -> tuple[uuid.UUID, bytes]:
    """A fresh time-ordered image id and the payload that carries it."""
    image_id = new_image_id()
    payload = encode(
        frame.image,
        profile_for(settings, frame),
        device_id=device_id,
        image_id=image_id,
        captured_at=frame.captured_at,
    )
    return image_id, payload
