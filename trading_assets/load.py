"""A replayed session faster than real time through the real daemon: the load test's driver.

Cron cannot tick faster than once a minute, so at `speed` x the driver stands in for the
scheduler: every 60/speed s of wall time it moves the paper broker's clock to the next session
minute's close, evaluates `intraday_schedule` at that close (the live schedule, as the daemon
would: same run key, `trading/live` tag, partition) and submits that run request to the
instance's run queue from a workspace loaded once (the code server the scheduler would use), so
the real `dagster-daemon` dequeues and launches each run in its own process; its
`trade_signal_sensor` launches `execute_signals` for every minute with actionable signals. Runs
overlap (a minute's run outlives its 6 s), so several processes share the single-writer DuckDB
warehouse and the Postgres instance: what this measures.

The daemon must not tick `intraday_schedule` itself (no `TRADING_REPLAY_CLOCK`: the live
schedule is stopped by default), or it would request the same minutes a second time.
"""

from __future__ import annotations

import math
import os
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from resources.duckdb_locks import HANDLED_MARKER, connect
from trading_assets.location_runs import LocationRuns
from trading_assets.partitions import PARTITION_TAG, session_minutes
from trading_assets.replay import REPLAY_TAG, REPO_ROOT, daemon, key, run_range, utc

LOAD_TAG = "trading/load"
# an unhandled DuckDB lock conflict, in any failure's text (the IO error, or our timeout)
LOCK_FAILURE = re.compile(r"Could not set lock|Conflicting lock|WarehouseLockTimeout")
PG_ERROR = re.compile(
    r"psycopg2\.\w*OperationalError|SerializationFailure|could not serialize|deadlock detected"
    r"|too many clients"
)
WAITED = re.compile(r"attempts in ([0-9.]+) s")
FAILURE_EVENTS = {"STEP_FAILURE", "RUN_FAILURE", "ENGINE_EVENT", "HOOK_ERRORED"}


@dataclass
class Tick:
    minute: str
    wall: float  # time.time() when its run was submitted
    run_id: str
    late_s: float  # how far the tick ran behind its 60/speed s slot


@dataclass
class RunFigures:
    job: str
    minute: str
    status: str
    created: float
    started: float | None
    ended: float | None
    actionable: int = 0
    handled_locks: int = 0
    lock_wait_max_s: float = 0.0  # the longest wait of a handled conflict
    unhandled_locks: list[str] = field(default_factory=list)
    pg_errors: list[str] = field(default_factory=list)
    failure: str = ""


@dataclass
class LoadResult:
    session: str
    first: str
    last: str
    speed: float
    tickers: int
    ticks: list[Tick] = field(default_factory=list)
    intraday: list[RunFigures] = field(default_factory=list)
    execute: list[RunFigures] = field(default_factory=list)
    warmup_s: float = 0.0
    tick_loop_s: float = 0.0
    drain_s: float = 0.0
    drained: bool = False
    backlog_max: int = 0
    orders: int = 0  # sig- orders at the broker
    order_duplicates: int = 0  # client order ids seen more than once at the broker
    ledger_rows: int = 0
    ledger_sent: int = 0  # ledger rows with a broker order id
    ledger_duplicates: int = 0  # signal ids with more than one ledger row
    ledger_states: dict[str, int] = field(default_factory=dict)
    daemon_log: dict[str, int] = field(default_factory=dict)

    # --- the figures the report and the test read ------------------------------------------

    def intraday_by_minute(self) -> dict[str, list[RunFigures]]:
        out: dict[str, list[RunFigures]] = {t.minute: [] for t in self.ticks}
        for run in self.intraday:
            out.setdefault(run.minute, []).append(run)
        return out

    def execute_by_minute(self) -> dict[str, list[RunFigures]]:
        out: dict[str, list[RunFigures]] = {}
        for run in self.execute:
            out.setdefault(run.minute, []).append(run)
        return out

    @property
    def succeeded(self) -> list[str]:
        return [m for m, rs in self.intraday_by_minute().items() if _ok(rs)]

    @property
    def failed(self) -> list[str]:
        return [
            m
            for m, rs in self.intraday_by_minute().items()
            if not _ok(rs) and any(r.status == "FAILURE" for r in rs)
        ]

    @property
    def lost(self) -> list[str]:
        """Ticked minutes whose run never finished (missing, stuck queued, canceled)."""
        return [
            m
            for m, rs in self.intraday_by_minute().items()
            if not any(r.status in ("SUCCESS", "FAILURE") for r in rs)
        ]

    @property
    def actionable_minutes(self) -> list[str]:
        return [m for m, rs in self.intraday_by_minute().items() if _ok(rs) and _ok(rs).actionable]

    def lock_counts(self) -> tuple[int, int]:
        runs = [*self.intraday, *self.execute]
        return sum(r.handled_locks for r in runs), sum(len(r.unhandled_locks) for r in runs)


