"""The lock-aware DuckDB connect: real files, a second process holding the write lock.

A connect that meets the lock waits (jittered) until the holder lets go, and says so once; one
whose budget runs out fails with an error naming the holder; anything that is not a lock
conflict fails at once. The warehouse's IO manager and resource use it, so an asset written
while another process holds the file still materializes, and the wait is in its event log.
"""

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import DagsterInstance, asset, materialize

from resources.duckdb_locks import (
    HANDLED_MARKER,
    WarehouseLockTimeout,
    connect,
    is_lock_conflict,
)
from resources.warehouse import warehouse_io_manager, warehouse_resource

HOLDER = """
import sys, time, duckdb
conn = duckdb.connect(sys.argv[1], read_only=sys.argv[3] == "ro")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
conn.close()
print("released", flush=True)
time.sleep(60)
"""


@contextmanager
def holding(path: Path, seconds: float, mode: str = "rw") -> Iterator[subprocess.Popen]:
    """Another process with `path` open (rw: the write lock) for `seconds`, then closed."""
    if not path.exists():
        duckdb.connect(str(path)).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield proc
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_waits_for_the_holder_then_opens_and_says_so_once(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    lines: list[str] = []
    with holding(db, 1.5) as holder:
        with pytest.raises(duckdb.IOException) as plain:  # what a bare connect gets
            duckdb.connect(str(db))
        assert is_lock_conflict(plain.value)
        started = time.monotonic()
        conn = connect(db, budget_s=30, log=lines.append)
        waited = time.monotonic() - started
    with conn:
        conn.execute("CREATE TABLE t AS SELECT 42 AS x")
        assert conn.execute("SELECT x FROM t").fetchone() == (42,)
    assert 1.0 <= waited < 10.0
    assert len(lines) == 1 and lines[0].startswith(HANDLED_MARKER)
    assert f"PID {holder.pid}" in lines[0]


def test_read_only_readers_wait_for_a_writer_too(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    with holding(db, 1.0):
        conn = connect(db, read_only=True, budget_s=30, log=None)
    with conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_an_exhausted_budget_names_the_holder(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    with holding(db, 60) as holder:
        started = time.monotonic()
        with pytest.raises(WarehouseLockTimeout) as failure:
            connect(db, budget_s=1.0, log=None)
        elapsed = time.monotonic() - started
    message = str(failure.value)
    assert f"PID {holder.pid}" in message and "-c" in message  # the holder's command line
    assert str(db) in message and "budget 1 s" in message
    assert is_lock_conflict(failure.value.__cause__)
    assert 1.0 <= elapsed < 3.0  # the budget bounds the wait


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-database.duckdb"
    bogus.write_bytes(b"this is not a duckdb file" * 200)
    sleeps: list[float] = []
    with pytest.raises(duckdb.Error) as failure:
        connect(bogus, budget_s=30, sleep=sleeps.append, log=None)
    assert not is_lock_conflict(failure.value) and sleeps == []


def test_retries_are_jittered_and_capped(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"
    sleeps: list[float] = []
    with holding(db, 60), pytest.raises(WarehouseLockTimeout):
        connect(db, budget_s=0.0, sleep=sleeps.append, log=None)
    assert sleeps == []  # a zero budget: one attempt, no sleep
    with holding(db, 60), pytest.raises(WarehouseLockTimeout):
        connect(db, budget_s=3.0, log=None, sleep=lambda s: sleeps.append(s) or time.sleep(s))
    assert len(sleeps) >= 5 and max(sleeps) <= 1.0
    assert len({round(s, 6) for s in sleeps}) == len(sleeps)  # random, not a fixed ladder


def test_the_warehouse_io_manager_and_resource_wait_out_another_writer(tmp_path: Path) -> None:
    db = tmp_path / "warehouse.duckdb"

    @asset
    def prices() -> pd.DataFrame:
        with warehouse_resource(db).get_connection() as conn:  # the resource waits too
            conn.execute("CREATE TABLE IF NOT EXISTS seen AS SELECT 1 AS x")
        return pd.DataFrame({"ticker": ["AAPL"], "close": [101.5]})

    with DagsterInstance.ephemeral() as instance:
        with holding(db, 2.0):
            result = materialize(
                [prices], resources={"io_manager": warehouse_io_manager(db)}, instance=instance
            )
        assert result.success
        waited = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if HANDLED_MARKER in (entry.user_message or "")
        ]
    assert waited  # the first open waited for the other process, and the run's log says so
    with duckdb.connect(str(db), read_only=True) as conn:
        assert conn.execute("SELECT ticker, close FROM trading.prices").fetchall() == [
            ("AAPL", 101.5)
        ]
