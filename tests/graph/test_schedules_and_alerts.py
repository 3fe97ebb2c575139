"""The intraday, flatten and ledger schedules on the NYSE calendar, and the run-failure alert.

Schedules are evaluated at New York wall-clock ticks (tz-aware datetimes), the way the daemon
calls them; the holidays and early closes are read from exchange_calendars, and the keys a
schedule asks for are checked against the partitions built from the same calendar. The alert
is driven by real failed runs on an ephemeral instance (a trading job whose broker has no keys)
and posts to a real local HTTP server standing in for the Slack webhook.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import exchange_calendars as xcals
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DefaultSensorStatus,
    RunFailureSensorContext,
    RunRequest,
    SkipReason,
    build_run_status_sensor_context,
    build_schedule_context,
)

from jobs.schedules import (
    flatten_early_close_schedule,
    flatten_schedule,
    intraday_schedule,
    ledger_early_close_schedule,
    ledger_schedule,
)
from jobs.trading import LIVE_TAG, close_all_positions
from resources.broker import BrokerResource
from resources.llm import LLMResource
from sensors.failures import (
    WEBHOOK_ENV,
    failure_message,
    post_to_slack,
    run_failure_alert,
    unmaterialized,
)
from tests.fakes.http_server import FakeHTTPServer, FakeResponse
from tests.graph.conftest import QUIET, make_graph
from trading_assets.decision.signals import SIGNAL_COLUMNS
from trading_assets.definitions import defs
from trading_assets.event_writes import BATCHED_EVENT_WRITES
from trading_assets.partitions import market_minute_partitions
from trading_assets.schemas import empty_frame

NY = ZoneInfo("America/New_York")
NORMAL = "2026-03-17"  # a Tuesday, 09:30-16:00
GOOD_FRIDAY = "2026-04-03"  # a weekday without a session
DAY_AFTER_THANKSGIVING = "2026-11-27"  # closes at 13:00
START, END = "dagster/asset_partition_range_start", "dagster/asset_partition_range_end"


def at(day: str, hhmm: str) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hhmm}").replace(tzinfo=NY)


def tick(schedule, day: str, hhmm: str) -> RunRequest | SkipReason:
    return schedule(build_schedule_context(scheduled_execution_time=at(day, hhmm)))


def keys_of(first_day: str, last_day: str) -> list[str]:
    """Every minute partition key of the code location's calendar over the days."""
    end = (pd.Timestamp(last_day) + pd.Timedelta(days=1)).strftime("%Y-%m-%d")
    partitions = market_minute_partitions(start=first_day, end=end)
    return partitions.get_partition_keys(current_time=at(end, "00:00"))


def test_the_calendar_days_used_here() -> None:
    cal = xcals.get_calendar("XNYS", start="2026-03-01", end="2026-12-31")
    assert cal.is_session(NORMAL)
    assert pd.Timestamp(GOOD_FRIDAY).dayofweek == 4 and not cal.is_session(GOOD_FRIDAY)
    early = cal.session_close(DAY_AFTER_THANKSGIVING).tz_convert(NY)
    assert (early.hour, early.minute) == (13, 0)
    assert cal.session_close(NORMAL).tz_convert(NY).hour == 16


# --- intraday ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "hhmm", "partition"),
    [
        (NORMAL, "09:31", f"{NORMAL}|09:30"),  # the first bar closed
        (NORMAL, "12:07", f"{NORMAL}|12:06"),
        (NORMAL, "16:00", f"{NORMAL}|15:59"),  # the last bar closes at the bell
        (DAY_AFTER_THANKSGIVING, "13:00", f"{DAY_AFTER_THANKSGIVING}|12:59"),
    ],
)
def test_intraday_runs_the_minute_just_closed(day: str, hhmm: str, partition: str) -> None:
    request = tick(intraday_schedule, day, hhmm)
    assert isinstance(request, RunRequest)
    assert request.partition_key == partition
    assert request.tags == {LIVE_TAG: "true"}
    assert request.run_key == f"intraday-{partition}"  # one run per minute, even if re-ticked
    assert partition in keys_of(day, day)  # a real partition of the code location