def _ok(runs: list[RunFigures]) -> RunFigures | None:
    return next((r for r in runs if r.status == "SUCCESS"), None)


def nearest_rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] if ordered else float("nan")


class RunSubmitter:
    """Submits `intraday_schedule`'s run requests to the instance's queue, as the scheduler
    does, from the workspace the daemon loads (`LocationRuns.from_workspace`)."""

    def __init__(self, instance, workspace_yaml: Path = REPO_ROOT / "workspace.yaml") -> None:
        self._runs = LocationRuns.from_workspace(instance, workspace_yaml)

    def __enter__(self) -> RunSubmitter:
        self._runs.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._runs.__exit__(*exc)

    def submit(self, schedule, at: pd.Timestamp, extra_tags: dict[str, str]) -> str:
        """Evaluate `schedule` at `at` (UTC) and submit its run request; the run id."""
        from dagster import RunRequest, build_schedule_context
        from dagster._core.storage.tags import (
            PARTITION_NAME_TAG,
            RUN_KEY_TAG,
            SCHEDULE_NAME_TAG,
            SCHEDULED_EXECUTION_TIME_TAG,
        )

        request = schedule(build_schedule_context(scheduled_execution_time=at.to_pydatetime()))
        if not isinstance(request, RunRequest):
            raise RuntimeError(f"{schedule.name} skipped at {at}: {request}")
        tags = {
            **request.tags,
            PARTITION_NAME_TAG: request.partition_key,
            SCHEDULE_NAME_TAG: schedule.name,
            SCHEDULED_EXECUTION_TIME_TAG: at.tz_convert("UTC").isoformat(),
            RUN_KEY_TAG: request.run_key,
            **extra_tags,
        }
        return self._runs.submit(schedule.job_name, tags, request.run_config)

    def prepare(self, job_name: str) -> None:
        """Load the job's snapshot and plan now (a gRPC round trip) rather than in a tick."""
        self._runs.prepare(job_name)


def run_figures(instance, record, job: str) -> RunFigures:
    """Status, times, actionable count and every lock/Postgres error in one run's event log."""
    run = record.dagster_run
    figures = RunFigures(
        job=job,
        minute=run.tags.get(PARTITION_TAG, ""),
        status=run.status.value,
        created=record.create_timestamp.timestamp(),
        started=record.start_time,
        ended=record.end_time,
    )
    for entry in instance.all_logs(run.run_id):
        event = entry.dagster_event
        kind = event.event_type.name if event is not None else "LOG"
        text = entry.user_message or ""
        if event is not None and event.event_specific_data is not None:
            text += f" {event.event_specific_data!r}"
        if kind == "LOG" and HANDLED_MARKER in text:
            figures.handled_locks += 1
            waited = WAITED.search(text)
            if waited:
                figures.lock_wait_max_s = max(figures.lock_wait_max_s, float(waited.group(1)))
        if kind in FAILURE_EVENTS or entry.level >= 40:
            if LOCK_FAILURE.search(text):
                figures.unhandled_locks.append(f"{kind}: {text[:400]}")
            if kind in ("STEP_FAILURE", "RUN_FAILURE") and not figures.failure:
                figures.failure = text[:600]
        if PG_ERROR.search(text):
            figures.pg_errors.append(f"{kind}: {text[:300]}")
        if kind == "ASSET_MATERIALIZATION" and event.asset_key.to_user_string() == "trade_signals":
            entry_meta = event.event_specific_data.materialization.metadata.get("actionable")
            figures.actionable = int(entry_meta.value) if entry_meta is not None else 0
    return figures


