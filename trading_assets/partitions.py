"""NYSE regular-session minutes as Dagster partitions: a session date x a minute of the session.

A partition is one bar start, 09:30-15:59 America/New_York; its key reads ``2026-03-12|09:30``
(Dagster's multi-partition key: the `date` dimension, then the `minute` dimension). Tickers are
rows.

Why two dimensions and not one minute cron: Dagster's webserver and daemon run Dagster's own
partition code on every asset and check (status, check state, backfill planning). For a
`TimeWindowPartitionsDefinition` with a minute cron, every key costs a fresh cron iteration
(croniter), and each holiday minute is one more exclusion: ~11 ms a key over the bundled
range, ~59 ms over a year, so a 12-session backtest's statuses took ~50 s per asset and a
year would take hours (BENCHMARKS, "The UI"). Here `date` is a weekday cron Dagster answers
arithmetically, with one exclusion per holiday (a date, not 390 minutes), and `minute` is a
static list of 390 labels: a key costs ~0.1 ms, whatever the range.

What the calendar decides, and where:
* weekends: the `date` cron runs Monday to Friday;
* holidays: `date` excludes them (from `exchange-calendars`' XNYS, never a hand-written list);
* early closes (13:00): the 180 labels after the close exist as partitions on those ~3 days a
  year, but they are not session minutes: every asset drops them (`session_minutes_of`), a run
  over them writes nothing, and the checks expect nothing there.
* the bar of a minute exists only once it has closed: today's partitions are all defined from
  midnight, so the ingest refuses a minute whose bar has not closed yet (`not_closed_yet`).

History (an analyst reads 200 minutes back, the trading agent the session so far) crosses
sessions; Dagster's partition mappings act per dimension, so the declared dependency is "this
minute of this session and of the previous one" (`PREVIOUS_SESSION`): a backfill waits for the
previous session's bars, and no mapping points at a later minute. Which rows are read is the
warehouse IO manager's business (`history_minutes` on the input, `minute_window`).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from dagster import (
    DimensionPartitionMapping,
    IdentityPartitionMapping,
    MultiPartitionMapping,
    MultiPartitionsDefinition,
    StaticPartitionsDefinition,
    TimeWindowPartitionMapping,
    TimeWindowPartitionsDefinition,
)

from trading_assets.schemas import MARKET_TZ, to_market_naive

DATE, MINUTE = "date", "minute"  # the dimensions; a key is "<date>|<minute>" (sorted by name)
KEY_FMT = "%Y-%m-%d|%H:%M"
DATE_FMT = "%Y-%m-%d"
WEEKDAYS_CRON = "0 0 * * 1-5"
FULL_SESSION_MINUTES = 390
MINUTE_LABELS = tuple(
    f"{h:02d}:{m:02d}" for h in range(9, 16) for m in range(60) if (h, m) >= (9, 30)
)
DEFAULT_START = "2026-03-12"  # first session of the bundled replay data
# The day after the bundled data's last complete session (2026-03-27): SPY and QQQ alone go on
# to a partial 2026-03-31, and partitions there would open the UI on two days where most of
# the universe has no bars.
DEFAULT_REPLAY_END = "2026-03-28"
# Holidays are excluded this far ahead of today in an open-ended (live) definition; one date
# each, so the horizon costs nothing. A code location reloaded within a year stays exact.
LIVE_HORIZON_DAYS = 400
MINUTE_STEP = pd.Timedelta(minutes=1)
# Input metadata: session minutes before the run's first that the warehouse IO manager loads.
HISTORY_MINUTES = "history_minutes"


def nyse_calendar(first_day: str, last_day: str) -> xcals.ExchangeCalendar:
    """XNYS sessions covering [first_day, last_day] and a margin either side (neighbouring
    sessions), built once per span of whole years (~100 ms each, then cached)."""
    first_year = (pd.Timestamp(first_day) - pd.Timedelta(days=14)).year
    last_year = (pd.Timestamp(last_day) + pd.Timedelta(days=14)).year
    return _calendar(first_year, last_year)


@functools.lru_cache(maxsize=8)
def _calendar(first_year: int, last_year: int) -> xcals.ExchangeCalendar:
    return xcals.get_calendar("XNYS", start=f"{first_year}-01-01", end=f"{last_year}-12-31")


def _default_end() -> str | None:
    """Replay covers the bundled sessions unless told otherwise; live is open-ended."""
    explicit = os.environ.get("TRADING_PARTITIONS_END")
    if explicit:
        return explicit
    replaying = os.environ.get("TRADING_BARS_PROVIDER", "replay") == "replay"
    custom_start = os.environ.get("TRADING_PARTITIONS_START")
    return DEFAULT_REPLAY_END if replaying and not custom_start else None


def holidays(first_day: str, last_day: str) -> list[dt.datetime]:
    """Weekdays in [first_day, last_day] on which the NYSE does not open (naive midnights)."""
    sessions = set(nyse_calendar(first_day, last_day).sessions_in_range(first_day, last_day))
    return [d.to_pydatetime() for d in pd.bdate_range(first_day, last_day) if d not in sessions]


def session_dates(start: str, end: str | None) -> TimeWindowPartitionsDefinition:
    """The `date` dimension: NYSE sessions from `start` to `end` (exclusive; None: open-ended,
    today's session included from midnight).

    A date's window runs to the next weekday's midnight (Friday's to Monday's), and Dagster
    keeps a window only if it ends by `end`: an `end` on a weekend moves to the Monday after,
    so `end` 2026-03-28 (a Saturday) keeps Friday the 27th."""
    first = pd.Timestamp(start).strftime(DATE_FMT)
    stop = pd.Timestamp(end) if end else None
    if stop is not None and stop.dayofweek >= 5:
        stop += pd.Timedelta(days=7 - stop.dayofweek)
    horizon = stop or pd.Timestamp(dt.date.today() + dt.timedelta(days=LIVE_HORIZON_DAYS))
    last = (horizon - pd.Timedelta(days=1)).strftime(DATE_FMT)
    return TimeWindowPartitionsDefinition(
        cron_schedule=WEEKDAYS_CRON,
        start=first,
        end=stop.strftime(DATE_FMT) if stop is not None else None,
        fmt=DATE_FMT,
        timezone=MARKET_TZ,
        end_offset=1,  # today's date exists from its midnight (its window ends tomorrow)
        exclusions=holidays(first, last) if last >= first else [],
    )


def market_minute_partitions(
    start: str | None = None, end: str | None = None
) -> MultiPartitionsDefinition:
    """The minute partitions from `start` (a date; default TRADING_PARTITIONS_START or the first
    bundled session) to `end` (exclusive date; default TRADING_PARTITIONS_END; with the replay
    provider and no explicit start, the bundled sessions; otherwise open-ended)."""
    start = start or os.environ.get("TRADING_PARTITIONS_START") or DEFAULT_START
    end = end or _default_end()
    return MultiPartitionsDefinition(
        {DATE: session_dates(start, end), MINUTE: StaticPartitionsDefinition(list(MINUTE_LABELS))}
    )


def is_minute_partitions(partitions_def: object) -> bool:
    """Whether `partitions_def` has this module's form (a `date` x `minute` definition)."""
    return isinstance(partitions_def, MultiPartitionsDefinition) and (
        partitions_def.partition_dimension_names == [DATE, MINUTE]
    )


# "This minute of this session and of the previous session": the declared dependency of an
# input read with history (module docstring). A backfill then waits for the previous session.
PREVIOUS_SESSION = MultiPartitionMapping(
    {
        DATE: DimensionPartitionMapping(
            DATE,
            TimeWindowPartitionMapping(start_offset=-1, allow_nonexistent_upstream_partitions=True),
        ),
        MINUTE: DimensionPartitionMapping(MINUTE, IdentityPartitionMapping()),
    }
)


def minute_key(minute: pd.Timestamp | dt.datetime) -> str:
    """The partition key of a bar start (naive New York), e.g. ``2026-03-12|09:30``."""
    return pd.Timestamp(minute).strftime(KEY_FMT)


def key_minutes(keys: Iterable[str]) -> pd.DatetimeIndex:
    """Bar starts (naive New York) of partition keys, in their order."""
    return pd.DatetimeIndex(pd.to_datetime([str(k) for k in keys], format=KEY_FMT))


def key_minute(key: str) -> pd.Timestamp:
    return pd.Timestamp(pd.to_datetime(str(key), format=KEY_FMT))


def session_minutes(first_day: str, last_day: str) -> pd.DatetimeIndex:
    """Every session minute (naive NY bar start) of the sessions in [first_day, last_day]."""
    cal = nyse_calendar(first_day, last_day)
    minutes = cal.minutes_in_range(
        cal.session_first_minute(cal.date_to_session(first_day, "next")),
        cal.session_last_minute(cal.date_to_session(last_day, "previous")),
    )
    return minutes.tz_convert(MARKET_TZ).tz_localize(None)


def session_minutes_of(minutes: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The session minutes among `minutes` (partitions after an early close dropped), sorted."""
    if minutes.empty:
        return minutes
    first, last = minutes.min().strftime(DATE_FMT), minutes.max().strftime(DATE_FMT)
    if not len(nyse_calendar(first, last).sessions_in_range(first, last)):
        return minutes[:0]
    return minutes[minutes.isin(session_minutes(first, last))].sort_values()


def minutes_back(minute: pd.Timestamp, count: int) -> pd.Timestamp:
    """The session minute `count` session minutes before `minute` (naive NY): where a
    look-back of `count` bars starts. Before the calendar's first session: its first minute."""
    if count <= 0:
        return pd.Timestamp(minute)
    day = pd.Timestamp(minute).normalize()
    days_back = 7 + 2 * (count // FULL_SESSION_MINUTES + 1)  # covers holidays and early closes
    earlier = session_minutes((day - pd.Timedelta(days=days_back)).strftime(DATE_FMT),
                              day.strftime(DATE_FMT))  # fmt: skip
    earlier = earlier[earlier < pd.Timestamp(minute)]
    return earlier[max(0, len(earlier) - count)] if len(earlier) else pd.Timestamp(minute)


def previous_session_minute(minute: pd.Timestamp) -> pd.Timestamp | None:
    """The session minute before `minute` (naive NY): the previous bar of the day, or the last
    bar of the previous session at the open; None before the calendar's first session."""
    day = pd.Timestamp(minute).normalize()
    earlier = session_minutes(
        (day - pd.Timedelta(days=10)).strftime(DATE_FMT), day.strftime(DATE_FMT)
    )
    earlier = earlier[earlier < pd.Timestamp(minute)]
    return None if earlier.empty else earlier[-1]


RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"
PARTITION_TAG = "dagster/partition"


class NotAMinuteSpan(ValueError):
    """A selection of partitions that is not one stretch of minutes (see `MinuteSpan`)."""


@dataclass(frozen=True)
class MinuteSpan:
    """The partitions of one run: every partition from `first` to `last` (bar starts, naive
    NY). A Dagster key range of two-dimensional keys is a rectangle (dates x minutes); it is one
    stretch of time only when it stays within one session or takes whole sessions, and that is
    what a run may cover here: the warehouse replaces a run's rows by their time window."""

    first: pd.Timestamp
    last: pd.Timestamp

    @property
    def end(self) -> pd.Timestamp:
        """The end of the last partition's bar (exclusive)."""
        return self.last + MINUTE_STEP

    @property
    def minutes(self) -> pd.DatetimeIndex:
        """The session minutes of the span (the partitions after an early close left out)."""
        first, last = self.first.strftime(DATE_FMT), self.last.strftime(DATE_FMT)
        if not len(nyse_calendar(first, last).sessions_in_range(first, last)):
            return pd.DatetimeIndex([])
        every = session_minutes(first, last)
        return every[(every >= self.first) & (every <= self.last)]

    @property
    def tags(self) -> dict[str, str]:
        """Run tags that target the span: its key range (Dagster's own tags)."""
        return {RANGE_START_TAG: minute_key(self.first), RANGE_END_TAG: minute_key(self.last)}

    @classmethod
    def whole_day(cls, day: pd.Timestamp) -> MinuteSpan:
        """Every partition of `day`'s date (09:30 .. 15:59 labels; after an early close too)."""
        return cls(_label_minute(day, 0), _label_minute(day, -1))

    @classmethod
    def covering(cls, first: pd.Timestamp, last: pd.Timestamp) -> list[MinuteSpan]:
        """The fewest spans (one run each) covering the partitions from `first` to `last`
        (minutes of sessions): the rest of `first`'s session, the whole sessions between, the
        start of `last`'s."""
        first, last = pd.Timestamp(first), pd.Timestamp(last)
        if first.normalize() == last.normalize():
            return [cls(first, last)]
        days = list(nyse_calendar(f"{first:%Y-%m-%d}", f"{last:%Y-%m-%d}").sessions_in_range(
            first.normalize(), last.normalize()))  # fmt: skip
        head = tail = None
        if first != _label_minute(first, 0):
            head = cls(first, _label_minute(first, -1))
            days = [d for d in days if d != first.normalize()]
        if last != _label_minute(last, -1):
            tail = cls(_label_minute(last, 0), last)
            days = [d for d in days if d != last.normalize()]
        middle = [cls(_label_minute(days[0], 0), _label_minute(days[-1], -1))] if days else []
        return [s for s in (head, *middle, tail) if s is not None]

    @classmethod
    def of_keys(cls, first_key: str, last_key: str) -> MinuteSpan:
        """The span from `first_key` to `last_key`, or NotAMinuteSpan with what to do instead."""
        first, last = key_minute(first_key), key_minute(last_key)
        one_day = first.normalize() == last.normalize()
        whole_days = first_key.endswith(MINUTE_LABELS[0]) and last_key.endswith(MINUTE_LABELS[-1])
        if last < first or not (one_day or whole_days):
            raise NotAMinuteSpan(
                f"partitions {first_key} .. {last_key} are not one stretch of minutes: a run "
                "covers minutes of one session or whole sessions (select all minutes of the "
                "dates, or one date at a time)"
            )
        return cls(first, last)

    @classmethod
    def of_tags(cls, tags: Mapping[str, str]) -> MinuteSpan | None:
        """The span of a run from its tags; None for a run without partitions."""
        if RANGE_START_TAG in tags and RANGE_END_TAG in tags:
            return cls.of_keys(tags[RANGE_START_TAG], tags[RANGE_END_TAG])
        if PARTITION_TAG in tags:
            return cls.of_keys(tags[PARTITION_TAG], tags[PARTITION_TAG])
        return None


def _label_minute(day: pd.Timestamp, index: int) -> pd.Timestamp:
    """The minute of label `index` (0: 09:30, -1: 15:59) on `day`'s date."""
    hours, minutes = MINUTE_LABELS[index].split(":")
    return day.normalize() + pd.Timedelta(hours=int(hours), minutes=int(minutes))


def session_bounds(day: str | dt.date) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """(open, close) of the NYSE session on `day` as naive New York times, None on a holiday or
    weekend. Early closes come from the calendar (13:00)."""
    stamp = pd.Timestamp(day)
    label = stamp.strftime(DATE_FMT)
    month = stamp.replace(day=1)  # one cached calendar a month, not one a day (~250 ms each)
    cal = nyse_calendar(
        month.strftime(DATE_FMT), (month + pd.offsets.MonthEnd(0)).strftime(DATE_FMT)
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
    """A naive New York window as UTC timestamps for provider requests."""
    return (
        pd.Timestamp(start).tz_localize(MARKET_TZ).tz_convert("UTC"),
        pd.Timestamp(end).tz_localize(MARKET_TZ).tz_convert("UTC"),
    )


def naive_market_time(ts: dt.datetime) -> pd.Timestamp:
    """A tz-aware instant as the naive NY wall clock the warehouse stores."""
    return pd.Timestamp(ts).tz_convert(MARKET_TZ).tz_localize(None)
