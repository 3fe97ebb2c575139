"""The minute partitions follow the NYSE calendar: sessions, holidays, early closes, 16:00."""

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pandas as pd
import pytest

from trading_assets.partitions import arrival_minutes, market_minute_partitions, session_minutes

NY = ZoneInfo("America/New_York")


def keys_by_day(start: str, end: str, now: dt.datetime) -> Counter[str]:
    keys = market_minute_partitions(start, end).get_partition_keys(current_time=now)
    return Counter(k[:10] for k in keys)


def test_a_full_session_has_390_readable_keys() -> None:
    partitions = market_minute_partitions("2026-03-23", "2026-03-24")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 3, 24, tzinfo=NY))
    assert len(keys) == 390
    assert keys[0] == "2026-03-23-09:30"
    assert keys[-1] == "2026-03-23-15:59"
    window = partitions.time_window_for_partition_key("2026-03-23-10:15")
    assert (window.start.hour, window.start.minute, window.end.minute) == (10, 15, 16)


def test_weekends_holidays_and_early_closes_come_from_the_exchange_calendar() -> None:
    # Thanksgiving 2026 (Thu 26 Nov) is closed; Friday 27 Nov closes at 13:00.
    counts = keys_by_day("2026-11-23", "2026-12-01", dt.datetime(2026, 12, 1, tzinfo=NY))
    assert counts["2026-11-25"] == 390
    assert "2026-11-26" not in counts
    assert counts["2026-11-27"] == 210
    assert "2026-11-28" not in counts and "2026-11-29" not in counts
    # Good Friday 2026 (3 April) is an NYSE holiday.
    counts = keys_by_day("2026-03-30", "2026-04-07", dt.datetime(2026, 4, 7, tzinfo=NY))
    assert "2026-04-03" not in counts
    assert counts["2026-04-02"] == counts["2026-04-06"] == 390


def test_early_close_ends_at_12_59() -> None:
    partitions = market_minute_partitions("2026-11-27", "2026-11-28")
    keys = partitions.get_partition_keys(current_time=dt.datetime(2026, 11, 28, tzinfo=NY))
    assert keys[-1] == "2026-11-27-12:59"


def test_the_1559_partition_exists_at_1600_the_same_day() -> None:
    partitions = market_minute_partitions("2026-03-23", None)
    at_close = partitions.get_partition_keys(
        current_time=dt.datetime(2026, 3, 23, 16, 0, tzinfo=NY)
    )
    assert at_close[-1] == "2026-03-23-15:59"
    before = partitions.get_partition_keys(
        current_time=dt.datetime(2026, 3, 23, 15, 59, 30, tzinfo=NY)
    )
    assert before[-1] == "2026-03-23-15:58"  # a minute exists once its bar has closed


def test_start_and_end_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_PARTITIONS_START", "2026-03-16")
    monkeypatch.setenv("TRADING_PARTITIONS_END", "2026-03-18")
    keys = market_minute_partitions().get_partition_keys()
    assert keys[0] == "2026-03-16-09:30"
    assert keys[-1] == "2026-03-17-15:59"
    assert len(keys) == 780


def test_default_partitions_cover_the_bundled_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TRADING_PARTITIONS_START", "TRADING_PARTITIONS_END", "TRADING_BARS_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    keys = market_minute_partitions().get_partition_keys()
    days = Counter(k[:10] for k in keys)
    assert min(days) == "2026-03-12"
    assert set(days.values()) == {390}
    assert "2026-03-27" in days  # the last bundled session of the single stocks


def test_session_minutes_and_the_partition_keys_agree() -> None:
    grid = session_minutes("2026-03-12", "2026-03-27")
    keys = market_minute_partitions("2026-03-12", "2026-03-28").get_partition_keys()
    assert [m.strftime("%Y-%m-%d-%H:%M") for m in grid] == keys


def test_news_arrives_in_the_partition_where_it_became_known() -> None:
    grid = session_minutes("2026-03-19", "2026-03-24")
    published = pd.Series(
        pd.to_datetime(
            [
                "2026-03-20 13:30:20Z",  # 09:30:20 NY -> 09:30
                "2026-03-20 19:59:59Z",  # 15:59:59 NY -> 15:59
                "2026-03-20 20:00:00Z",  # 16:00 Friday -> Monday 09:30
                "2026-03-21 12:00:00Z",  # Saturday -> Monday 09:30
                "2026-03-23 11:00:00Z",  # Monday premarket -> Monday 09:30
            ]
        )
    )
    got = arrival_minutes(published, grid).dt.strftime("%Y-%m-%d %H:%M").tolist()
    assert got == [
        "2026-03-20 09:30",
        "2026-03-20 15:59",
        "2026-03-23 09:30",
        "2026-03-23 09:30",
        "2026-03-23 09:30",
    ]
