"""The demo's backtest on each kind of Dagster instance: what the storage costs.

    .venv/bin/python benchmarks/instance_storage.py [--kinds embedded,system,sqlite]
        [--first KEY] [--last KEY]

For each kind, in a process of its own, one after the other: a throw-away instance folder and
warehouse, then `make demo`'s backtest (`run_backtest`: `backtest_job` over the range as one
run, then `backtest_report_job`), rules backend, bundled data. Kinds: `embedded` (the default
instance, trading_assets/embedded_postgres.py), `system` (the local PostgreSQL server on
127.0.0.1:5432, a throw-away database, as dagster.yaml.example), `sqlite` (slow: ~15 min for
the 12 sessions). Prints the backtest run's and the report's seconds, the instance's size on
disk after the runs and the ratio of each kind's run to the first kind's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # the tests' helpers

from trading_assets.backfill import BUNDLED_FIRST, BUNDLED_LAST  # noqa: E402

KINDS = ("embedded", "system", "sqlite")


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def measure(kind: str, first: str, last: str, tmp: Path) -> dict[str, float | str]:
    """One backtest on a new instance of `kind` (this process's DAGSTER_HOME and data folder)."""
    from dagster import DagsterInstance

    from trading_assets.backfill import run_backtest
    from trading_assets.instance import project_home

    os.environ["TRADING_DATA_DIR"] = str(tmp / "data")
    home = tmp / "home"
    if kind == "system":
        import psycopg2

        from tests.graph.conftest import PG, throwaway_postgres_instance

        home.mkdir()
        with throwaway_postgres_instance(home) as (instance, db):
            os.environ["DAGSTER_HOME"] = str(home)
            result = run_backtest(instance, first, last, log=lambda _: None)
            with psycopg2.connect(dbname=db, **PG) as conn, conn.cursor() as cur:
                cur.execute("SELECT pg_database_size(current_database())")
                size = cur.fetchone()[0] + folder_bytes(home)
    else:
        os.environ["TRADING_INSTANCE"] = kind
        with project_home(home), DagsterInstance.get() as instance:
            result = run_backtest(instance, first, last, log=lambda _: None)
        size = folder_bytes(home)
    return {
        "kind": kind,
        "backtest_s": result.backtest_s,
        "report_s": result.report_s,
        "instance_mb": size / 1e6,
        "agents_cumulative_return": float(result.table["cumulative_return"].iloc[0]),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", default="embedded,system")
    parser.add_argument("--first", default=BUNDLED_FIRST)
    parser.add_argument("--last", default=BUNDLED_LAST)
    parser.add_argument("--one", choices=KINDS, help=argparse.SUPPRESS)  # the child's kind
    args = parser.parse_args()
    if args.one:
        with tempfile.TemporaryDirectory(prefix="instance-storage-") as tmp:
            print(json.dumps(measure(args.one, args.first, args.last, Path(tmp))), flush=True)
        return 0
    kinds = args.kinds.split(",")
    unknown = set(kinds) - set(KINDS)
    if unknown:
        parser.error(f"unknown kinds {sorted(unknown)}; choose from {KINDS}")
    print(f"backtest {args.first} .. {args.last}, load {os.getloadavg()[0]:.1f}", flush=True)
    rows = []
    for kind in kinds:
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--one", kind, "--first", args.first, "--last", args.last],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            return child.returncode
        row = json.loads(child.stdout.strip().splitlines()[-1])
        row["process_s"] = time.perf_counter() - started
        rows.append(row)
        print(
            f"{kind:<9} backtest_job {row['backtest_s']:7.1f} s  report {row['report_s']:5.1f} s"
            f"  process {row['process_s']:6.1f} s  instance {row['instance_mb']:7.1f} MB"
            f"  x{row['backtest_s'] / rows[0]['backtest_s']:.2f} of {rows[0]['kind']}"
            f"  (agents: cumulative_return {row['agents_cumulative_return']})",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
