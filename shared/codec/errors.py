"""The one exception type that decoding raises."""

from __future__ import annotations


class PayloadError(ValueError):
    """A payload is malformed, truncated, corrupted or exceeds a configured limit.

    ``reason`` says what is wrong in words a person can act on; ``offset`` is the byte
    offset in the payload where the problem was found, when one is known.
    """

    def __init__(self, reason: str, offset: int | None = None) -> None:
        self.reason = reason
        self.offset = offset
        where = f" (at byte {offset})" if offset is not None else ""
        super().__init__(f"{reason}{where}")