def queued(instance) -> int:
    from dagster import DagsterRunStatus, RunsFilter

    return instance.get_runs_count(RunsFilter(statuses=[DagsterRunStatus.QUEUED]))


def _pending(instance, load_id: str, ticks: list[Tick]) -> bool:
    """Whether a run of this load (or one the sensor may still launch) is not finished."""
    from dagster import DagsterRunStatus, RunsFilter

    unfinished = [
        DagsterRunStatus.QUEUED,
        DagsterRunStatus.NOT_STARTED,
        DagsterRunStatus.STARTING,
        DagsterRunStatus.STARTED,
        DagsterRunStatus.CANCELING,
    ]
    if instance.get_runs_count(RunsFilter(statuses=unfinished)):
        return True
    done = instance.get_runs_count(
        RunsFilter(job_name="intraday_job", tags={LOAD_TAG: load_id}, statuses=[
            DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED])
    )  # fmt: skip
    return done < len(ticks)


def grep_daemon_log(path: Path) -> dict[str, int]:
    counts: Counter[str] = Counter()
    if not path.exists():
        return {}
    for line in path.read_text(errors="replace").splitlines():
        if LOCK_FAILURE.search(line) or "IO Error" in line:
            counts["duckdb lock / IO Error"] += 1
        if PG_ERROR.search(line):
            counts["postgres OperationalError / serialization"] += 1
        if "Traceback" in line:
            counts["tracebacks"] += 1
    return dict(counts)


