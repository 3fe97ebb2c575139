"""Kill a backtest backfill mid-run, rerun it, compare with an uninterrupted run.

Shared by tests/graph/test_crash_safe_backfill.py and benchmarks/crash_backfill.py. A "site" is
what one deployment has: a Dagster home (a throw-away Postgres instance), a DuckDB warehouse and
a data folder (the chart). The killed run is `dagster job execute` of `backtest_job` over the
range in its own process group, tagged the way Dagster's backfill daemon tags the single run of
a single-run-policy backfill (`dagster/backfill` and the partition range); it is SIGKILLed once
the instance's event log shows a chosen set of assets materialized, then marked failed the way
run monitoring marks a run whose worker died.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Definitions,
    RunsFilter,
)

from tests.graph.conftest import QUIET, throwaway_postgres_instance
from trading_assets.event_writes import apply_event_writes

REPO = Path(__file__).resolve().parents[2]
DAGSTER = REPO / ".venv" / "bin" / "dagster"
RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
BACKFILL = "dagster/backfill"

# Columns that legitimately differ between two runs of the same range: the run that wrote the
# row, and when an LLM answer was recorded (the rules backend records none; kept for models).
VOLATILE_COLUMNS = frozenset({"run_id", "created_at"})
# What identifies one row of a table: a second row with the same key is a duplicate copy.
NATURAL_KEYS: dict[str, tuple[str, ...]] = {
    "trading.bars": ("ticker", "minute"),
    "trading.technical_analysis": ("ticker", "minute"),
    "trading.fundamental_analysis": ("ticker", "minute"),
    "trading.sentiment_analysis": ("ticker", "minute"),
    "trading.macro_analysis": ("ticker", "minute"),
    "trading.debate_triggers": ("ticker", "minute"),
    "trading.bull_case": ("ticker", "minute"),
    "trading.bear_case": ("ticker", "minute"),
    "trading.debate": ("ticker", "minute"),
    "trading.trade_signals": ("signal_id",),
    "trading.backtest_fills": ("trade_id", "reason", "minute"),
    "trading.llm_cache": ("key",),
}


@dataclass
class Site:
    """One deployment: instance home, warehouse and data folder under `root`."""

    root: Path
    instance: DagsterInstance | None = None

    @property
    def home(self) -> Path:
        return self.root / "home"

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    def env(self) -> dict[str, str]:
        """The environment a run of this site's code location gets."""
        env = {
            **os.environ,
            "DAGSTER_HOME": str(self.home),
            "TRADING_DATA_DIR": str(self.data),
            "TRADING_WAREHOUSE": str(self.warehouse),
        }
        apply_event_writes(env)
        return env

    @contextmanager
    def using(self) -> Iterator[None]:
        """This site's folders for an in-process run (the chart is written under data_dir())."""
        saved = {k: os.environ.get(k) for k in ("TRADING_DATA_DIR", "TRADING_WAREHOUSE")}
        os.environ.update(TRADING_DATA_DIR=str(self.data), TRADING_WAREHOUSE=str(self.warehouse))
        try:
            yield
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@contextmanager
def sites(root: Path, *names: str) -> Iterator[list[Site]]:
    """Sites with a throw-away Postgres instance each (dropped on exit)."""
    with ExitStack() as stack:
        out = []
        for name in names:
            site = Site(root / name)
            site.home.mkdir(parents=True)
            site.data.mkdir(parents=True)
            site.instance, _ = stack.enter_context(throwaway_postgres_instance(site.home))
            out.append(site)
        yield out


def copy_warehouse(source: Site, target: Site) -> None:
    """Start `target` from `source`'s warehouse (the same warm-up history)."""
    shutil.copyfile(source.warehouse, target.warehouse)


def run_in_process(defs: Definitions, site: Site, job: str, first: str = "", last: str = ""):
    """One run of `job` (over [first, last] when given) on the site, in this process."""
    tags = {RANGE_START: first, RANGE_END: last} if first else {}
    with site.using():
        return defs.resolve_job_def(job).execute_in_process(
            instance=site.instance, tags=tags, run_config=QUIET, raise_on_error=False
        )


@dataclass
class Kill:
    """What a killed run had done when it died."""

    run_id: str
    materialized: list[str]  # assets with a materialization in the run, in event order
    seconds: float  # from launch to the kill
    killed: bool = True  # False: the run ended before the kill point
    status: DagsterRunStatus | None = None  # what the instance showed after the kill


class Materialized:
    """Assets a run has stored a materialization of, in the order stored; read incrementally
    (a cursor), so polling does not re-read the run's thousands of events each time."""

    def __init__(self, instance: DagsterInstance, run_id: str) -> None:
        self.instance, self.run_id = instance, run_id
        self.cursor: str | None = None
        self.assets: dict[str, None] = {}

    def poll(self) -> list[str]:
        while True:
            page = self.instance.get_records_for_run(
                self.run_id,
                cursor=self.cursor,
                of_type=DagsterEventType.ASSET_MATERIALIZATION,
                limit=5_000,
            )
            for record in page.records:
                key = record.event_log_entry.get_dagster_event().asset_key
                if key is not None:
                    self.assets.setdefault(key.to_user_string(), None)
            self.cursor = page.cursor
            if not page.has_more:
                return list(self.assets)


