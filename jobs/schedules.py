"""The intraday schedules, on New York time, with the NYSE calendar deciding every tick.

* `intraday_schedule` every minute 09:00-16:59 on weekdays: the minute just closed, if it is a
  session minute (holidays, weekends and the minutes after an early close are skipped with the
  reason). The 15:59 bar closes at 16:00, so 16:00 is the day's last tick.
* `flatten_schedule` runs `close_all_positions` five minutes before the close (15:55;
  `flatten_early_close_schedule` at 12:55 on an early close): market orders then fill before
  the bell.
* `ledger_schedule` re-materializes `broker_orders` over the day ten minutes after the close
  (16:10; `ledger_early_close_schedule` at 13:10), so every signal's ledger row ends in its
  final state.

Replay (explicit opt-in, `TRADING_REPLAY_CLOCK=broker` in the code location's environment): a
bundled session cannot be ticked by the wall clock (its day is long gone, or a weekend), so the
market's "now" comes from the broker's clock, which the replay moves (the embedded paper
broker's simulated clock; Alpaca's own clock is the wall clock, so live trading would read the
same time either way). `intraday_schedule` then ticks every wall minute of every day, is running
by default, reads the broker's clock instead of the tick's scheduled time, and tags its runs
`trading/replay=true`. Cron cannot tick faster than once a minute, so a replay through the real
schedule runs at most one session minute per wall minute (the replay may jump its clock over
quiet minutes). Without the variable nothing changes: the cron, the stopped default status and
the scheduled execution time as "now".
"""

import os

import pandas as pd
from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from jobs.trading import LIVE_TAG, close_all_positions, execute_signals, intraday_job
from trading_assets.partitions import MinuteSpan, minute_key, session_bounds
from trading_assets.schemas import MARKET_TZ

FLATTEN_MINUTES_BEFORE_CLOSE = 5
LEDGER_MINUTES_AFTER_CLOSE = 10
REPLAY_CLOCK_ENV = "TRADING_REPLAY_CLOCK"
# Every weekday minute 09:00-16:59: the calendar then says whether a session bar just closed
# (the 15:59 bar closes at 16:00, so 16:00 is a session's last tick).
INTRADAY_CRON = "* 9-16 * * 1-5"
REPLAY_CRON = "* * * * *"  # every wall minute: the broker's clock says which session minute
REPLAY_TAG = "trading/replay"


def replay_clock_enabled() -> bool:
    """True when the schedule's "now" is the broker's clock (`TRADING_REPLAY_CLOCK=broker`)."""
    value = os.environ.get(REPLAY_CLOCK_ENV, "").strip().lower()
    if value not in ("", "broker"):
        raise ValueError(f"{REPLAY_CLOCK_ENV} must be 'broker' or unset, not {value!r}")
    return value == "broker"


def broker_now() -> pd.Timestamp:
    """The broker's clock (UTC): the replayed market time under a replay."""
    from resources.broker import broker_from_env

    with broker_from_env().client() as client:
        return client.clock().now


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
    return minute_key(minute)


def build_intraday_schedule(replay: bool = False) -> ScheduleDefinition:
    """The intraday schedule; `replay=True` takes "now" from the broker's clock (module doc)."""

    @schedule(
        name="intraday_schedule",
        cron_schedule=REPLAY_CRON if replay else INTRADAY_CRON,
        execution_timezone=MARKET_TZ,
        job=intraday_job,
        default_status=DefaultScheduleStatus.RUNNING if replay else DefaultScheduleStatus.STOPPED,
        description="Every session minute: ingest through trade_signals for the minute just "
        "closed." + (" Replay: the minute comes from the broker's clock." if replay else ""),
    )
    def _intraday(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        now = broker_now().tz_convert(MARKET_TZ).tz_localize(None) if replay else _ny(context)
        key = minute_just_closed(now)
        if isinstance(key, SkipReason):
            return key
        tags = {LIVE_TAG: "true", **({REPLAY_TAG: "true"} if replay else {})}
        return RunRequest(run_key=f"intraday-{key}", partition_key=key, tags=tags)

    return _intraday


intraday_schedule = build_intraday_schedule(replay=replay_clock_enabled())


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


def _flatten(name: str, cron: str, when: str) -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=MARKET_TZ,
        job=close_all_positions,
        description=f"Flat five minutes before the close {when}: cancel open orders, close "
        "every position.",
    )
    def _flatten_tick(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        bounds = _at_offset(context, -FLATTEN_MINUTES_BEFORE_CLOSE)
        if isinstance(bounds, SkipReason):
            return bounds
        return RunRequest(run_key=f"flatten-{bounds[1]:%Y-%m-%d}", tags={LIVE_TAG: "true"})

    return _flatten_tick


def _ledger(name: str, cron: str, when: str) -> ScheduleDefinition:
    @schedule(
        name=name,
        cron_schedule=cron,
        execution_timezone=MARKET_TZ,
        job=execute_signals,
        description=f"Ten minutes after the close {when}: refresh every broker_orders row of "
        "the day to its final state.",
    )
    def _ledger_tick(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
        bounds = _at_offset(context, LEDGER_MINUTES_AFTER_CLOSE)
        if isinstance(bounds, SkipReason):
            return bounds
        day = bounds[0].normalize()
        return RunRequest(run_key=f"ledger-{day:%Y-%m-%d}", tags=MinuteSpan.whole_day(day).tags)

    return _ledger_tick


# One schedule per close time, so each reads as what it does (a cron cannot name the ~3
# early-close days a year, so the early-close ones tick on every weekday and skip the rest).
flatten_schedule = _flatten("flatten_schedule", "55 15 * * 1-5", "(15:55 New York)")
flatten_early_close_schedule = _flatten(
    "flatten_early_close_schedule", "55 12 * * 1-5", "on early-close days (12:55 New York)"
)
ledger_schedule = _ledger("ledger_schedule", "10 16 * * 1-5", "(16:10 New York)")
ledger_early_close_schedule = _ledger(
    "ledger_early_close_schedule", "10 13 * * 1-5", "on early-close days (13:10 New York)"
)
CLOSE_SCHEDULES = (
    flatten_schedule,
    flatten_early_close_schedule,
    ledger_schedule,
    ledger_early_close_schedule,
)


def flatten_schedule_for(close: pd.Timestamp) -> ScheduleDefinition:
    """The flatten schedule that ticks before a session closing at `close` (naive NY)."""
    return flatten_schedule if close.hour == 16 else flatten_early_close_schedule
