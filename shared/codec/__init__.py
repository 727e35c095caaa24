"""The DCTLink codec: JPEG front end, retention profiles and payloads v1 and v2.

Public API (stable; external tools call exactly this)::

    encode(image, profile, *, device_id="local", image_id=None, captured_at=None, coder=1)
        -> bytes
    decode(payload, *, limits=None, allow_partial=False) -> Decoded
    decode_header(payload) -> Header (checksum verified, bands not decoded)
    truncate(payload, bands) -> bytes
"""

from shared.codec.coefficients import CoefficientImage, Retention
from shared.codec.errors import PayloadError, PayloadErrorKind
from shared.codec.payload import Decoded, DecodeLimits, decode, decode_header, encode, truncate
from shared.codec.profiles import DcMode, Layout, Profile, ProfileKind

__all__ = [
    "CoefficientImage",
    "DcMode",
    "DecodeLimits",
    "Decoded",
    "Layout",
    "PayloadError",
    "PayloadErrorKind",
    "Profile",
    "ProfileKind",
    "Retention",
    "decode",
    "decode_header",
    "encode",
    "truncate",
]
