"""A run's minutes, as assets and checks see them, and how an input asks for history.

Every minute asset and check works on one stretch of session minutes (`MinuteSpan`): the run's
partitions, read from the run's tags (a check is not partitioned itself, so its context has no
partition of its own; it checks what its run wrote).
"""

from __future__ import annotations

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetExecutionContext,
    AssetIn,
    Failure,
)

from trading_assets.partitions import (
    HISTORY_MINUTES,
    MINUTE_STEP,
    PREVIOUS_SESSION,
    MinuteSpan,
    NotAMinuteSpan,
)
from trading_assets.schemas import MARKET_TZ

RunContext = AssetExecutionContext | AssetCheckExecutionContext


def run_span(context: RunContext) -> MinuteSpan:
    """The run's partitions as one stretch of minutes, or a clear, non-retried Failure."""
    try:
        span = MinuteSpan.of_tags(context.run.tags)
    except NotAMinuteSpan as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    if span is None:
        raise Failure(description="a minute asset needs a partitioned run", allow_retries=False)
    return span


def run_minutes(context: AssetExecutionContext) -> pd.DatetimeIndex:
    """The run's session minutes (bar starts, naive New York), each of a bar that has closed.

    A minute's partition exists from its session's midnight (the partitions' date dimension),
    so computing it before its bar closed would read the future: refused here, as is a run of
    partitions that are no session minutes (after an early close)."""
    span = run_span(context)
    minutes = span.minutes
    if minutes.empty:
        raise Failure(
            description=f"no session minute in {span.first} .. {span.last} (the market was "
            "closed: a holiday or after an early close); nothing to compute",
            allow_retries=False,
        )
    refuse_unclosed(minutes, pd.Timestamp.now(tz=MARKET_TZ).tz_localize(None))
    return minutes


def refuse_unclosed(minutes: pd.DatetimeIndex, now: pd.Timestamp) -> None:
    """A Failure if the last of `minutes` (naive NY) has a bar that has not closed at `now`."""
    if len(minutes) and minutes[-1] + MINUTE_STEP > now:
        raise Failure(
            description=f"the bar of {minutes[-1]} has not closed yet (now {now} New York): "
            "a minute is computed once its bar has closed",
            allow_retries=False,
        )


def history(minutes: int) -> AssetIn:
    """An input read with `minutes` session minutes before the run's first (at most one
    session) and nothing after its last: the warehouse IO manager loads exactly that. Dagster
    is told the dependency is this minute of this session and of the previous one."""
    return AssetIn(partition_mapping=PREVIOUS_SESSION, metadata={HISTORY_MINUTES: minutes})
