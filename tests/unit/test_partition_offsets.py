"""The one-pass offset gives exactly Dagster's windows, around weekends, holidays, early closes."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from trading_assets.partition_offsets import offsetted_datetime, original
from trading_assets.partitions import market_minute_partitions

NY = ZoneInfo("America/New_York")


@pytest.fixture(scope="module")
def minutes():
    # Thanksgiving 2026 (closed) and the early close the day after are inside this range.
    return market_minute_partitions("2026-11-20", "2026-12-02")


@pytest.mark.parametrize(
    ("start", "offset"),
    [
        (dt.datetime(2026, 11, 23, 9, 30, tzinfo=NY), -1),  # Monday open -> Friday 15:59
        (dt.datetime(2026, 11, 23, 9, 45, tzinfo=NY), -200),  # back over a weekend
        (dt.datetime(2026, 11, 30, 10, 0, tzinfo=NY), -390),  # over the early close
        (dt.datetime(2026, 11, 27, 9, 30, tzinfo=NY), -30),  # over Thanksgiving
        (dt.datetime(2026, 11, 27, 13, 0, tzinfo=NY), -7),  # the early close's end
        (dt.datetime(2026, 11, 24, 12, 0, tzinfo=NY), -1),
    ],
)
def test_the_fast_offset_equals_dagsters_loop(minutes, start: dt.datetime, offset: int) -> None:
    assert offsetted_datetime(minutes, start, offset) == original(minutes, start, offset)
