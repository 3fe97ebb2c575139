"""The one-pass offset gives exactly Dagster's windows, around weekends, holidays, early closes."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from dagster import PartitionKeyRange, TimeWindow

from trading_assets.partition_offsets import (
    offsetted_datetime,
    original,
    original_key_range,
    original_keys,
    original_range_subset,
)
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


def test_a_bounded_definition_lists_dagsters_keys_once() -> None:
    """Keys of a definition whose end has passed: Dagster's own listing, computed once."""
    bundled = market_minute_partitions("2026-03-12", "2026-04-01")
    first = bundled.get_partition_keys()
    assert first == list(original_keys(bundled))
    assert len(first) == 14 * 390 and first[0] == "2026-03-12-09:30"
    assert bundled.get_partition_keys() == first
    # Up to a time before the end, Dagster answers (fewer keys), nothing cached is reused.
    midway = dt.datetime(2026, 3, 13, 10, 0, tzinfo=NY)
    assert bundled.get_partition_keys(current_time=midway) == list(original_keys(bundled, midway))
    assert len(bundled.get_partition_keys(current_time=midway)) == 390 + 30


@pytest.fixture(scope="module")
def past_minutes():
    # Thanksgiving 2025 (closed) and the early close the day after, all in the past.
    return market_minute_partitions("2025-11-20", "2025-12-02")


@pytest.mark.parametrize(
    ("first", "last"),
    [
        ("2025-11-20-09:30", "2025-12-01-15:59"),  # the whole range, Thanksgiving inside
        ("2025-11-21-15:59", "2025-11-24-09:30"),  # over a weekend
        ("2025-11-28-12:55", "2025-12-01-09:31"),  # over the early close
        ("2025-11-24-10:00", "2025-11-24-10:00"),  # one minute
    ],
)
def test_a_range_subset_is_dagsters_key_by_key_subset(past_minutes, first: str, last: str) -> None:
    keys = PartitionKeyRange(first, last)
    fast = past_minutes.empty_subset().with_partition_key_range(past_minutes, keys)
    assert fast == original_range_subset(past_minutes.empty_subset(), past_minutes, keys)
    assert list(fast.get_partition_keys()) == past_minutes.get_partition_keys_in_range(keys)
    assert len(fast.included_time_windows) == 1


def test_a_range_reaching_into_the_future_is_left_to_dagster(minutes) -> None:
    keys = PartitionKeyRange("2026-11-30-09:30", "2026-11-30-09:40")  # future when written
    fast = minutes.empty_subset().with_partition_key_range(minutes, keys)
    assert fast == original_range_subset(minutes.empty_subset(), minutes, keys)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (dt.datetime(2025, 11, 20, 9, 30), dt.datetime(2025, 12, 1, 16, 0)),  # whole sessions
        (dt.datetime(2025, 11, 21, 10, 0), dt.datetime(2025, 11, 21, 10, 5)),  # five minutes
        (dt.datetime(2025, 11, 21, 12, 0), dt.datetime(2025, 11, 24, 9, 31)),  # over a weekend
        (dt.datetime(2025, 11, 26, 15, 0), dt.datetime(2025, 11, 28, 13, 0)),  # Thanksgiving
        (dt.datetime(2025, 11, 21, 18, 0), dt.datetime(2025, 11, 24, 9, 0)),  # starts closed
    ],
)
def test_a_windows_key_range_is_dagsters(past_minutes, start, end) -> None:
    window = TimeWindow(start.replace(tzinfo=NY), end.replace(tzinfo=NY))
    fast = past_minutes.get_partition_key_range_for_time_window(window)
    assert fast == original_key_range(past_minutes, window)