@pytest.mark.parametrize(
    ("day", "hhmm", "why"),
    [
        (NORMAL, "09:00", "no session bar closed at 09:00"),
        (NORMAL, "09:30", "no session bar closed at 09:30: the session runs 09:30-16:00"),
        (NORMAL, "16:01", "no session bar closed at 16:01: the session runs 09:30-16:00"),
        (NORMAL, "16:59", "no session bar closed at 16:59"),
        (GOOD_FRIDAY, "09:31", "2026-04-03 (Friday) is not an NYSE session"),
        (GOOD_FRIDAY, "12:00", "2026-04-03 (Friday) is not an NYSE session"),
        (DAY_AFTER_THANKSGIVING, "13:01", "the session runs 09:30-13:00 on 2026-11-27"),
        (DAY_AFTER_THANKSGIVING, "15:00", "the session runs 09:30-13:00 on 2026-11-27"),
    ],
)
def test_intraday_skips_ticks_without_a_closed_session_bar(day: str, hhmm: str, why: str) -> None:
    skip = tick(intraday_schedule, day, hhmm)
    assert isinstance(skip, SkipReason)
    assert why in (skip.skip_message or "")


def test_intraday_asks_for_every_partition_of_an_early_close_and_nothing_else() -> None:
    """Ticking every minute of the cron's hours requests exactly the day's session minutes: the
    partitions up to 12:59, none of the labels after the 13:00 close."""
    day = DAY_AFTER_THANKSGIVING
    ticks = pd.date_range(f"{day} 09:00", f"{day} 16:59", freq="min")
    asked = [tick(intraday_schedule, day, t.strftime("%H:%M")) for t in ticks]
    keys = [r.partition_key for r in asked if isinstance(r, RunRequest)]
    labels = [k for k in keys_of(day, day) if k.startswith(day)]
    assert keys == labels[:210] and len(labels) == 390 and keys[-1] == f"{day}|12:59"


def test_intraday_through_the_code_location() -> None:
    """Evaluated as the daemon does (with the repository): the partition must exist there."""
    repo = defs.get_repository_def()
    with DagsterInstance.ephemeral() as instance:
        context = build_schedule_context(
            instance=instance, repository_def=repo, scheduled_execution_time=at(NORMAL, "16:00")
        )
        data = repo.get_schedule_def("intraday_schedule").evaluate_tick(context)
    (request,) = data.run_requests or []
    assert request.partition_key == f"{NORMAL}|15:59"
    assert request.tags[LIVE_TAG] == "true" and request.tags["dagster/partition"] == (
        f"{NORMAL}|15:59"
    )


# --- flatten and ledger ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule", "day", "hhmm"),
    [
        (flatten_schedule, NORMAL, "15:55"),
        (flatten_early_close_schedule, DAY_AFTER_THANKSGIVING, "12:55"),
    ],
)
def test_flatten_runs_five_minutes_before_the_close(schedule, day: str, hhmm: str) -> None:
    request = tick(schedule, day, hhmm)
    assert isinstance(request, RunRequest)
    assert request.run_key == f"flatten-{day}" and request.tags == {LIVE_TAG: "true"}
    assert request.partition_key is None  # close_all_positions is not partitioned


@pytest.mark.parametrize(
    ("schedule", "day", "hhmm", "why"),
    [
        (flatten_early_close_schedule, NORMAL, "12:55", "today's close is 16:00"),
        (flatten_schedule, DAY_AFTER_THANKSGIVING, "15:55", "today's close is 13:00"),
        (flatten_schedule, GOOD_FRIDAY, "15:55", "2026-04-03 is not an NYSE session"),
        (flatten_early_close_schedule, GOOD_FRIDAY, "12:55", "2026-04-03 is not an NYSE session"),
    ],
)
def test_flatten_skips_other_days_and_holidays(schedule, day: str, hhmm: str, why: str) -> None:
    skip = tick(schedule, day, hhmm)
    assert isinstance(skip, SkipReason) and why in (skip.skip_message or "")


@pytest.mark.parametrize(
    ("schedule", "day", "hhmm"),
    [
        (ledger_schedule, NORMAL, "16:10"),
        (ledger_early_close_schedule, DAY_AFTER_THANKSGIVING, "13:10"),
    ],
)
def test_ledger_refreshes_the_whole_day_after_the_close(schedule, day: str, hhmm: str) -> None:
    first, last = f"{day}|09:30", f"{day}|15:59"  # every partition of the date
    request = tick(schedule, day, hhmm)
    assert isinstance(request, RunRequest)
    assert (request.tags[START], request.tags[END]) == (first, last)
    assert request.run_key == f"ledger-{day}"
    day_keys = [k for k in keys_of(day, day) if k.startswith(day)]
    assert (day_keys[0], day_keys[-1]) == (first, last)  # exactly the day's partitions
    assert LIVE_TAG not in request.tags  # a refresh of the day, not a live decision


