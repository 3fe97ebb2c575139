"""The intraday schedule under a replay: "now" is the paper broker's clock (explicit opt-in).

A real embedded paper broker over HTTP; the schedule is evaluated on a Saturday wall-clock tick,
the way the daemon ticks it on this machine, and must still ask for the replayed minute just
closed. Without the opt-in the schedule is the live one, unchanged. The replay's running clock
is checked without threads: its segments close on wall-minute boundaries and map back exactly.
"""

import datetime as dt

import pandas as pd
import pytest
from dagster import DefaultScheduleStatus, RunRequest, SkipReason, build_schedule_context

from jobs.schedules import (
    INTRADAY_CRON,
    REPLAY_CLOCK_ENV,
    REPLAY_CRON,
    REPLAY_TAG,
    build_intraday_schedule,
    replay_clock_enabled,
)
from jobs.trading import LIVE_TAG
from resources.paper_broker import PaperBroker
from trading_assets.replay import CLOCK_AHEAD_S, CLOCK_LEAD_S, RunningClock

SATURDAY_TICK = dt.datetime(2026, 11, 21, 23, 57, tzinfo=dt.UTC)  # no session bar closes then


@pytest.fixture
def broker(tmp_path, monkeypatch):
    with PaperBroker(tmp_path / "paper.sqlite", start_time="2026-03-23T13:30:00Z") as running:
        monkeypatch.setenv("TRADING_BROKER_MODE", "embedded")
        monkeypatch.setenv("TRADING_BROKER_URL", running.url)
        yield running


def test_live_schedule_is_unchanged_without_the_opt_in(monkeypatch) -> None:
    monkeypatch.delenv(REPLAY_CLOCK_ENV, raising=False)
    assert not replay_clock_enabled()
    live = build_intraday_schedule()
    assert live.name == "intraday_schedule" and live.cron_schedule == INTRADAY_CRON
    assert live.default_status == DefaultScheduleStatus.STOPPED
    skip = live(build_schedule_context(scheduled_execution_time=SATURDAY_TICK))
    assert isinstance(skip, SkipReason) and "not an NYSE session" in (skip.skip_message or "")


def test_opt_in_is_explicit(monkeypatch) -> None:
    monkeypatch.setenv(REPLAY_CLOCK_ENV, "broker")
    assert replay_clock_enabled()
    monkeypatch.setenv(REPLAY_CLOCK_ENV, "wall")
    with pytest.raises(ValueError, match=REPLAY_CLOCK_ENV):
        replay_clock_enabled()


def test_replay_schedule_reads_the_broker_clock(broker) -> None:
    replay = build_intraday_schedule(replay=True)
    assert replay.name == "intraday_schedule" and replay.cron_schedule == REPLAY_CRON
    assert replay.default_status == DefaultScheduleStatus.RUNNING
    context = build_schedule_context(scheduled_execution_time=SATURDAY_TICK)
    skip = replay(context)  # the broker's clock is at the open: no bar has closed yet
    assert isinstance(skip, SkipReason) and "no session bar closed at 09:30" in (
        skip.skip_message or ""
    )
    broker.set_clock(pd.Timestamp("2026-03-23T13:35:00.400Z"))  # 09:35 and a bit, New York
    request = replay(context)
    assert isinstance(request, RunRequest)
    assert request.partition_key == "2026-03-23|09:34"
    assert request.run_key == "intraday-2026-03-23|09:34"
    assert request.tags == {LIVE_TAG: "true", REPLAY_TAG: "true"}


def test_running_clock_closes_each_minute_on_a_wall_minute() -> None:
    moves: list[pd.Timestamp] = []
    minutes = [pd.Timestamp("2026-03-23 09:34"), pd.Timestamp("2026-03-23 09:37")]
    clock = RunningClock(moves.append, minutes, start_in_s=0.0)
    first, second = clock.segments
    assert first.wall_close % 60 == 0 and second.wall_close == first.wall_close + 60
    assert first.close_utc == pd.Timestamp("2026-03-23T13:35:00Z")
    assert clock.current(first.wall_close - CLOCK_LEAD_S - 0.1) is None
    assert clock.current(second.wall_close - CLOCK_LEAD_S) is second  # jumps over 09:35-09:36
    ahead = pd.Timedelta(seconds=CLOCK_AHEAD_S)  # the clock leads the wall a little
    stamp = pd.Timestamp("2026-03-23T13:38:12.5Z")
    assert second.replayed(second.wall_close + 12.5) == stamp + ahead
    assert clock.to_wall(stamp + ahead) == second.wall_close + 12.5
    assert clock.to_wall(pd.Timestamp("2026-03-23T13:35:30Z") + ahead) == first.wall_close + 30
    assert clock.to_wall(pd.Timestamp("2026-03-23T13:36:30Z")) is None  # jumped over
