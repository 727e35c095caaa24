"""Integer microseconds to and from datetimes, exactly, in both directions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from shared.timestamps import from_micros, to_micros

MOMENTS = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)


@given(MOMENTS)
def test_round_trip_is_exact(moment: datetime) -> None:
    assert from_micros(to_micros(moment)) == moment


def test_an_offset_counts_and_a_naive_datetime_is_utc() -> None:
    east = datetime(2026, 12, 2, 23, 0, tzinfo=timezone(timedelta(hours=1)))
    assert to_micros(east) == to_micros(datetime(2026, 12, 2, 22, 0, tzinfo=UTC))
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1)) == 1_000_000


def test_where_a_float_timestamp_is_one_microsecond_off() -> None:
    moment = datetime.fromtimestamp(1_086_812_194, UTC).replace(microsecond=501_340)
    assert to_micros(moment) == 1_086_812_194_501_340
    assert int(moment.timestamp() * 1_000_000) == 1_086_812_194_501_339