@pytest.mark.parametrize(
    ("schedule", "day", "hhmm"),
    [
        (ledger_early_close_schedule, NORMAL, "13:10"),
        (ledger_schedule, DAY_AFTER_THANKSGIVING, "16:10"),
        (ledger_schedule, GOOD_FRIDAY, "16:10"),
    ],
)
def test_ledger_skips_other_days_and_holidays(schedule, day: str, hhmm: str) -> None:
    assert isinstance(tick(schedule, day, hhmm), SkipReason)


# --- the run-failure alert ---------------------------------------------------------------------

HOOK_PATH = "/services/T0TEST/B0TEST/s3cr3t-hook-token"
SECRET = "s3cr3t-hook-token"


@dataclass
class FailedRun:
    instance: DagsterInstance
    context: RunFailureSensorContext


def failure_context(instance: DagsterInstance, run_id: str) -> RunFailureSensorContext:
    """The context the daemon hands the sensor for this run's RUN_FAILURE event."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    (record,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    return build_run_status_sensor_context(
        sensor_name=run_failure_alert.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=record.dagster_event,
    ).for_run_failure()


@pytest.fixture(scope="module")
def flatten_failed() -> Iterator[FailedRun]:
    """close_all_positions against Alpaca paper without keys: a configuration failure."""
    with DagsterInstance.ephemeral() as instance:
        result = close_all_positions.execute_in_process(
            instance=instance,
            resources={"broker": BrokerResource(mode="paper", api_key="", secret_key="")},
            run_config=QUIET,
            raise_on_error=False,
        )
        assert not result.success
        yield FailedRun(instance, failure_context(instance, result.run_id))


@pytest.fixture
def hook() -> Iterator[FakeHTTPServer]:
    def ok(_request: object) -> FakeResponse:
        return FakeResponse(200, "ok", content_type="text/plain")

    with FakeHTTPServer({("POST", HOOK_PATH): ok}) as server:
        yield server


def test_post_to_slack_sends_the_text_as_json(hook: FakeHTTPServer) -> None:
    assert post_to_slack(hook.url + HOOK_PATH, "flatten failed: *check the book*") == 200
    (request,) = hook.requests
    assert (request.method, request.path) == ("POST", HOOK_PATH)
    assert request.headers["Content-Type"] == "application/json"
    assert request.json() == {"text": "flatten failed: *check the book*"}


def test_post_to_slack_raises_what_the_sensor_catches(hook: FakeHTTPServer) -> None:
    hook.fail_next(500)
    with pytest.raises(OSError):
        post_to_slack(hook.url + HOOK_PATH, "x")


def test_the_message_names_the_job_the_run_and_the_cause(flatten_failed: FailedRun) -> None:
    context = flatten_failed.context
    text = failure_message(context)
    assert text.startswith(":rotating_light: close_all_positions failed (run ")
    assert context.dagster_run.run_id[:8] in text
    assert "close_positions" in text  # the step that failed
    assert "needs ALPACA_API_KEY and ALPACA_SECRET_KEY" in text  # and why: what to fix
    assert "partition" not in text  # close_all_positions is not partitioned


def test_a_partitioned_runs_message_names_its_minute(tmp_path: Path) -> None:
    """execute_signals for one minute, with a paper broker that has no keys."""
    graph = make_graph(tmp_path, broker=BrokerResource(mode="paper", api_key="", secret_key=""))
    signals = empty_frame(SIGNAL_COLUMNS).assign(run_id=pd.Series(dtype="string"))
    with duckdb.connect(str(graph.warehouse)) as conn:  # decided, nothing actionable
        conn.register("signals", signals)
        conn.execute("CREATE SCHEMA IF NOT EXISTS trading")
        conn.execute("CREATE TABLE trading.trade_signals AS SELECT * FROM signals")
    with DagsterInstance.ephemeral() as instance:
        result = graph.run(instance, f"{NORMAL}|10:30", job="execute_signals")
        assert not result.success
        text = failure_message(failure_context(instance, result.run_id))
    assert text.startswith(f":rotating_light: execute_signals partition {NORMAL}|10:30 failed")
    assert "broker configuration" in text and "ALPACA_API_KEY" in text


def test_a_failed_backfill_says_which_partitions_it_left_unmaterialized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the shipped batched event writes Dagster shows a failed range's partitions as
    missing, not failed: the alert records the extent. Here the analysts fail (a model in
    replay-only mode with an empty cache) after the ingest layer and the gate succeeded."""
    for name, value in BATCHED_EVENT_WRITES.items():  # the shipped setting
        monkeypatch.setenv(name, value)
    llm = LLMResource(
        provider="openai",
        base_url="http://127.0.0.1:9/v1",  # never reached: the cache is asked first
        model="desk-model",
        api_key="sk-test",
        cache_mode="replay_only",
        cache_database=str(tmp_path / "warehouse.duckdb"),
    )
    graph = make_graph(tmp_path, llm=llm)
    first, last = "2026-03-23|09:30", "2026-03-23|09:34"  # headlines at the open: debated
    with DagsterInstance.ephemeral() as instance:
        result = graph.run(instance, first, last, job="research_job")
        assert not result.success
        text = failure_message(failure_context(instance, result.run_id))
        still_missing = unmaterialized(instance, instance.get_run_by_id(result.run_id))
    assert f"{first}..{last} not materialized: " in text
    for asset in ("technical_analysis", "debate"):
        assert f"{asset} 5 (from {first})" in text
        assert len(still_missing[AssetKey(asset)]) == 5
    for asset in ("bars", "news", "fundamentals", "debate_triggers"):
        assert still_missing[AssetKey(asset)] == []  # done before the failure
    assert "re-run the range or backfill its missing partitions" in text


