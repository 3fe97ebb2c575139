"""The XNYS market clock (holidays, early closes) and UTC normalisation for the paper broker."""

from __future__ import annotations

import functools

import pandas as pd

from trading_assets.partitions import nyse_calendar

MARKET_TZ = "America/New_York"


def as_utc(ts: pd.Timestamp) -> pd.Timestamp:
    """`ts` in UTC; a naive timestamp is taken as UTC already."""
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@functools.lru_cache(maxsize=64)
def _schedule(day: str) -> pd.DataFrame:
    """NYSE sessions (UTC open/close) around `day`: enough to answer any clock question there."""
    d = pd.Timestamp(day)
    cal = nyse_calendar(
        (d - pd.Timedelta(days=10)).strftime("%Y-%m-%d"),
        (d + pd.Timedelta(days=20)).strftime("%Y-%m-%d"),
    )
    return cal.schedule[["open", "close"]]


def market_clock(now: pd.Timestamp) -> tuple[bool, pd.Timestamp, pd.Timestamp]:
    """(is_open, next_open, next_close) at `now` from the XNYS calendar (holidays, early closes)."""
    sched = _schedule(now.tz_convert(MARKET_TZ).strftime("%Y-%m-%d"))
    is_open = bool(((sched["open"] <= now) & (now < sched["close"])).any())
    next_open = sched["open"][sched["open"] > now].iloc[0]
    next_close = sched["close"][sched["close"] > now].iloc[0]
    return is_open, next_open, next_close
