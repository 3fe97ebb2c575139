"""One lock-aware way to open the warehouse: every DuckDB opener goes through `connect`.

DuckDB allows one writing process per file (an OS file lock taken at open, held until the last
connection closes); a second process gets `IO Error: Could not set lock on file ... Conflicting
lock is held in <exe> (PID n)`. Under a live replay several run processes (the schedule's
intraday runs, the sensor's execute runs) open the file for each step's inputs and outputs, so
opens collide all the time. dagster-duckdb retries with an un-jittered doubling backoff (10
retries, no log): overlapping processes retry in lock-step, and an exhausted budget surfaces as
the bare IOException with no word on who held the lock.

Here: a time budget (TRADING_DUCKDB_LOCK_BUDGET_S, default 120 s) of retries with full jitter
(a random sleep up to a doubling cap of 1 s), only on lock conflicts (any other error is raised
at once); a connect that waited is logged once through Dagster's logger (it lands in the run's
event log as `duckdb lock: ... opened after`), and an exhausted budget raises
`WarehouseLockTimeout` naming the holder (PID and command line).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import duckdb

LOCK_BUDGET_ENV = "TRADING_DUCKDB_LOCK_BUDGET_S"
DEFAULT_BUDGET_S = 120.0
FIRST_DELAY_S = 0.02
MAX_DELAY_S = 1.0
LOCK_MARKERS = ("Could not set lock on file", "Conflicting lock is held")
HANDLED_MARKER = "duckdb lock:"  # the log line of a connect that waited and then opened
_HOLDER = re.compile(r"Conflicting lock is held in (?P<exe>.*?) \(PID (?P<pid>\d+)\)")


class WarehouseLockTimeout(RuntimeError):
    """The warehouse stayed locked by another process for the whole retry budget."""


def is_lock_conflict(error: BaseException) -> bool:
    """True for DuckDB's "another process holds the file lock" error (and nothing else)."""
    return isinstance(error, duckdb.Error) and any(m in str(error) for m in LOCK_MARKERS)


def lock_holder(message: str) -> str:
    """`PID n (command line)` of the process DuckDB names as the lock holder, from its error."""
    found = _HOLDER.search(message)
    if found is None:
        return "an unknown process (DuckDB did not say)"
    pid = found.group("pid")
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        command = raw.replace(b"\0", b" ").decode(errors="replace").strip()[:300]
    except OSError:
        command = ""
    return f"PID {pid} ({command or found.group('exe')})"


def budget_from_env() -> float:
    value = os.environ.get(LOCK_BUDGET_ENV, "").strip()
    return float(value) if value else DEFAULT_BUDGET_S


def _default_log(message: str) -> None:
    from dagster import get_dagster_logger

    get_dagster_logger("duckdb_locks").info(message)


def connect(
    database: str | Path,
    *,
    read_only: bool = False,
    config: Mapping[str, Any] | None = None,
    budget_s: float | None = None,
    log: Callable[[str], None] | None = _default_log,
    sleep: Callable[[float], None] = time.sleep,
) -> duckdb.DuckDBPyConnection:
    """`duckdb.connect`, retried with full jitter while another process holds the file lock.

    Raises `WarehouseLockTimeout` (naming the holder) once `budget_s` is spent; any other error
    at once. `log` gets one line when a connect had to wait (None: silent)."""
    budget = budget_from_env() if budget_s is None else budget_s
    started = time.monotonic()
    attempts = 0
    cap = FIRST_DELAY_S
    holder = ""
    while True:
        attempts += 1
        try:
            conn = duckdb.connect(str(database), read_only=read_only, config=dict(config or {}))
        except duckdb.Error as error:
            if not is_lock_conflict(error):
                raise
            holder = lock_holder(str(error))
            waited = time.monotonic() - started
            if waited >= budget:
                raise WarehouseLockTimeout(
                    f"{database}: still locked after {attempts} attempts over {waited:.1f} s "
                    f"(budget {budget:.0f} s, {LOCK_BUDGET_ENV}); held by {holder}. "
                    f"DuckDB: {error}"
                ) from error
            sleep(min(random.uniform(0.0, cap), max(0.0, budget - waited)))
            cap = min(cap * 2.0, MAX_DELAY_S)
            continue
        if attempts > 1 and log is not None:
            log(
                f"{HANDLED_MARKER} {Path(database).name} opened after {attempts} attempts in "
                f"{time.monotonic() - started:.2f} s (last held by {holder})"
            )
        return conn
