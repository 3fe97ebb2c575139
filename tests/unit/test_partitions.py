"""The minute partitions follow the NYSE calendar: sessions, holidays, early closes; a run is
one stretch of minutes; a minute is computed only once its bar has closed."""

import datetime as dt
from collections import Counter
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from dagster import Failure

from trading_assets.assets.minutes import refuse_unclosed
from trading_assets.partitions import (
    MinuteSpan,
    NotAMinuteSpan,
    arrival_minutes,
    key_minutes,
    market_minute_partitions,
    minutes_back,
    session_minutes,
    session_minutes_of,
)

NY = ZoneInfo("America/New_York")


def keys_by_day(start: str, end: str) -> Counter[str]:
    keys = market_minute_partitions(start, end).get_partition_keys()
    return Counter(k[:10] for k in keys)


def test_a_full_session_has_390_readable_keys() -> None:
    keys = market_minute_partitions("2026-03-23", "2026-03-24").get_partition_keys()
    assert len(keys) == 390
    assert keys[0] == "2026-03-23|09:30"
    assert keys[-1] == "2026-03-23|15:59"
    assert key_minutes([keys[45]])[0] == pd.Timestamp("2026-03-23 10:15")


def test_weekends_and_holidays_come_from_the_exchange_calendar() -> None:
    # Thanksgiving 2026 (Thu 26 Nov) is closed; weekends are never partitions.
    counts = keys_by_day("2026-11-23", "2026-12-01")
    assert counts["2026-11-25"] == 390
    assert "2026-11-26" not in counts
    assert "2026-11-28" not in counts and "2026-11-29" not in counts
    # Good Friday 2026 (3 April) is an NYSE holiday.
    counts = keys_by_day("2026-03-30", "2026-04-07")
    assert "2026-04-03" not in counts
    assert counts["2026-04-02"] == counts["2026-04-06"] == 390


def test_an_early_close_has_210_session_minutes_and_the_rest_compute_nothing() -> None:
    # Friday 27 Nov 2026 closes at 13:00: its labels after 12:59 are partitions (the minute
    # dimension is the same every day) but not session minutes.
    keys = market_minute_partitions("2026-11-27", "2026-11-28").get_partition_keys()
    minutes = session_minutes_of(key_minutes(keys))
    assert len(keys) == 390 and len(minutes) == 210
    assert minutes[-1] == pd.Timestamp("2026-11-27 12:59")
    span = MinuteSpan.of_keys("2026-11-27|09:30", "2026-11-27|15:59")
    assert span.minutes.equals(minutes)
    assert MinuteSpan.of_keys("2026-11-27|13:00", "2026-11-27|15:59").minutes.empty


def test_a_year_of_partitions_stays_cheap_to_define() -> None:
    year = market_minute_partitions("2025-01-01", "2026-01-01")
    assert year.get_num_partitions() == 250 * 390  # 2025 has 250 NYSE sessions
    assert year.has_partition_key("2025-07-03|15:59")  # an early close: a label all the same
    assert not year.has_partition_key("2025-07-04|10:00")  # Independence Day
    assert not year.has_partition_key("2025-07-05|10:00")  # a Saturday


def test_live_partitions_include_today_and_holidays_ahead() -> None:
    live = market_minute_partitions("2026-03-23", None)
    today = dt.datetime.now(NY).date()
    keys = live.get_partition_keys()
    sessions = session_minutes_of(key_minutes(keys))
    assert sessions[-1].date() <= today
    if pd.Timestamp(today).dayofweek < 5 and keys[-1][:10] == today.isoformat():
        assert keys[-1] == f"{today.isoformat()}|15:59"  # the whole day, from midnight


def test_a_minute_is_computed_only_once_its_bar_has_closed() -> None:
    minutes = pd.DatetimeIndex(["2026-03-23 15:58", "2026-03-23 15:59"])
    refuse_unclosed(minutes, pd.Timestamp("2026-03-23 16:00"))  # the bell: 15:59 has closed
    with pytest.raises(Failure, match="has not closed yet"):
        refuse_unclosed(minutes, pd.Timestamp("2026-03-23 15:59:30"))


def test_a_run_covers_one_session_or_whole_sessions() -> None:
    span = MinuteSpan.of_keys("2026-03-12|09:30", "2026-03-27|15:59")
    assert len(span.minutes) == 12 * 390
    assert span.end == pd.Timestamp("2026-03-27 16:00")
    assert len(MinuteSpan.of_keys("2026-03-23|10:00", "2026-03-23|10:29").minutes) == 30
    with pytest.raises(NotAMinuteSpan, match="one stretch of minutes"):
        MinuteSpan.of_keys("2026-03-20|15:00", "2026-03-23|10:00")  # a rectangle, not a stretch
    assert MinuteSpan.of_tags({"dagster/partition": "2026-03-23|10:00"}) == MinuteSpan(
        pd.Timestamp("2026-03-23 10:00"), pd.Timestamp("2026-03-23 10:00")
    )
    assert MinuteSpan.of_tags({}) is None


def test_any_stretch_of_minutes_splits_into_runs() -> None:
    spans = MinuteSpan.covering(pd.Timestamp("2026-03-19 15:00"), pd.Timestamp("2026-03-24 10:00"))
    assert [(s.first, s.last) for s in spans] == [
        (pd.Timestamp("2026-03-19 15:00"), pd.Timestamp("2026-03-19 15:59")),
        (pd.Timestamp("2026-03-20 09:30"), pd.Timestamp("2026-03-23 15:59")),
        (pd.Timestamp("2026-03-24 09:30"), pd.Timestamp("2026-03-24 10:00")),
    ]
    every = pd.DatetimeIndex([]).append([s.minutes for s in spans])
    grid = session_minutes("2026-03-19", "2026-03-24")
    assert every.equals(grid[(grid >= "2026-03-19 15:00") & (grid <= "2026-03-24 10:00")])


def test_history_counts_session_minutes_across_nights_and_weekends() -> None:
    # The 200th bar before Monday's open is Friday's 12:40 (15:59 is the 1st): no weekend.
    assert minutes_back(pd.Timestamp("2026-03-23 09:30"), 200) == pd.Timestamp("2026-03-20 12:40")
    assert minutes_back(pd.Timestamp("2026-03-23 10:00"), 30) == pd.Timestamp("2026-03-23 09:30")


def test_start_and_end_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_PARTITIONS_START", "2026-03-16")
    monkeypatch.setenv("TRADING_PARTITIONS_END", "2026-03-18")
    keys = market_minute_partitions().get_partition_keys()
    assert keys[0] == "2026-03-16|09:30"
    assert keys[-1] == "2026-03-17|15:59"
    assert len(keys) == 780


def test_default_partitions_end_with_the_last_complete_bundled_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for var in ("TRADING_PARTITIONS_START", "TRADING_PARTITIONS_END", "TRADING_BARS_PROVIDER"):
        monkeypatch.delenv(var, raising=False)
    days = Counter(k[:10] for k in market_minute_partitions().get_partition_keys())
    assert min(days) == "2026-03-12" and max(days) == "2026-03-27"
    assert len(days) == 12 and set(days.values()) == {390}


def test_session_minutes_and_the_partition_keys_agree() -> None:
    grid = session_minutes("2026-03-12", "2026-03-27")
    keys = market_minute_partitions("2026-03-12", "2026-03-28").get_partition_keys()
    assert [m.strftime("%Y-%m-%d|%H:%M") for m in grid] == keys


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
