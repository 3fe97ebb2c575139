"""NYSE regular-session minute partitions, from the exchange calendar (never a hand-written list).

One partition per bar start, 09:30-15:59 America/New_York, 390 on a full day, fewer on an early
close, none on a holiday. Keys read like ``2026-03-12-09:30``.

How the cron works: ``* 9-16 * * 1-5`` ticks every weekday minute 09:00-16:59; the cron exclusions
drop 09:00-09:29 and 16:00-16:59, and datetime exclusions drop every minute of a holiday and the
minutes after an early close. A window ends at the *next cron tick*, excluded or not, so the 15:59
window ends at 16:00 the same day (with ``* 9-15`` it would end at 09:00 the next morning and the
last bar of the day would only be materializable overnight).
"""

from __future__ import annotations

import datetime as dt
import functools
import os

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from dagster import TimeWindowPartitionsDefinition

from trading_assets import partition_offsets
from trading_assets.schemas import MARKET_TZ, to_market_naive

partition_offsets.install()  # history mappings of hundreds of minutes, in one pass

PARTITION_FMT = "%Y-%m-%d-%H:%M"
SESSION_CRON = "* 9-16 * * 1-5"
CRON_EXCLUSIONS = ("0-29 9 * * 1-5", "* 16 * * 1-5")
DEFAULT_START = "2026-03-12"  # first session of the bundled replay data
DEFAULT_REPLAY_END = "2026-04-01"  # day after the bundled data's last session
LIVE_HORIZON_DAYS = 35
FULL_SESSION_MINUTES = 390


@functools.lru_cache(maxsize=8)
def nyse_calendar(first_day: str, last_day: str) -> xcals.ExchangeCalendar:
    """XNYS sessions covering [first_day, last_day] with a week's margin either side, so a
    one-day range and look-ups of the neighbouring sessions work (cached: ~100 ms to build)."""
    margin = pd.Timedelta(days=7)
    return xcals.get_calendar(
        "XNYS",
        start=(pd.Timestamp(first_day) - margin).strftime("%Y-%m-%d"),
        end=(pd.Timestamp(last_day) + margin).strftime("%Y-%m-%d"),
    )


def _calendar_horizon(end: str | None) -> str:
    """The last day whose holidays are excluded: the partitions' end, or 35 days from now.

    Why not years ahead: Dagster stores holidays as one exclusion per minute (cron cannot name
    a year) and serializes the whole list into every planned check event, once per partition
    of a run; each holiday in range costs ~390 entries there. New partitions only appear as
    time passes, so a code location reloaded at least monthly (every deploy does) is exact.
    """
    if end:
        return end
    return (dt.date.today() + dt.timedelta(days=LIVE_HORIZON_DAYS)).isoformat()


def _default_end() -> str | None:
    """Replay covers the bundled sessions unless told otherwise; live is open-ended."""
    explicit = os.environ.get("TRADING_PARTITIONS_END")
    if explicit:
        return explicit
    replaying = os.environ.get("TRADING_BARS_PROVIDER", "replay") == "replay"
    custom_start = os.environ.get("TRADING_PARTITIONS_START")
    return DEFAULT_REPLAY_END if replaying and not custom_start else None


def excluded_minutes(first_day: str, last_day: str) -> list[dt.datetime]:
    """Naive NY bar starts inside 09:30-15:59 of weekdays that are not session minutes."""
    cal = nyse_calendar(first_day, last_day)
    weekdays = pd.bdate_range(first_day, last_day)
    sessions = cal.sessions_in_range(first_day, last_day)
    out: list[dt.datetime] = []
    for day in weekdays:
        full_day = pd.date_range(
            day + pd.Timedelta(hours=9, minutes=30), periods=FULL_SESSION_MINUTES, freq="min"
        )
        if day not in sessions:
            out.extend(full_day.to_pydatetime())
            continue
        close = cal.session_close(day).tz_convert(MARKET_TZ).tz_localize(None)
        out.extend(full_day[full_day >= close].to_pydatetime())
    return out


