"""The README's main command: run one bundled real session through the team on the defaults.

Runs `research_job` (ingest, the event gate, the four analysts, the bull and bear openings and
the debate) for every minute partition of a session as one run on the instance in DAGSTER_HOME
(so `dagster dev` shows it afterwards), then prints what landed in the warehouse, what the
debates decided and how each check went. The default `rules` analysts need no model and no key.
"""

import argparse
import os
import sys
import time
from pathlib import Path

import duckdb
from dagster import DagsterInstance

from resources.warehouse import SCHEMA, warehouse_path
from trading_assets.analysts.team import ANALYSTS
from trading_assets.partitions import PARTITION_FMT, session_minutes

DEFAULT_SESSION = "2026-03-23"


def session_range(session: str) -> tuple[str, str]:
    """First and last partition keys of a session (390 on a full day, fewer on an early close)."""
    minutes = session_minutes(session, session)
    if minutes.empty or minutes[0].strftime("%Y-%m-%d") != session:
        raise SystemExit(f"{session} is not an NYSE session")
    return minutes[0].strftime(PARTITION_FMT), minutes[-1].strftime(PARTITION_FMT)


def print_decisions(conn: duckdb.DuckDBPyConnection, session: str) -> None:
    """What the judge decided in the session, and a sample verdict with its reasoning."""
    day = "minute >= ?::DATE AND minute < ?::DATE + 1"
    actions = conn.execute(
        f"SELECT action, count(*) FROM {SCHEMA}.debate WHERE debated AND {day} "
        "GROUP BY action ORDER BY action",
        [session, session],
    ).fetchall()
    print("debate verdicts: " + (", ".join(f"{a} {n}" for a, n in actions) or "none"))
    sample = conn.execute(
        f"SELECT minute, ticker, action, confidence, consensus, model, rationale "
        f"FROM {SCHEMA}.debate WHERE debated AND action <> 'HOLD' AND {day} "
        "ORDER BY confidence DESC, minute LIMIT 1",
        [session, session],
    ).fetchone()
    if sample:
        minute, ticker, action, confidence, consensus, model, rationale = sample
        print(f"  e.g. {minute} {ticker}: {action} (confidence {confidence:.2f}, {consensus} "
              f"consensus, {model}): {rationale[:220]}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--session", default=DEFAULT_SESSION, help="YYYY-MM-DD (default %(default)s)"
    )
    parser.add_argument(
        "--job",
        default="research_job",
        choices=["research_job", "ingest_job"],
        help="research_job (default: ingest through the debate) or ingest_job",
    )
    args = parser.parse_args(argv)

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(Path(".dagster_home").resolve())))
    home.mkdir(parents=True, exist_ok=True)
    first, last = session_range(args.session)

    from trading_assets.definitions import defs  # after DAGSTER_HOME: definitions read env

    job = defs.resolve_job_def(args.job)
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

    print(f"\n{args.job} {first} .. {last}: {'SUCCESS' if result.success else 'FAILURE'}")
    print(f"run {result.run_id} in {elapsed:.1f} s (instance: {home})")
    counted = {"bars": "count(DISTINCT ticker) || ' tickers'", "news": "'stories'"}
    counted["fundamentals"] = counted["bars"]
    if args.job == "research_job":
        counted |= {
            "debate_triggers": "count(*) FILTER (WHERE debated) || ' debated'",
            **{f"{a}_analysis": "count(DISTINCT ticker) || ' tickers'" for a in ANALYSTS},
            "bull_case": "'arguments'",
            "bear_case": "'arguments'",
            "debate": "count(*) FILTER (WHERE debated) || ' debates'",
        }
    with duckdb.connect(str(warehouse_path()), read_only=True) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", [SCHEMA]
        ).fetchall()}  # fmt: skip
        for table, what_sql in counted.items():
            if table not in tables:
                print(f"  {table:<20}     0 rows")
                continue
            rows, what, lo, hi = conn.execute(
                f"SELECT count(*), {what_sql}, min(minute), max(minute) FROM {SCHEMA}.{table} "
                "WHERE minute >= ?::DATE AND minute < ?::DATE + 1",
                [args.session, args.session],
            ).fetchone()
            print(f"  {table:<20}{rows:>6} rows  {what:<12} {lo} .. {hi}")
        if "debate" in tables and args.job == "research_job":
            print_decisions(conn, args.session)
    print("checks:")
    for evaluation in result.get_asset_check_evaluations():
        status = "passed" if evaluation.passed else f"FAILED ({evaluation.severity.value})"
        label = f"{evaluation.asset_key.to_user_string()}.{evaluation.check_name}"
        print(f"  {label:<58}{status}")
    print(f"\nwarehouse: {warehouse_path()}")
    print("UI: make ui, then open http://127.0.0.1:3000 (Assets) to see the team's lineage,")
    print("    the partitions, the check results and this run.")
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main())