def _logs(caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> str:
    out, err = capfd.readouterr()
    return caplog.text + out + err


def test_the_sensor_posts_one_alert_and_never_logs_the_webhook(
    flatten_failed: FailedRun,
    hook: FakeHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    url = hook.url + HOOK_PATH
    monkeypatch.setenv(WEBHOOK_ENV, f"  {url}\n")  # pasted with whitespace
    caplog.set_level("DEBUG")
    run_failure_alert(flatten_failed.context)
    (request,) = hook.requests
    assert request.path == HOOK_PATH
    posted = request.json()["text"]
    assert posted == failure_message(flatten_failed.context)
    assert "close_all_positions" in posted and "ALPACA_API_KEY" in posted
    logs = _logs(caplog, capfd)
    assert "failure posted to Slack (HTTP 200)" in logs  # the log stream was captured
    assert "close_all_positions failed" in logs  # the failure itself is logged too
    assert SECRET not in logs and url not in logs


def test_without_a_webhook_the_failure_is_only_logged(
    flatten_failed: FailedRun,
    hook: FakeHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level("DEBUG")
    for value in (None, "", "   "):
        if value is None:
            monkeypatch.delenv(WEBHOOK_ENV, raising=False)
        else:
            monkeypatch.setenv(WEBHOOK_ENV, value)
        run_failure_alert(flatten_failed.context)
    assert hook.requests == []
    logs = _logs(caplog, capfd)
    assert logs.count("close_all_positions failed") >= 3
    assert "Slack" not in logs


def _dead_url() -> str:
    dead = FakeHTTPServer().start()
    url = dead.url + HOOK_PATH
    dead.stop()
    return url


@pytest.mark.parametrize(
    ("make_url", "error"),
    [
        (None, "HTTPError"),  # the webhook answers 500
        (_dead_url, "URLError"),  # nothing listening
        (lambda: "hooks.slack.example" + HOOK_PATH, "ValueError"),  # https:// forgotten
    ],
    ids=["http-500", "unreachable", "no-scheme"],
)
def test_a_broken_webhook_neither_hides_the_failure_nor_leaks_the_url(
    flatten_failed: FailedRun,
    hook: FakeHTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
    make_url,
    error: str,
) -> None:
    if make_url is None:
        hook.fail_next(500)
        url = hook.url + HOOK_PATH
    else:
        url = make_url()
    monkeypatch.setenv(WEBHOOK_ENV, url)
    caplog.set_level("DEBUG")
    run_failure_alert(flatten_failed.context)  # must not raise
    logs = _logs(caplog, capfd)
    assert f"could not post to Slack: {error}" in logs
    assert "close_all_positions failed" in logs
    assert SECRET not in logs


def test_the_alert_is_in_the_code_location_and_on_by_default() -> None:
    repo = defs.get_repository_def()
    sensor = repo.get_sensor_def(run_failure_alert.name)
    assert sensor.default_status == DefaultSensorStatus.RUNNING
