"""Replay one bundled real session as if live: the real daemon, the sensor, the paper broker.

The driver stands in for the wall clock and the intraday schedule; everything downstream of a
decision is the production path. Per session minute m, in order:

1. the embedded paper broker's clock moves to m + 1 min (bar m has closed; fills up to it settle);
2. `trade_signals` is materialized for m alone, tagged live, its portfolio taken from the broker;
3. the **real `dagster-daemon`** evaluates `trade_signal_sensor`, which launches
   `execute_signals` for m; the op re-checks and sends bracket orders to the paper broker over
   HTTP through alpaca-py. The driver waits for that run before moving the clock on, as the
   market would not wait but a replay must (it is faster than real time).

The research layer (ingest through the debate) is materialized first, in one run per session,
because it does not depend on the book and the point-in-time contracts make a minute's rows the
same whenever they are computed (`--intraday-window` runs the full `intraday_job` per minute
instead, the schedule's own path, to measure each stage). Minutes without a BUY/SELL verdict have
nothing to decide, so consecutive quiet minutes get one `trade_signals` run. At the end the
flatten schedule's job closes the book five minutes before the close and the ledger schedule's
run records every signal's final state.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from statistics import median

import duckdb
import pandas as pd

from jobs.schedules import FLATTEN_MINUTES_BEFORE_CLOSE, flatten_schedule_for, intraday_schedule
from resources.duckdb_locks import connect
from trading_assets.partitions import (
    PARTITION_TAG,
    MinuteSpan,
    minute_key,
    session_bounds,
    session_minutes,
)

NY = "America/New_York"
REPO_ROOT = Path(__file__).resolve().parents[1]
REPLAY_TAG = {"trading/replay": "true"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


key = minute_key


def utc(minute: pd.Timestamp) -> pd.Timestamp:
    return minute.tz_localize(NY).tz_convert("UTC")


@dataclass
class Stage:
    """Timings of one decided minute (seconds of wall time)."""

    minute: str
    signals_s: float  # the trade_signals run (or the intraday run), from the minute's close
    actionable: int
    sensor_s: float = float("nan")  # signals run done -> execute_signals run created
    launch_s: float = float("nan")  # run created -> run started (daemon launch, process start)
    execute_s: float = float("nan")  # run started -> run finished (incl. the broker calls)
    to_order_s: float = float("nan")  # the minute's close -> its order at the broker


@dataclass
class ReplayResult:
    session: str
    first: str
    last: str
    research_s: float
    stages: list[Stage] = field(default_factory=list)
    execute_runs: int = 0


@contextmanager
def daemon(env: dict[str, str], log: Callable[[str], None]) -> Iterator[subprocess.Popen]:
    """`dagster-daemon run` in its own process group, stopped (group-killed) on exit."""
    exe = Path(sys.executable).with_name("dagster-daemon")
    logfile = Path(env["DAGSTER_HOME"]) / "daemon.log"
    with open(logfile, "ab") as out:
        proc = subprocess.Popen(
            [str(exe), "run", "-w", str(REPO_ROOT / "workspace.yaml")],
            cwd=REPO_ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    log(f"dagster-daemon pid {proc.pid} (log {logfile})")
    try:
        yield proc
    finally:
        with suppress(ProcessLookupError):  # the daemon ignores SIGTERM when backgrounded
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def wait_for_signal_sensor(instance, proc: subprocess.Popen, timeout_s: float = 180.0) -> float:
    """Seconds until the daemon has evaluated `trade_signal_sensor` once: its first tick only
    sets the cursor after the newest event, so decisions must not start before it."""
    from dagster._core.definitions.run_request import InstigatorType

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if proc.poll() is not None:
            raise RuntimeError(f"dagster-daemon exited with {proc.returncode}; see daemon.log")
        for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            data = state.instigator_data
            if state.instigator_name == "trade_signal_sensor" and data and data.cursor:
                return time.perf_counter() - started
        time.sleep(0.5)
    raise TimeoutError(f"trade_signal_sensor was not evaluated within {timeout_s:.0f} s")


def proposal_minutes(warehouse: Path, first: pd.Timestamp, last: pd.Timestamp) -> set[pd.Timestamp]:
    """Minutes with a debated BUY/SELL verdict: the only ones with something to decide (none
    before the research has run: the intraday window decides every minute itself)."""
    with connect(warehouse, read_only=True) as conn:  # waits out a run's write lock
        try:
            rows = conn.execute(
                "SELECT DISTINCT minute FROM trading.debate WHERE debated AND action <> 'HOLD' "
                "AND minute BETWEEN ? AND ?",
                [first.to_pydatetime(), last.to_pydatetime()],
            ).fetchall()
        except duckdb.CatalogException:
            return set()
    return {pd.Timestamp(r[0]) for r in rows}


def run_range(defs, instance, job: str, a: pd.Timestamp, b: pd.Timestamp) -> None:
    """`job` over the minutes [a, b] in this process (a replay's warm-up and research): one
    run per stretch a run may cover (`MinuteSpan.covering`); raises naming a run that fails."""
    for span in MinuteSpan.covering(a, b):
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, tags={**span.tags, **REPLAY_TAG}, run_config=QUIET,
            raise_on_error=False,
        )  # fmt: skip
        if not result.success:
            raise RuntimeError(f"{job} {key(span.first)}..{key(span.last)} failed "
                               f"(run {result.run_id})")  # fmt: skip


def scheduled(schedule, at: pd.Timestamp) -> dict[str, str]:
    """The run tags `schedule` asks for at `at` (UTC): the replay runs what the schedule
    would, so its calendar and tags are the ones exercised. A skip here is a replay bug."""
    from dagster import RunRequest, build_schedule_context

    context = build_schedule_context(scheduled_execution_time=at.to_pydatetime())
    request = schedule(context)
    if not isinstance(request, RunRequest):
        raise RuntimeError(f"{schedule.name} skipped at {at}: {request}")
    partition = {PARTITION_TAG: request.partition_key} if request.partition_key else {}
    return {**request.tags, **partition, **REPLAY_TAG}


def wait_for_execution(instance, partition: str, timeout_s: float = 240.0):
    """The finished execute_signals run the sensor launched for `partition`."""
    from dagster import RunsFilter

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        records = instance.get_run_records(
            RunsFilter(job_name="execute_signals", tags={PARTITION_TAG: partition})
        )
        if records and records[0].dagster_run.is_finished:
            return records[0]
        time.sleep(0.2)
    raise TimeoutError(f"no finished execute_signals run for {partition} within {timeout_s} s")


def replay(
    session: str,
    *,
    set_clock: Callable[[pd.Timestamp], object],
    first: str | None = None,
    last: str | None = None,
    intraday_window: tuple[str, str] | None = None,
    log: Callable[[str], None] = print,
) -> ReplayResult:
    """Run the session [first, last] (HH:MM, default the whole session) against the broker
    whose simulated clock `set_clock` moves. DAGSTER_HOME, TRADING_BROKER_URL and the other
    TRADING_* variables must already be set: the daemon and its runs read the environment."""
    from dagster import DagsterInstance

    from trading_assets.definitions import build_definitions

    defs = build_definitions()  # now: the broker URL and warehouse come from the environment

    bounds = session_bounds(session)
    if bounds is None:
        raise SystemExit(f"{session} is not an NYSE session")
    minutes = session_minutes(session, session)
    lo = pd.Timestamp(f"{session} {first}") if first else minutes[0]
    hi = pd.Timestamp(f"{session} {last}") if last else minutes[-1]
    minutes = minutes[(minutes >= lo) & (minutes <= hi)]
    if minutes.empty:
        raise SystemExit(f"no session minutes in {first}..{last} on {session}")
    window = (
        (
            pd.Timestamp(f"{session} {intraday_window[0]}"),
            pd.Timestamp(f"{session} {intraday_window[1]}"),
        )
        if intraday_window
        else None
    )
    instance = DagsterInstance.get()
    from resources.warehouse import warehouse_path
    from trading_assets.location_runs import LocationRuns

    warehouse = warehouse_path()

    def run(job: str, tags: dict[str, str]) -> object:
        """The code location's run, in this process (the UI lists it under its job)."""
        result = location.run(job, tags, QUIET)
        if not result.success:
            raise RuntimeError(f"{job} {tags} failed (run {result.run_id}); see the Dagster UI")
        return result

    def ranged(a: pd.Timestamp, b: pd.Timestamp) -> dict[str, str]:
        return MinuteSpan(a, b).tags  # minutes of one session

    set_clock(utc(minutes[0]))  # the broker's clock never goes back: `move` below
    env = dict(os.environ)
    with LocationRuns(instance, defs) as location, daemon(env, log) as proc:
        # history for the indicators: the previous session's ingest (and this one's up to lo)
        started = time.perf_counter()
        previous = session_minutes(
            (pd.Timestamp(session) - pd.Timedelta(days=7)).strftime("%Y-%m-%d"),
            (pd.Timestamp(session) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
        )
        warm_from = previous[previous >= previous[-1].normalize()][0]
        warm_to = minutes[0] - pd.Timedelta(minutes=1) if minutes[0] > bounds[0] else previous[-1]
        log(f"warm-up: ingest {key(warm_from)} .. {key(warm_to)}")
        for span in MinuteSpan.covering(warm_from, warm_to):
            run("ingest_job", span.tags)
        research_to = minutes[-1] if window is None else window[0] - pd.Timedelta(minutes=1)
        if research_to >= minutes[0]:
            log(f"research (ingest .. debate) {key(minutes[0])} .. {key(research_to)} in one run")
            run("research_job", ranged(minutes[0], research_to))
        if window is not None and minutes[-1] > window[1]:
            run("research_job", ranged(window[1] + pd.Timedelta(minutes=1), minutes[-1]))
        result = ReplayResult(
            session, key(minutes[0]), key(minutes[-1]), time.perf_counter() - started
        )
        ready = wait_for_signal_sensor(instance, proc)
        log(f"trade_signal_sensor is watching ({ready:.1f} s); replaying {len(minutes)} minutes")
        decide = proposal_minutes(warehouse, minutes[0], minutes[-1])
        quiet: list[pd.Timestamp] = []

        def flush() -> None:
            if quiet:
                span = (
                    ranged(quiet[0], quiet[-1])
                    if len(quiet) > 1
                    else {PARTITION_TAG: key(quiet[0])}
                )
                tags = scheduled(intraday_schedule, utc(quiet[-1]) + pd.Timedelta(minutes=1))
                tags.pop(PARTITION_TAG)
                run("decision_job", {**tags, **span})
                quiet.clear()

        flatten_at = bounds[1] - pd.Timedelta(minutes=FLATTEN_MINUTES_BEFORE_CLOSE)
        flattened = False
        clock = utc(minutes[0])

        def move(to: pd.Timestamp) -> None:
            nonlocal clock
            clock = max(clock, to)
            set_clock(clock)

        def flatten() -> None:
            """The flatten schedule's tick: close_all_positions at its time."""
            nonlocal flattened
            flush()
            move(utc(flatten_at))
            run("close_all_positions", scheduled(flatten_schedule_for(bounds[1]), utc(flatten_at)))
            flattened = True

        for minute in minutes:
            if not flattened and minute + pd.Timedelta(minutes=1) > flatten_at:
                flatten()
            in_window = window is not None and window[0] <= minute <= window[1]
            if minute not in decide and not in_window:
                quiet.append(minute)
                continue
            flush()
            closed_at = time.time()  # wall clock: the run records' times are wall clock too
            tick = utc(minute) + pd.Timedelta(minutes=1)
            move(tick)
            tags = scheduled(intraday_schedule, tick)
            outcome = run("intraday_job" if in_window else "decision_job", tags)
            done = time.time()
            meta = _signal_metadata(outcome)
            stage = Stage(key(minute), done - closed_at, int(meta.get("actionable", 0)))
            if stage.actionable:
                record = wait_for_execution(instance, key(minute))
                result.execute_runs += 1
                created = record.create_timestamp.timestamp()
                started_run = record.start_time or created
                ended = record.end_time or started_run
                stage.sensor_s = created - done
                stage.launch_s = started_run - created
                stage.execute_s = ended - started_run
                stage.to_order_s = ended - closed_at
                log(
                    f"{key(minute)}: {stage.actionable} actionable -> execute_signals "
                    f"{record.dagster_run.status.value} (close->order {stage.to_order_s:.1f} s)"
                )
            result.stages.append(stage)
        flush()
        if not flattened and minutes[-1] + pd.Timedelta(minutes=1) >= flatten_at:
            flatten()
        # the ledger schedule's run: every row of the day to its state after the last fills
        move(utc(min(minutes[-1] + pd.Timedelta(minutes=2), bounds[1])))
        run("execute_signals", ranged(minutes[0], minutes[-1]))
    return result


def _signal_metadata(outcome) -> dict[str, object]:
    """trade_signals' materialization metadata from an in-process result."""
    for event in outcome.get_asset_materialization_events():
        if event.asset_key.to_user_string() == "trade_signals":
            return {k: v.value for k, v in event.materialization.metadata.items()}
    return {}


def summarize(stages: list[Stage]) -> dict[str, float]:
    """Median and max per stage over the minutes that sent orders."""
    sent = [s for s in stages if s.actionable]
    out: dict[str, float] = {}
    for name in ("signals_s", "sensor_s", "launch_s", "execute_s", "to_order_s"):
        values = [getattr(s, name) for s in sent if getattr(s, name) == getattr(s, name)]
        if values:
            out[f"{name}_median"] = median(values)
            out[f"{name}_max"] = max(values)
    return out


# --- the real schedule: the daemon ticks the replayed minutes at real speed ---------------------

CLOCK_LEAD_S = 2.0  # the clock jumps this long before a wall minute, to just before the close
CLOCK_PERIOD_S = 0.2  # how often the replay's clock is moved between jumps (submitted_at grain)
# The clock runs this far ahead of the wall: the scheduler evaluates its tick milliseconds after
# the wall minute, and a clock moved every CLOCK_PERIOD_S (each move settles the books) would
# still read the previous minute then. Every stamp read back is shifted by it (`to_wall`).
CLOCK_AHEAD_S = 1.0


@dataclass
class Segment:
    """Replayed minute `minute` closes at wall time `wall_close`; the clock runs at real speed."""

    minute: pd.Timestamp  # naive NY, the bar that closes
    wall_close: float  # time.time() of its close = the cron tick of the real schedule

    @property
    def close_utc(self) -> pd.Timestamp:
        return utc(self.minute) + pd.Timedelta(minutes=1)

    def replayed(self, wall: float) -> pd.Timestamp:
        return self.close_utc + pd.Timedelta(seconds=wall - self.wall_close + CLOCK_AHEAD_S)


def to_wall(segments: list[Segment], replayed: pd.Timestamp) -> float | None:
    """The wall time at which the broker's clock read `replayed` (None outside segments)."""
    for s in segments:
        lag = (replayed - s.close_utc).total_seconds() - CLOCK_AHEAD_S
        if -CLOCK_LEAD_S <= lag < 60.0 - CLOCK_LEAD_S:
            return s.wall_close + lag
    return None


class RunningClock:
    """Moves the broker's clock with the wall clock, one replayed minute per wall minute: segment
    k's minute closes exactly at a wall-minute boundary (the schedule's cron tick), and the clock
    jumps forward over the minutes between segments `CLOCK_LEAD_S` before that boundary. A thread
    sets the clock every `CLOCK_PERIOD_S`, so the broker's timestamps (submitted_at) are wall
    time shifted per segment, `to_wall` inverts that."""

    def __init__(self, set_clock: Callable[[pd.Timestamp], object], minutes, start_in_s: float):
        import threading

        now = time.time()
        first = (int(now + start_in_s + CLOCK_LEAD_S) // 60 + 1) * 60  # a wall-minute boundary
        self.segments = [Segment(m, first + 60.0 * i) for i, m in enumerate(minutes)]
        self._set = set_clock
        self._stop = threading.Event()
        self._last: pd.Timestamp | None = None
        self._thread = threading.Thread(target=self._run, name="replay-clock", daemon=True)

    def current(self, wall: float) -> Segment | None:
        started = [s for s in self.segments if wall >= s.wall_close - CLOCK_LEAD_S]
        return started[-1] if started else None

    def to_wall(self, replayed: pd.Timestamp) -> float | None:
        return to_wall(self.segments, replayed)

    def _run(self) -> None:
        while not self._stop.wait(CLOCK_PERIOD_S):
            wall = time.time()
            segment = self.current(wall)
            if segment is None:
                continue
            target = segment.replayed(wall).floor("ms")
            if self._last is None or target > self._last:
                self._set(target)
                self._last = target

    def __enter__(self) -> RunningClock:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


@dataclass
class LiveMinute:
    """One replayed minute through the real daemon: wall-clock stamps (time.time())."""

    minute: str
    close: float
    intraday: dict[str, float] = field(default_factory=dict)  # event -> time
    steps: dict[str, float] = field(default_factory=dict)  # step key -> seconds
    actionable: int = 0
    execute: dict[str, float] = field(default_factory=dict)
    execute_steps: dict[str, float] = field(default_factory=dict)
    orders: list[float] = field(default_factory=list)  # wall times of its orders at the broker
    status: str = ""


RUN_EVENTS = ("RUN_ENQUEUED", "RUN_DEQUEUED", "RUN_STARTING", "RUN_START", "RUN_SUCCESS",
              "RUN_FAILURE")  # fmt: skip


def run_timeline(instance, record) -> tuple[dict[str, float], dict[str, float]]:
    """(run-level stamps incl. `created`, step key -> seconds) from the instance's records."""
    stamps = {"created": record.create_timestamp.timestamp()}
    opened: dict[str, float] = {}
    steps: dict[str, float] = {}
    for entry in instance.all_logs(record.dagster_run.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type.name  # RUN_START (its value is the legacy PIPELINE_START)
        if kind in RUN_EVENTS:
            stamps.setdefault(kind, entry.timestamp)
        elif kind == "STEP_START":
            opened[event.step_key] = entry.timestamp
            stamps.setdefault("first_step", entry.timestamp)
        elif kind in ("STEP_SUCCESS", "STEP_FAILURE") and event.step_key in opened:
            steps[event.step_key] = entry.timestamp - opened[event.step_key]
            stamps["last_step"] = entry.timestamp
    return stamps, steps


def replay_schedule(
    session: str,
    *,
    set_clock: Callable[[pd.Timestamp], object],
    orders: Callable[[], list[dict]],
    first: str,
    last: str,
    skip_quiet: bool = False,
    log: Callable[[str], None] = print,
    run_timeout_s: float = 300.0,
) -> list[LiveMinute]:
    """The window [first, last] of `session` through the real daemon's `intraday_schedule`.

    Research for the window is materialized first in one run (in process): the history every
    minute reads, and which minutes have a debated BUY/SELL. Then the daemon starts with
    `TRADING_REPLAY_CLOCK=broker`: its schedule ticks every wall minute and reads the broker's
    clock, which `RunningClock` runs at real speed, one session minute per wall minute.
    `skip_quiet` ticks only the minutes with a BUY/SELL verdict, the clock jumping over the
    others: quicker, but a run still going at the jump sees the market minutes ahead (one that
    outlives a wall minute can fail trade_signals' "minute just closed" guard), so the default
    is real time throughout. The schedule's `intraday_job` run, the sensor and
    `execute_signals` are the daemon's. `orders()` lists the broker's orders afterwards
    (submitted_at on its clock)."""
    from dagster import DagsterInstance, RunsFilter

    from jobs.schedules import REPLAY_CLOCK_ENV
    from resources.warehouse import warehouse_path
    from trading_assets.definitions import build_definitions

    if os.environ.get(REPLAY_CLOCK_ENV) != "broker":
        raise RuntimeError(f"{REPLAY_CLOCK_ENV}=broker must be set for the daemon's schedule")
    defs = build_definitions()
    instance = DagsterInstance.get()
    minutes = session_minutes(session, session)
    lo, hi = pd.Timestamp(f"{session} {first}"), pd.Timestamp(f"{session} {last}")
    minutes = minutes[(minutes >= lo) & (minutes <= hi)]
    if minutes.empty:
        raise SystemExit(f"no session minutes in {first}..{last} on {session}")

    previous = session_minutes(
        (pd.Timestamp(session) - pd.Timedelta(days=7)).strftime("%Y-%m-%d"),
        (pd.Timestamp(session) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
    )
    warm_from = previous[previous >= previous[-1].normalize()][0]
    started = time.perf_counter()
    opened = session_minutes(session, session)[0]
    run_range(defs, instance, "ingest_job", warm_from,
              minutes[0] - pd.Timedelta(minutes=1) if minutes[0] > opened
              else previous[-1])  # fmt: skip
    run_range(defs, instance, "research_job", minutes[0], minutes[-1])
    log(f"warm-up and research {key(warm_from)} .. {key(minutes[-1])}: "
        f"{time.perf_counter() - started:.0f} s")  # fmt: skip
    decided = proposal_minutes(warehouse_path(), minutes[0], minutes[-1])
    ticked = [m for m in minutes if m in decided] if skip_quiet else list(minutes)
    if not ticked:
        raise SystemExit(f"no debated BUY/SELL in {first}..{last}: nothing would be decided")
    log(f"ticking {len(ticked)} minutes: " + ", ".join(f"{m:%H:%M}" for m in ticked))
    with daemon(dict(os.environ), log) as proc:
        ready = wait_for_signal_sensor(instance, proc)
        log(f"trade_signal_sensor is watching ({ready:.1f} s after the daemon started)")
        with RunningClock(set_clock, ticked, start_in_s=3.0) as clock:
            span = [time.strftime("%H:%M:%S", time.localtime(s.wall_close)) for s in clock.segments]
            log(f"closes at wall {span[0]} .. {span[-1]}, one a minute")
            out = [LiveMinute(key(s.minute), s.wall_close) for s in clock.segments]
            for item in out:  # each minute's runs, as they finish
                deadline = item.close + run_timeout_s
                record = execute = None
                while time.time() < deadline:
                    records = instance.get_run_records(
                        RunsFilter(job_name="intraday_job", tags={PARTITION_TAG: item.minute})
                    )
                    if records and records[0].dagster_run.is_finished:
                        record = records[0]
                        break
                    time.sleep(0.5)
                if record is None:
                    item.status = "no finished intraday run"
                    log(f"{item.minute}: {item.status}")
                    continue
                item.intraday, item.steps = run_timeline(instance, record)
                item.status = record.dagster_run.status.value
                item.actionable = _actionable(instance, record.dagster_run.run_id)
                while item.actionable and time.time() < deadline:
                    records = instance.get_run_records(
                        RunsFilter(job_name="execute_signals", tags={PARTITION_TAG: item.minute})
                    )
                    if records and records[0].dagster_run.is_finished:
                        execute = records[0]
                        break
                    time.sleep(0.5)
                if execute is not None:
                    item.execute, item.execute_steps = run_timeline(instance, execute)
                ran = f", execute_signals {execute.dagster_run.status.value}" if execute else ""
                log(f"{item.minute}: intraday {item.status}, {item.actionable} actionable{ran}")
        assign_orders(out, [clock.to_wall(stamp) for stamp in signal_orders(orders())])
    return out


def signal_orders(orders: list[dict]) -> list[pd.Timestamp]:
    """submitted_at (UTC, the broker's clock) of the bracket orders that signals sent."""
    return [
        pd.Timestamp(o["submitted_at"]).tz_convert("UTC")
        for o in orders
        if str(o.get("client_order_id", "")).startswith("sig-")
    ]


def assign_orders(minutes: list[LiveMinute], walls: list[float | None]) -> None:
    """Each order (wall time) to the minute whose execute_signals run was running when it was
    sent (a slow minute's order may come after the next minute's close)."""
    for wall in walls:
        if wall is None:
            continue
        for item in minutes:
            ex = item.execute
            start, end = ex.get("RUN_START"), ex.get("RUN_SUCCESS", ex.get("RUN_FAILURE"))
            if start is not None and start - 0.5 <= wall <= (end or start + 600) + 0.5:
                item.orders.append(wall)
                break


def collect_minutes(instance, closes: dict[str, float]) -> list[LiveMinute]:
    """LiveMinute per partition key in `closes` (key -> wall time of its close) from the
    instance's finished intraday_job and execute_signals runs (no orders assigned)."""
    from dagster import RunsFilter

    out = []
    for minute, close in closes.items():
        item = LiveMinute(minute, close)
        tags = {PARTITION_TAG: minute}
        records = instance.get_run_records(RunsFilter(job_name="intraday_job", tags=tags))
        if records and records[0].dagster_run.is_finished:
            item.intraday, item.steps = run_timeline(instance, records[0])
            item.status = records[0].dagster_run.status.value
            item.actionable = _actionable(instance, records[0].dagster_run.run_id)
        records = instance.get_run_records(RunsFilter(job_name="execute_signals", tags=tags))
        if records and records[0].dagster_run.is_finished:
            item.execute, item.execute_steps = run_timeline(instance, records[0])
        out.append(item)
    return out


def _actionable(instance, run_id: str) -> int:
    """trade_signals' `actionable` metadata in run `run_id` (0 without a materialization)."""
    from dagster import AssetKey, AssetRecordsFilter

    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=AssetKey("trade_signals")), limit=50
    ).records
    for record in records:
        if record.run_id == run_id and record.asset_materialization is not None:
            entry = record.asset_materialization.metadata.get("actionable")
            return int(entry.value) if entry is not None else 0
    return 0