def launch_backfill_run(site: Site, first: str, last: str, backfill_id: str) -> subprocess.Popen:
    """`dagster job execute` of backtest_job over the range, tagged as backfill `backfill_id`,
    in its own process group (the CLI ignores SIGTERM; we stop it with SIGKILL)."""
    tags = {RANGE_START: first, RANGE_END: last, BACKFILL: backfill_id}
    command = [str(DAGSTER), "job", "execute", "-m", "trading_assets.definitions"]
    command += ["-j", "backtest_job", "--tags", json.dumps(tags)]
    log = (site.root / f"{backfill_id}.log").open("ab")
    return subprocess.Popen(
        command,
        cwd=REPO,
        env=site.env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL the process group we started (a no-op when it already ended)."""
    with suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=30)


def run_of(instance: DagsterInstance, backfill_id: str) -> DagsterRun | None:
    runs = instance.get_runs(filters=RunsFilter(tags={BACKFILL: backfill_id}), limit=1)
    return runs[0] if runs else None


def kill_when(
    site: Site,
    first: str,
    last: str,
    ready: Callable[[list[str], float], bool],
    timeout_s: float = 600.0,
    poll_s: float = 0.05,
) -> Kill:
    """Launch the backfill run and SIGKILL it as soon as `ready(materialized assets, seconds
    since the run was created)` holds. When the run ends first, the Kill says `killed=False`."""
    assert site.instance is not None
    backfill_id = uuid.uuid4().hex[:8]
    started = time.perf_counter()
    process = launch_backfill_run(site, first, last, backfill_id)
    seen: Materialized | None = None
    created = 0.0
    try:
        while time.perf_counter() - started < timeout_s:
            if seen is None and (run := run_of(site.instance, backfill_id)) is not None:
                seen, created = Materialized(site.instance, run.run_id), time.perf_counter()
            done = seen.poll() if seen else []
            if seen and ready(done, time.perf_counter() - created):
                os.killpg(process.pid, signal.SIGKILL)
                seconds = time.perf_counter() - started
                process.wait(timeout=30)
                return Kill(seen.run_id, seen.poll(), seconds)
            if process.poll() is not None:
                if seen is None:
                    raise RuntimeError(f"no run was created: see {site.root / backfill_id}.log")
                seconds = time.perf_counter() - started
                return Kill(seen.run_id, seen.poll(), seconds, killed=False)
            time.sleep(poll_s)
        raise TimeoutError(f"kill point not reached in {timeout_s} s")
    finally:
        kill_group(process)


def mark_failed(site: Site, kill: Kill) -> DagsterRun:
    """Report a run whose worker died failed, as an operator (or run monitoring, where the run
    launcher can check its workers) does; `kill.status` keeps what the instance showed before."""
    assert site.instance is not None
    run = site.instance.get_run_by_id(kill.run_id)
    assert run is not None
    kill.status = run.status
    if run.status == DagsterRunStatus.STARTED:
        site.instance.report_run_failed(run, "run worker process died (SIGKILL)")
    failed = site.instance.get_run_by_id(kill.run_id)
    assert failed is not None
    return failed


def tables(warehouse: Path) -> dict[str, list[str]]:
    """Every table of the warehouse (all schemas) with its columns."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "SELECT table_schema || '.' || table_name, list(column_name ORDER BY ordinal_position) "
            "FROM information_schema.columns WHERE table_catalog = current_database() "
            "GROUP BY ALL ORDER BY 1"
        ).fetchall()
    return {name: list(columns) for name, columns in rows}


def table_frame(
    warehouse: Path, table: str, columns: list[str], volatile: frozenset[str] = VOLATILE_COLUMNS
) -> pd.DataFrame:
    """The table's rows without the volatile columns, in a canonical order."""
    kept = ", ".join(f'"{c}"' for c in columns if c not in volatile)
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return conn.execute(f"SELECT {kept} FROM {table} ORDER BY ALL").df()


def duplicates(warehouse: Path, volatile: frozenset[str] = VOLATILE_COLUMNS) -> dict[str, int]:
    """Per table, rows that repeat another row (volatile columns aside) or its natural key."""
    out = {}
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        for table, columns in tables(warehouse).items():
            kept = [f'"{c}"' for c in columns if c not in volatile]
            key = [f'"{c}"' for c in NATURAL_KEYS.get(table, ()) if c in columns] or kept
            (extra,) = conn.execute(
                f"SELECT count(*) - (SELECT count(*) FROM (SELECT DISTINCT {', '.join(key)} "
                f"FROM {table})) FROM {table}"
            ).fetchone()
            if extra:
                out[table] = int(extra)
    return out


def differing_tables(
    left: Path, right: Path, volatile: frozenset[str] = VOLATILE_COLUMNS
) -> dict[str, str]:
    """Tables that are not identical between two warehouses (volatile columns aside), why."""
    mine, theirs = tables(left), tables(right)
    out = {name: "only in one warehouse" for name in set(mine) ^ set(theirs)}
    for name in sorted(set(mine) & set(theirs)):
        if mine[name] != theirs[name]:
            out[name] = f"columns differ: {mine[name]} vs {theirs[name]}"
            continue
        a = table_frame(left, name, mine[name], volatile)
        b = table_frame(right, name, mine[name], volatile)
        if len(a) != len(b):
            out[name] = f"{len(a)} rows vs {len(b)}"
            continue
        try:
            pd.testing.assert_frame_equal(a, b, check_exact=True)
        except AssertionError as exc:
            out[name] = str(exc).splitlines()[0]
    return out
