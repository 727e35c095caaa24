"""From a frame to a payload with the configured profile (pure: no I/O)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from edge_sender.config import EncodeSettings
from edge_sender.sources import Frame
from shared.codec import Profile, ProfileKind, decode_header, encode
from shared.codec.image_id import new_image_id


@dataclass(frozen=True)
class EncodedFrame:
    """One payload and what it is worth.

    ``reference_jpeg_bytes``: for ``auto`` payloads, the size of libjpeg's JPEG of the same
    image at the promised quality (the sender measured it while encoding; it travels in the
    payload's header). None for the other profiles, whose quality no JPEG is known to match.
    """

    image_id: uuid.UUID
    payload: bytes
    reference_jpeg_bytes: int | None


def profile_for(settings: EncodeSettings, frame: Frame | None = None) -> Profile:
    """The profile to encode ``frame`` with.

    For a JPEG input the file's own quantisation tables replace the quality-scaled ones
    (lowpass and lossless), so the payload adds no second generation of quantisation loss.
    The coefficients are still re-derived from the decoded pixels (Pillow gives pixels, not
    coefficients), so they differ from the file's wherever decoding rounded, clipped or
    upsampled chroma: on Kodak saved by Pillow, by up to 4 quantisation steps at quality 75
    and 11 at 90 (docs/reproducing-the-seeds.md, section 3), luma included.
    ``auto`` ignores them: its promise is about the picture, and it chooses its own tables.
    """
    tables = frame.jpeg_tables if frame is not None and settings.use_source_tables else None
    match settings.profile:
        case "auto":
            return Profile.auto(settings.quality)
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


def encode_frame(frame: Frame, settings: EncodeSettings, device_id: str) -> EncodedFrame:
    """A fresh time-ordered image id, the payload that carries it and its reference size."""
    image_id = new_image_id()
    profile = profile_for(settings, frame)
    payload = encode(
        frame.image,
        profile,
        device_id=device_id,
        image_id=image_id,
        captured_at=frame.captured_at,
        coder=settings.coder,
    )
    reference = None
    if profile.kind is ProfileKind.AUTO:
        # Read from the payload's header rather than measured again: encode already ran
        # libjpeg once, and the header is read without decoding a band.
        reference = decode_header(payload).reference_jpeg_bytes
    return EncodedFrame(image_id, payload, reference)
