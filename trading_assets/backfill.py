"""The main command's backtest: one run over a range of minute partitions, then the report.

The same thing a user does with `dagster asset materialize --select ... --partition-range` or a
backfill from the UI: `backtest_job` over the range as a single run (every asset has a
single-run backfill policy), then `backtest_report_job` scores every fully backtested session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd
from dagster import DagsterInstance

from resources.duckdb_locks import connect
from resources.warehouse import SCHEMA, warehouse_path
from trading_assets.assets.backtest import performance_markdown
from trading_assets.event_writes import apply_event_writes
from trading_assets.location_runs import LocationRuns
from trading_assets.partitions import MinuteSpan

BUNDLED_FIRST = "2026-03-12|09:30"  # the bundled bars' 12 full sessions, 9 tickers
BUNDLED_LAST = "2026-03-27|15:59"


@dataclass
class BacktestResult:
    run_id: str
    report_run_id: str
    backtest_s: float
    report_s: float
    table: pd.DataFrame  # one row per strategy (scope "all")


def run_backtest(
    instance: DagsterInstance,
    first: str = BUNDLED_FIRST,
    last: str = BUNDLED_LAST,
    log: Callable[[str], None] = print,
) -> BacktestResult:
    """Backtest [first, last] (partition keys) as one run on `instance`, then score it; both
    are the code location's runs (`LocationRuns`: the UI lists them under their jobs)."""
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    log(f"backtest_job {first} .. {last} (one run) ...")
    from trading_assets.definitions import defs

    apply_event_writes()  # the shipped setting (`make demo` already exports it)
    with LocationRuns(instance, defs) as location:
        started = time.perf_counter()
        result = location.run("backtest_job", MinuteSpan.of_keys(first, last).tags, quiet)
        backtest_s = time.perf_counter() - started
        if not result.success:
            raise RuntimeError(f"backtest run {result.run_id} failed: see it in the UI")
        log(f"  done in {backtest_s:.0f} s (run {result.run_id[:8]})")
        started = time.perf_counter()
        report = location.run("backtest_report_job", {}, quiet)
        report_s = time.perf_counter() - started
    if not report.success:
        raise RuntimeError(f"backtest report run {report.run_id} failed: see it in the UI")
    with connect(warehouse_path(), read_only=True) as conn:
        table = conn.execute(
            f"SELECT * FROM {SCHEMA}.backtest_performance WHERE scope = 'all' ORDER BY rowid"
        ).df()
    return BacktestResult(result.run_id, report.run_id, backtest_s, report_s, table)


def print_table(result: BacktestResult, log: Callable[[str], None] = print) -> None:
    sessions = int(result.table["sessions"].iloc[0]) if len(result.table) else 0
    log(f"\nbacktest over {sessions} sessions (returns, drawdown, win rate, exposure in %):")
    log(performance_markdown(result.table))
