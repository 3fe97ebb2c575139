"""The README's main command: materialize one bundled real session on the embedded defaults.

Runs `ingest_job` for every minute partition of a session as one run on the instance in
DAGSTER_HOME (so `dagster dev` shows it afterwards), then prints what landed in the warehouse
and how each check went.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from resources.warehouse import SCHEMA, warehouse_path
from trading_assets.partitions import PARTITION_FMT, session_minutes

DEFAULT_SESSION = "2026-03-23"


def session_range(session: str) -> tuple[str, str]:
    """First and last partition keys of a session (390 on a full day, fewer on an early close)."""
    minutes = session_minutes(session, session)
    if minutes.empty or minutes[0].strftime("%Y-%m-%d") != session:
        raise SystemExit(f"{session} is not an NYSE session")
    return minutes[0].strftime(PARTITION_FMT), minutes[-1].strftime(PARTITION_FMT)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--session", default=DEFAULT_SESSION, help="YYYY-MM-DD (default %(default)s)"
    )
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    first, last = session_range(args.session)

    from trading_assets.definitions import defs  # after DAGSTER_HOME: definitions read env

    job = defs.resolve_job_def("ingest_job")
    started = time.perf_counter()
    with DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            },
            raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
    elapsed = time.perf_counter() - started

    print(f"\ningest_job {first} .. {last}: {'SUCCESS' if result.success else 'FAILURE'}")
    print(f"run {result.run_id} in {elapsed:.1f} s (instance: {home})")
    counted = {"bars": "count(DISTINCT ticker) || ' tickers'", "news": "'stories'"}
    counted["fundamentals"] = counted["bars"]
    with duckdb.connect(str(warehouse_path()), read_only=True) as conn:
        for table, what_sql in counted.items():
            rows, what, lo, hi = conn.execute(
                f"SELECT count(*), {what_sql}, min(minute), max(minute) FROM {SCHEMA}.{table} "
                "WHERE minute >= ?::DATE AND minute < ?::DATE + 1",
                [args.session, args.session],
            ).fetchone()
            print(f"  {table:<13}{rows:>6} rows  {what:<11} {lo} .. {hi}")
    print("checks:")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        print(f"  {evaluation.asset_key.to_user_string()}.{evaluation.check_name:<28}{status}")
    print(f"\nwarehouse: {warehouse_path()}")
    print("UI: make ui, then open http://127.0.0.1:3000 (Assets -> ingest) to see the lineage,")
    print("    the partitions, the check results and this run.")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