def market_minute_partitions(
    start: str | None = None, end: str | None = None
) -> TimeWindowPartitionsDefinition:
    """The minute partitions from `start` (a date; default TRADING_PARTITIONS_START or the first
    bundled session) to `end` (exclusive date; default TRADING_PARTITIONS_END; with the replay
    provider and no explicit start, the bundled sessions; otherwise open-ended, up to now)."""
    start = start or os.environ.get("TRADING_PARTITIONS_START") or DEFAULT_START
    end = end or _default_end()
    first_day = pd.Timestamp(start).strftime("%Y-%m-%d")
    horizon = _calendar_horizon(end)
    return TimeWindowPartitionsDefinition(
        cron_schedule=SESSION_CRON,
        start=dt.datetime.combine(pd.Timestamp(start).date(), dt.time(9, 30)),
        end=dt.datetime.combine(pd.Timestamp(end).date(), dt.time(0, 0)) if end else None,
        timezone=MARKET_TZ,
        fmt=PARTITION_FMT,
        exclusions=[*CRON_EXCLUSIONS, *excluded_minutes(first_day, horizon)],
    )


def session_minutes(first_day: str, last_day: str) -> pd.DatetimeIndex:
    """Every session minute (naive NY bar start) of the sessions in [first_day, last_day]."""
    cal = nyse_calendar(first_day, last_day)
    minutes = cal.minutes_in_range(
        cal.session_first_minute(cal.date_to_session(first_day, "next")),
        cal.session_last_minute(cal.date_to_session(last_day, "previous")),
    )
    return minutes.tz_convert(MARKET_TZ).tz_localize(None)


def previous_session_minute(minute: pd.Timestamp) -> pd.Timestamp | None:
    """The session minute before `minute` (naive NY): the previous bar of the day, or the last
    bar of the previous session at the open; None before the calendar's first session."""
    day = pd.Timestamp(minute).normalize()
    earlier = session_minutes(
        (day - pd.Timedelta(days=10)).strftime("%Y-%m-%d"), day.strftime("%Y-%m-%d")
    )
    earlier = earlier[earlier < pd.Timestamp(minute)]
    return None if earlier.empty else earlier[-1]


def session_bounds(day: str | dt.date) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(open, close) of the NYSE session on `day` as naive New York times, None on a holiday or
    weekend. Early closes come from the calendar (13:00)."""
    stamp = pd.Timestamp(day)
    label = stamp.strftime("%Y-%m-%d")
    month = stamp.replace(day=1)  # one cached calendar a month, not one a day (~250 ms each)
    cal = nyse_calendar(
        month.strftime("%Y-%m-%d"), (month + pd.offsets.MonthEnd(0)).strftime("%Y-%m-%d")
    )
    if not cal.is_session(label):
        return None
    opened, closed = cal.session_open(label), cal.session_close(label)
    return (
        opened.tz_convert(MARKET_TZ).tz_localize(None),
        closed.tz_convert(MARKET_TZ).tz_localize(None),
    )


def arrival_minutes(published_utc: pd.Series, grid: pd.DatetimeIndex) -> pd.Series:
    """The partition in which each instant first becomes known: the first session minute whose
    window [m, m+1min) ends after it. A headline at 09:30:20 arrives in 09:30; one at 17:05 or
    on a Saturday arrives in the next session's 09:30. `grid` is `session_minutes` (naive NY)
    and must extend past the last instant; instants past it get NaT.
    """
    local = to_market_naive(published_utc)
    floored = local.dt.floor("min")
    idx = np.searchsorted(grid.values, floored.values, side="left")
    in_grid = idx < len(grid)
    values = np.full(len(floored), np.datetime64("NaT"), dtype="datetime64[ns]")
    values[in_grid] = grid.values[idx[in_grid]]
    return pd.Series(values, index=published_utc.index, name="minute")


def window_to_utc(start: dt.datetime, end: dt.datetime) -> tuple[pd.Timestamp, pd.Timestamp]:
    """A Dagster time window (tz-aware NY) as UTC timestamps for provider requests."""
    return pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC")


def naive_market_time(ts: dt.datetime) -> pd.Timestamp:
    """A tz-aware instant as the naive NY wall clock the warehouse stores."""
    return pd.Timestamp(ts).tz_convert(MARKET_TZ).tz_localize(None)
