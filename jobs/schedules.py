"""The intraday schedules, on New York time, with the NYSE calendar deciding every tick.

* `intraday_schedule` every minute 09:00-16:59 on weekdays: the minute just closed, if it is a
  session minute (holidays, weekends and the minutes after an early close are skipped with the
  reason). The 15:59 bar closes at 16:00, so 16:00 is the day's last tick.
* `flatten_schedule` runs `close_all_positions` five minutes before the close (15:55, or 12:55
  on an early close): market orders then fill before the bell.
* `ledger_schedule` re-materializes `broker_orders` over the day ten minutes after the close,
  so every signal's ledger row ends in its final state.
"""

import pandas as pd
from dagster import (
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from jobs.trading import LIVE_TAG, close_all_positions, execute_signals, intraday_job
from trading_assets.partitions import PARTITION_FMT, SESSION_CRON, session_bounds
from trading_assets.schemas import MARKET_TZ

FLATTEN_MINUTES_BEFORE_CLOSE = 5
LEDGER_MINUTES_AFTER_CLOSE = 10


def _ny(context: ScheduleEvaluationContext) -> pd.Timestamp:
    return pd.Timestamp(context.scheduled_execution_time).tz_convert(MARKET_TZ).tz_localize(None)


def minute_just_closed(tick: pd.Timestamp) -> str | SkipReason:
    """The partition key of the bar that closed at `tick` (naive NY), or why there is none."""
    minute = tick.floor("min") - pd.Timedelta(minutes=1)
    bounds = session_bounds(minute.date())
    if bounds is None:
        return SkipReason(f"{minute:%Y-%m-%d} ({minute:%A}) is not an NYSE session (holiday)")
    opened, closed = bounds
    if not opened <= minute < closed:
        return SkipReason(
            f"no session bar closed at {tick:%H:%M}: the session runs "
            f"{opened:%H:%M}-{closed:%H:%M} on {minute:%Y-%m-%d}"
        )
    return minute.strftime(PARTITION_FMT)


@schedule(
    cron_schedule=SESSION_CRON,
    execution_timezone=MARKET_TZ,
    job=intraday_job,
    description="Every session minute: ingest through trade_signals for the minute just closed.",
)
def intraday_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    key = minute_just_closed(_ny(context))
    if isinstance(key, SkipReason):
        return key
    return RunRequest(run_key=f"intraday-{key}", partition_key=key, tags={LIVE_TAG: "true"})


def _at_offset(
    context: ScheduleEvaluationContext, minutes: int
) -> tuple[pd.Timestamp, pd.Timestamp] | SkipReason:
    """Today's (open, close) if this tick is `minutes` from the close (negative: before), else
    why not."""
    tick = _ny(context).floor("min")
    bounds = session_bounds(tick.date())
    if bounds is None:
        return SkipReason(f"{tick:%Y-%m-%d} is not an NYSE session (holiday)")
    target = bounds[1] + pd.Timedelta(minutes=minutes)
    if tick != target:
        return SkipReason(f"today's close is {bounds[1]:%H:%M}: this run belongs at {target:%H:%M}")
    return bounds


@schedule(
    cron_schedule="55 12,15 * * 1-5",
    execution_timezone=MARKET_TZ,
    job=close_all_positions,
    description="Flat before the close: cancel open orders, close every position.",
)
def flatten_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    bounds = _at_offset(context, -FLATTEN_MINUTES_BEFORE_CLOSE)
    if isinstance(bounds, SkipReason):
        return bounds
    return RunRequest(run_key=f"flatten-{bounds[1]:%Y-%m-%d}", tags={LIVE_TAG: "true"})


@schedule(
    cron_schedule="10 13,16 * * 1-5",
    execution_timezone=MARKET_TZ,
    job=execute_signals,
    description="After the close: refresh every broker_orders row of the day to its final state.",
)
def ledger_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    bounds = _at_offset(context, LEDGER_MINUTES_AFTER_CLOSE)
    if isinstance(bounds, SkipReason):
        return bounds
    first, last = bounds[0], bounds[1] - pd.Timedelta(minutes=1)
    return RunRequest(
        run_key=f"ledger-{first:%Y-%m-%d}",
        tags={
            "dagster/asset_partition_range_start": first.strftime(PARTITION_FMT),
            "dagster/asset_partition_range_end": last.strftime(PARTITION_FMT),
        },
    )