def load_session(
    session: str,
    first: str,
    last: str,
    *,
    speed: float,
    set_clock: Callable[[pd.Timestamp], object],
    broker_orders: Callable[[], list[dict]],
    tickers: int,
    drain_timeout_s: float = 1800.0,
    settle_s: float = 12.0,
    log: Callable[[str], None] = print,
) -> LoadResult:
    """Warm up (ingest history in process), then tick [first, last] at `speed` through the
    daemon and wait for the queue to drain; every figure from the instance, the broker and the
    warehouse. DAGSTER_HOME (a dagster.yaml with the queued run coordinator), TRADING_DATA_DIR,
    TRADING_REPLAY_DIR and TRADING_BROKER_URL must be set; TRADING_REPLAY_CLOCK must not."""
    from dagster import DagsterInstance, RunsFilter

    from jobs.schedules import REPLAY_CLOCK_ENV, intraday_schedule
    from resources.warehouse import warehouse_path
    from trading_assets.definitions import build_definitions
    from trading_assets.replay import wait_for_signal_sensor

    if os.environ.get(REPLAY_CLOCK_ENV):
        raise RuntimeError(f"unset {REPLAY_CLOCK_ENV}: the daemon's own schedule would tick too")
    instance = DagsterInstance.get()
    defs = build_definitions()
    minutes = session_minutes(session, session)
    opened = minutes[0]
    lo, hi = pd.Timestamp(f"{session} {first}"), pd.Timestamp(f"{session} {last}")
    minutes = minutes[(minutes >= lo) & (minutes <= hi)]
    if minutes.empty:
        raise SystemExit(f"no session minutes in {first}..{last} on {session}")
    result = LoadResult(session, key(minutes[0]), key(minutes[-1]), speed, tickers)
    load_id = f"{session}-{first}-{last}-{int(time.time())}"

    # History the minutes read: the previous session (indicators look 200 minutes back) and,
    # for a window after the open, the research of this session before it. The window's
    # minutes themselves are the schedule's full intraday_job, one run each.
    started = time.perf_counter()
    previous = session_minutes(
        (pd.Timestamp(session) - pd.Timedelta(days=7)).strftime("%Y-%m-%d"),
        (pd.Timestamp(session) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
    )
    warm_from = previous[previous >= previous[-1].normalize()][0]
    run_range(defs, instance, "ingest_job", warm_from, previous[-1])
    if minutes[0] > opened:
        run_range(defs, instance, "research_job", opened, minutes[0] - pd.Timedelta(minutes=1))
    result.warmup_s = time.perf_counter() - started
    log(f"warm-up {key(warm_from)} .. {key(minutes[0] - pd.Timedelta(minutes=1))}: "
        f"{result.warmup_s:.0f} s")  # fmt: skip

    set_clock(utc(minutes[0]))
    home = Path(os.environ["DAGSTER_HOME"])
    period = 60.0 / speed
    with daemon(dict(os.environ), log) as proc, RunSubmitter(instance) as submitter:
        submitter.prepare(intraday_schedule.job_name)
        ready = wait_for_signal_sensor(instance, proc)
        log(f"daemon's trade_signal_sensor watching ({ready:.1f} s); ticking {len(minutes)} "
            f"minutes every {period:.1f} s")  # fmt: skip
        t0 = time.time()
        tick_started = time.perf_counter()
        for i, minute in enumerate(minutes):
            slot = t0 + i * period
            time.sleep(max(0.0, slot - time.time()))
            close = utc(minute) + pd.Timedelta(minutes=1)
            set_clock(close)
            late = time.time() - slot
            run_id = submitter.submit(intraday_schedule, close, {**REPLAY_TAG, LOAD_TAG: load_id})
            result.ticks.append(Tick(key(minute), time.time(), run_id, late))
            result.backlog_max = max(result.backlog_max, queued(instance))
        result.tick_loop_s = time.perf_counter() - tick_started
        log(f"ticked {len(minutes)} minutes in {result.tick_loop_s:.0f} s (max tick lateness "
            f"{max(t.late_s for t in result.ticks):.1f} s); draining the queue")  # fmt: skip
        drain_started = time.perf_counter()
        last_busy = time.perf_counter()
        while time.perf_counter() - drain_started < drain_timeout_s:
            result.backlog_max = max(result.backlog_max, queued(instance))
            if proc.poll() is not None:
                log(f"dagster-daemon exited with {proc.returncode}")
                break
            if _pending(instance, load_id, result.ticks):
                last_busy = time.perf_counter()
            elif time.perf_counter() - last_busy >= settle_s:  # the sensor's last launches
                result.drained = True
                break
            time.sleep(1.0)
        result.drain_s = time.perf_counter() - drain_started
        log(f"queue {'drained' if result.drained else 'NOT drained'} after "
            f"{result.drain_s:.0f} s")  # fmt: skip

    for record in instance.get_run_records(
        RunsFilter(job_name="intraday_job", tags={LOAD_TAG: load_id})
    ):
        result.intraday.append(run_figures(instance, record, "intraday_job"))
    wanted = {t.minute for t in result.ticks}
    for record in instance.get_run_records(RunsFilter(job_name="execute_signals")):
        if record.dagster_run.tags.get(PARTITION_TAG) in wanted:
            result.execute.append(run_figures(instance, record, "execute_signals"))
    sent = [o for o in broker_orders() if str(o.get("client_order_id", "")).startswith("sig-")]
    ids = Counter(o["client_order_id"] for o in sent)
    result.orders, result.order_duplicates = len(sent), sum(n - 1 for n in ids.values())
    with connect(warehouse_path(), read_only=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'trading'"
        ).fetchall()}  # fmt: skip
        if "broker_orders" in tables:
            ledger = conn.execute("SELECT signal_id, state, broker_order_id FROM "
                                  "trading.broker_orders").df()  # fmt: skip
            result.ledger_rows = len(ledger)
            sent_ids = ledger["broker_order_id"].fillna("").astype(str).str.strip()
            result.ledger_sent = int((sent_ids != "").sum())
            result.ledger_duplicates = int(ledger["signal_id"].duplicated().sum())
            result.ledger_states = ledger["state"].value_counts().to_dict()
    result.daemon_log = grep_daemon_log(home / "daemon.log")
    return result


