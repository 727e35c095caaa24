"""Datetimes to and from integer microseconds since the Unix epoch, exactly.

The payload header, the sender's spool and the receiver's store all keep times as integer
microseconds. ``datetime.timestamp()`` goes through a float, which is 1 µs off for about one
time in a hundred; these two functions use integer arithmetic only. A naive datetime is read
as UTC (callers that must refuse one check before they call).
"""

from __future__ import annotations

from datetime import UTC, datetime

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch: exact, sortable, the same on every platform."""
    delta = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    """The UTC datetime ``micros`` microseconds after the epoch (OverflowError out of range)."""
    seconds, rest = divmod(micros, 1_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest)
