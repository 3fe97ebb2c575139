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

from trading_assets.assets.backtest import performance_markdown
from trading_assets.event_writes import apply_event_writes

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
BUNDLED_FIRST = "2026-03-12-09:30"  # the bundled bars' 12 full sessions, 9 tickers
BUNDLED_LAST = "2026-03-27-15:59"


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
    """Backtest [first, last] (partition keys) as one run on `instance`, then score it."""
    from trading_assets.definitions import defs

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    log(f"backtest_job {first} .. {last} (one run) ...")
    started = time.perf_counter()
    apply_event_writes()  # the shipped setting (`make demo` already exports it)
    result = defs.resolve_job_def("backtest_job").execute_in_process(
        instance=instance,
        tags={RANGE_START: first, RANGE_END: last},
        run_config=quiet,
        raise_on_error=False,
    )
    backtest_s = time.perf_counter() - started
    if not result.success:
        raise RuntimeError(f"backtest run {result.run_id} failed: see it in the UI")
    log(f"  done in {backtest_s:.0f} s (run {result.run_id[:8]})")
    started = time.perf_counter()
    report = defs.resolve_job_def("backtest_report_job").execute_in_process(
        instance=instance, run_config=quiet, raise_on_error=False
    )
    report_s = time.perf_counter() - started
    if not report.success:
        raise RuntimeError(f"backtest report run {report.run_id} failed: see it in the UI")
    frame = report.output_for_node("backtest_performance")
    table = frame[frame["scope"] == "all"].reset_index(drop=True)
    return BacktestResult(result.run_id, report.run_id, backtest_s, report_s, table)


def print_table(result: BacktestResult, log: Callable[[str], None] = print) -> None:
    sessions = int(result.table["sessions"].iloc[0]) if len(result.table) else 0
    log(f"\nbacktest over {sessions} sessions (returns, drawdown, win rate, exposure in %):")
    log(performance_markdown(result.table))
