"""The one exception type that decoding raises, and the kinds it comes in."""

from __future__ import annotations

from enum import StrEnum


class PayloadErrorKind(StrEnum):
    """What class of fault a :class:`PayloadError` is; the value is its metrics label.

    The values are the ``reason`` labels of ``dctlink_malformed_payloads_total``: changing one
    changes a metric that dashboards and alerts select on.
    """

    BAD_MAGIC = "not_dctlink"  # not a DCTLink payload at all
    BAD_VERSION = "version"  # a payload version this build does not read
    CRC = "checksum"  # the CRC-32 trailer does not match
    LIMIT = "limit"  # the payload or what it claims exceeds a configured bound
    TRUNCATED = "truncated"  # the bytes end inside a field or segment
    INVALID = "invalid"  # a header field or the body holds an impossible value (corrupt)


class PayloadError(ValueError):
    """A payload is malformed, truncated, corrupted or exceeds a configured limit.

    ``kind`` classifies the fault (metrics and quarantine use it, never the text); ``reason``
    says what is wrong in words a person can act on; ``offset`` is the byte offset in the
    payload where the problem was found, when one is known.
    """

    def __init__(self, kind: PayloadErrorKind, reason: str, offset: int | None = None) -> None:
        self.kind = PayloadErrorKind(kind)
        self.reason = reason
        self.offset = offset
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"{reason}{where}")