def report(result: LoadResult, wall_s: float) -> list[str]:
    """The printed figures, one line each."""
    by_minute = result.intraday_by_minute()
    executes = result.execute_by_minute()
    expected = result.actionable_minutes
    launched = [m for m in expected if executes.get(m)]
    exec_ok = [m for m in expected if any(r.status == "SUCCESS" for r in executes.get(m, []))]
    twice = [m for m, rs in executes.items() if len(rs) > 1]
    handled, unhandled = result.lock_counts()
    pg = sum(len(r.pg_errors) for r in [*result.intraday, *result.execute])
    longest = max((r.lock_wait_max_s for r in [*result.intraday, *result.execute]), default=0.0)
    durations = [r.ended - r.started for r in result.intraday if r.started and r.ended]
    queue_wait = [r.started - r.created for r in result.intraday if r.started]
    ex_durations = [r.ended - r.started for r in result.execute if r.started and r.ended]
    ex_wait = [r.started - r.created for r in result.execute if r.started]
    extra = sum(max(0, len(rs) - 1) for rs in by_minute.values())
    missing = result.failed + result.lost
    lines = [
        f"session {result.session} {result.first[-5:]}..{result.last[-5:]}, {result.tickers} "
        f"tickers, {result.speed:g}x (a minute every {60 / result.speed:.1f} s)",
        f"minutes ticked: {len(result.ticks)} (tick loop {result.tick_loop_s:.0f} s, max "
        f"lateness {max((t.late_s for t in result.ticks), default=0):.1f} s)",
        f"intraday runs requested / succeeded / failed / lost: {len(result.ticks)} / "
        f"{len(result.succeeded)} / {len(result.failed)} / {len(result.lost)}"
        + (f" (extra runs for a minute: {extra})" if extra else ""),
        f"minutes without a successful intraday run: {len(result.ticks) - len(result.succeeded)}"
        + (f" ({', '.join(m[-5:] for m in missing)})" if missing else ""),
        f"execute_signals runs expected (actionable minutes) / launched / succeeded: "
        f"{len(expected)} / {len(launched)} / {len(exec_ok)}"
        + (f"; minutes with 2+ runs: {twice}" if twice else ""),
        f"orders at the broker / ledger rows (with a broker order) / duplicates: {result.orders} "
        f"/ {result.ledger_rows} ({result.ledger_sent}) / "
        f"{result.order_duplicates + result.ledger_duplicates}; ledger states "
        f"{result.ledger_states}",
        f"lock conflicts in run logs: handled (waited, then opened) {handled}, longest wait "
        f"{longest:.1f} s / unhandled {unhandled}; Postgres errors {pg}; daemon log "
        f"{result.daemon_log or 'clean'}",
        f"queue backlog max: {result.backlog_max} queued runs; drained: {result.drained} "
        f"({result.drain_s:.0f} s after the last tick)",
        f"intraday run duration (start -> end) p50 / p95: {nearest_rank(durations, 0.5):.1f} / "
        f"{nearest_rank(durations, 0.95):.1f} s; queued -> started p50 / p95: "
        f"{nearest_rank(queue_wait, 0.5):.1f} / {nearest_rank(queue_wait, 0.95):.1f} s",
        f"execute_signals run duration p50 / p95: {nearest_rank(ex_durations, 0.5):.1f} / "
        f"{nearest_rank(ex_durations, 0.95):.1f} s; queued -> started p50 / p95: "
        f"{nearest_rank(ex_wait, 0.5):.1f} / {nearest_rank(ex_wait, 0.95):.1f} s",
        f"wall time: {wall_s:.0f} s (warm-up {result.warmup_s:.0f} s)",
    ]
    for r in [*result.intraday, *result.execute]:
        for text in r.unhandled_locks[:2]:
            lines.append(f"  unhandled lock error in {r.job} {r.minute}: {text[:300]}")
    for r in result.intraday:
        if r.status == "FAILURE":
            lines.append(f"  failed {r.job} {r.minute}: {r.failure[:300]}")
    return lines
