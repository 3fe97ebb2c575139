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

from jobs.schedules import FLATTEN_MINUTES_BEFORE_CLOSE, flatten_schedule, intraday_schedule
from trading_assets.partitions import PARTITION_FMT, session_bounds, session_minutes

NY = "America/New_York"
REPO_ROOT = Path(__file__).resolve().parents[1]
REPLAY_TAG = {"trading/replay": "true"}
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def key(minute: pd.Timestamp) -> str:
    return minute.strftime(PARTITION_FMT)


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
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        try:
            rows = conn.execute(
                "SELECT DISTINCT minute FROM trading.debate WHERE debated AND action <> 'HOLD' "
                "AND minute BETWEEN ? AND ?",
                [first.to_pydatetime(), last.to_pydatetime()],
            ).fetchall()
        except duckdb.CatalogException:
            return set()
    return {pd.Timestamp(r[0]) for r in rows}


def scheduled(schedule, at: pd.Timestamp) -> dict[str, str]:
    """The run tags `schedule` asks for at `at` (UTC): the replay runs what the schedule
    would, so its calendar and tags are the ones exercised. A skip here is a replay bug."""
    from dagster import RunRequest, build_schedule_context

    context = build_schedule_context(scheduled_execution_time=at.to_pydatetime())
    request = schedule(context)
    if not isinstance(request, RunRequest):
        raise RuntimeError(f"{schedule.name} skipped at {at}: {request}")
    partition = {"dagster/partition": request.partition_key} if request.partition_key else {}
    return {**request.tags, **partition, **REPLAY_TAG}


def wait_for_execution(instance, partition: str, timeout_s: float = 240.0):
    """The finished execute_signals run the sensor launched for `partition`."""
    from dagster import RunsFilter

    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        records = instance.get_run_records(
            RunsFilter(job_name="execute_signals", tags={"dagster/partition": partition})
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
    jobs = {
        name: defs.resolve_job_def(name)
        for name in (
            "ingest_job",
            "research_job",
            "intraday_job",
            "decision_job",
            "execute_signals",
            "close_all_positions",
        )
    }
    from resources.warehouse import warehouse_path

    warehouse = warehouse_path()

    def run(job: str, tags: dict[str, str]) -> object:
        result = jobs[job].execute_in_process(
            instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
        )
        if not result.success:
            raise RuntimeError(f"{job} {tags} failed (run {result.run_id}); see the Dagster UI")
        return result

    def ranged(a: pd.Timestamp, b: pd.Timestamp) -> dict[str, str]:
        return {
            "dagster/asset_partition_range_start": key(a),
            "dagster/asset_partition_range_end": key(b),
        }

    set_clock(utc(minutes[0]))  # the broker's clock never goes back: `move` below
    env = dict(os.environ)
    with daemon(env, log) as proc:
        # history for the indicators: the previous session's ingest (and this one's up to lo)
        started = time.perf_counter()
        previous = session_minutes(
            (pd.Timestamp(session) - pd.Timedelta(days=7)).strftime("%Y-%m-%d"),
            (pd.Timestamp(session) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
        )
        warm_from = previous[previous >= previous[-1].normalize()][0]
        log(f"warm-up: ingest {key(warm_from)} .. {key(minutes[0] - pd.Timedelta(minutes=1))}")
        if minutes[0] > bounds[0]:
            run("ingest_job", ranged(warm_from, minutes[0] - pd.Timedelta(minutes=1)))
        else:
            run("ingest_job", ranged(warm_from, previous[-1]))
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
                    else {"dagster/partition": key(quiet[0])}
                )
                tags = scheduled(intraday_schedule, utc(quiet[-1]) + pd.Timedelta(minutes=1))
                tags.pop("dagster/partition")
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
            run("close_all_positions", scheduled(flatten_schedule, utc(flatten_at)))
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
