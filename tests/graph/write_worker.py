"""A process that stores one partition through the warehouse IO manager, to be killed mid-write.

Kept apart from the code location (it imports only Dagster and the IO manager) so that a kill
test can start many of these quickly. `python -m tests.graph.write_worker WAREHOUSE DAY VERSION
ROWS` writes ROWS rows stamped VERSION into day DAY of `trading.big`, printing "stored" once the
asset has returned its frame: what follows is the IO manager's delete and insert.
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from dagster import DagsterInstance, DailyPartitionsDefinition, asset, materialize

from resources.warehouse import warehouse_io_manager

REPO = Path(__file__).resolve().parents[2]
DAYS = ("2026-03-23", "2026-03-24")
PARTITIONS = DailyPartitionsDefinition(start_date="2026-03-20")


def write(warehouse: Path, day: str, version: int, rows: int, announce: bool = False) -> float:
    """Materialize partition `day` of `big` with `rows` rows of `version` (a worker announces
    "stored" and "written" on stdout); the seconds from the frame's return to the run's end
    (the IO manager's delete, insert and commit, and Dagster's events around them)."""
    returned: list[float] = []

    @asset(partitions_def=PARTITIONS, metadata={"partition_expr": "minute"})
    def big() -> pd.DataFrame:
        frame = pd.DataFrame(
            {
                "minute": pd.Timestamp(day)
                + pd.to_timedelta(np.arange(rows) % 390 + 570, unit="min"),
                "i": np.arange(rows),
                "version": np.full(rows, version),
            }
        )
        if announce:
            sys.stdout.write("stored\n")
            sys.stdout.flush()
        returned.append(time.perf_counter())
        return frame

    with DagsterInstance.ephemeral() as instance:
        result = materialize(
            [big],
            partition_key=day,
            resources={"io_manager": warehouse_io_manager(warehouse)},
            instance=instance,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    if not result.success:
        raise SystemExit(1)
    if announce:
        sys.stdout.write("written\n")
        sys.stdout.flush()
    return time.perf_counter() - returned[0]


def start(warehouse: Path, day: str, version: int, rows: int) -> subprocess.Popen:
    """A worker in its own process group; read its first stdout line to know it is writing."""
    command = [sys.executable, "-m", "tests.graph.write_worker", str(warehouse), day]
    return subprocess.Popen(
        [*command, str(version), str(rows)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def kill_while_writing(
    warehouse: Path, day: str, version: int, rows: int, delay_s: float
) -> dict[str, dict[int, int]]:
    """Start a write, SIGKILL it `delay_s` after the asset returned; what the file then holds."""
    worker = start(warehouse, day, version, rows)
    assert worker.stdout is not None
    worker.stdout.readline()
    time.sleep(delay_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    return versions(warehouse)


def versions(warehouse: Path) -> dict[str, dict[int, int]]:
    """Per day of trading.big: {version: rows}."""
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        rows = conn.execute(
            "SELECT strftime(minute, '%Y-%m-%d'), version, count(*) FROM trading.big GROUP BY ALL"
        ).fetchall()
    out: dict[str, dict[int, int]] = {}
    for day, version, count in rows:
        out.setdefault(day, {})[int(version)] = int(count)
    return out


if __name__ == "__main__":
    write(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), announce=True)
