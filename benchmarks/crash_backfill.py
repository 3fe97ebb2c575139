"""Crash-safe backfills at scale: kill a backtest backfill again and again, rerun it each time.

    .venv/bin/python benchmarks/crash_backfill.py                  # the figures in RELIABILITY.md
    .venv/bin/python benchmarks/crash_backfill.py --random 1 --points bars --write-kills 0  # quick

Two sites, each a throw-away Postgres instance, a DuckDB warehouse and a data folder, start
from the same warm-up session (2026-03-20). The uninterrupted site runs `backtest_job` over the
range (default: the whole 2026-03-23 session) and `backtest_report_job` once. The crashed site
then, for every kill point: launches the range as a `dagster job execute` process tagged like
the backfill daemon's single run, SIGKILLs its process group at the point (named points: once
the event log shows that asset materialized; random points: a seeded delay after the run was
created, up to the uninterrupted run's length), marks the run failed as run monitoring would,
reruns the range and the report, and compares: duplicate rows (a repeated natural key or a
repeated row, run_id and created_at aside), tables that differ from the uninterrupted site's
(every schema: trading and the dbt marts), and the equity chart's bytes. The first kill lands
on a range never written; the later ones on a range a rerun completed (the replace path).

`--llm fake` runs the team on the openai backend against a local OpenAI-compatible server
(tests/fakes/openai_server.py, deterministic schema-valid answers) instead of the rules: the
killed runs then leave LLM answers in the cache (`trading.llm_cache`, write-through) which the
rerun replays. Columns that legitimately differ then also include `cached` (the agents' rows:
a replayed answer says so) and the cache's `latency_ms`. Use a short range: every analyst asks.

`--write-kills N` also kills N processes inside the IO manager's write of a 400k-row partition
(tests/graph/write_worker.py) at seeded points, and counts what the partition then held.
"""

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from trading_assets.event_writes import apply_event_writes  # noqa: E402

apply_event_writes()  # the shipped setting, in this process and the runs it starts

from tests.graph import write_worker  # noqa: E402
from tests.graph.crash_harness import (  # noqa: E402
    VOLATILE_COLUMNS,
    Kill,
    Site,
    copy_warehouse,
    differing_tables,
    duplicates,
    kill_when,
    mark_failed,
    run_in_process,
    sites,
)
from trading_assets.definitions import build_definitions  # noqa: E402

WARM_UP = ("2026-03-20|09:30", "2026-03-20|15:59")
ANALYSTS = ("technical_analysis", "fundamental_analysis", "sentiment_analysis", "macro_analysis")
NAMED = {
    "bars": lambda done: "bars" in done,
    "analysts": lambda done: any(a in done for a in ANALYSTS),
    "debate": lambda done: "debate" in done,
    "trade_signals": lambda done: "trade_signals" in done,
}


def chart(site: Site) -> bytes:
    path = site.data / "backtest" / "equity_drawdown.png"
    return path.read_bytes() if path.exists() else b""


def run_site(site: Site, first: str, last: str, report: bool) -> tuple[float, float]:
    """backtest_job over the range, then the report, in this process: (seconds, seconds)."""
    defs = build_definitions(warehouse=site.warehouse)
    started = time.perf_counter()
    assert run_in_process(defs, site, "backtest_job", first, last).success, "backtest failed"
    backtest_s = time.perf_counter() - started
    if not report:
        return backtest_s, 0.0
    started = time.perf_counter()
    assert run_in_process(defs, site, "backtest_report_job").success, "report failed"
    return backtest_s, time.perf_counter() - started


def kill_points(names: list[str], randoms: int, seed: int, run_s: float) -> list[tuple]:
    """(label, ready) per kill: the named points, then seeded delays within the run."""
    rng = random.Random(seed)
    points = [(name, lambda done, _, f=NAMED[name]: f(done)) for name in names]
    for _ in range(randoms):
        delay = round(rng.uniform(0.05, 0.95) * run_s, 1)
        points.append((f"random {delay:.1f} s", lambda _, since, d=delay: since >= d))
    return points


def write_kills(root: Path, count: int, seed: int) -> dict[str, int]:
    """Kill `count` writes of a partition at seeded points; what the partition then held."""
    warehouse, rows = root / "write" / "warehouse.duckdb", 400_000
    warehouse.parent.mkdir(parents=True)
    day, other = write_worker.DAYS
    for each in write_worker.DAYS:
        write_worker.write(warehouse, each, 1, rows)
    seconds = write_worker.write(warehouse, day, 1, rows)
    rng = random.Random(seed)
    outcome = {"old": 0, "new": 0, "empty, partial or mixed": 0, "other partition changed": 0}
    previous = 1
    for version in range(2, count + 2):
        held = write_worker.kill_while_writing(
            warehouse, day, version, rows, rng.uniform(0.0, 1.2) * seconds
        )
        if held.get(other) != {1: rows}:
            outcome["other partition changed"] += 1
        if held.get(day) == {version: rows}:
            outcome["new"] += 1
            previous = version
        elif held.get(day) == {previous: rows}:
            outcome["old"] += 1
        else:
            outcome["empty, partial or mixed"] += 1
    outcome["write_s"] = round(seconds, 2)
    return outcome


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first", default="2026-03-23|09:30")
    parser.add_argument("--last", default="2026-03-23|15:59")
    parser.add_argument("--points", default="bars,analysts,debate,trade_signals")
    parser.add_argument("--random", type=int, default=3, help="seeded random kill points")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--write-kills", type=int, default=6)
    parser.add_argument("--llm", choices=("rules", "fake"), default="rules")
    parser.add_argument(
        "--no-report", action="store_true", help="skip the report (ranges of part of a session)"
    )
    args = parser.parse_args()
    names = [n for n in args.points.split(",") if n]
    volatile = VOLATILE_COLUMNS
    server = None
    if args.llm == "fake":
        from tests.fakes.openai_server import FakeOpenAIServer

        server = FakeOpenAIServer().__enter__()
        os.environ.update(
            TRADING_LLM_PROVIDER="openai",
            OPENAI_BASE_URL=server.base_url,
            OPENAI_API_KEY="sk-crash-test",
            TRADING_LLM_MODEL="local-model",
        )
        volatile = VOLATILE_COLUMNS | {"cached", "latency_ms"}
    began = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        with sites(Path(tmp), "uninterrupted", "crashed") as (clean, crash):
            defs = build_definitions(warehouse=clean.warehouse)
            assert run_in_process(defs, clean, "ingest_job", *WARM_UP).success
            copy_warehouse(clean, crash)
            clean_backtest_s, clean_report_s = run_site(
                clean, args.first, args.last, not args.no_report
            )
            print(
                f"uninterrupted {args.first} .. {args.last}: backtest_job {clean_backtest_s:.1f} s,"
                f" report {clean_report_s:.1f} s"
            )
            clean_calls = server.chat_count if server else 0
            if server:
                print(f"model requests by the uninterrupted run: {clean_calls}")
            # rows the uninterrupted run repeats itself (none so far) are not the crash's
            baseline = duplicates(clean.warehouse, volatile)
            for label, ready in kill_points(names, args.random, args.seed, clean_backtest_s):
                kill: Kill = kill_when(crash, args.first, args.last, ready)
                failed = mark_failed(crash, kill)
                rerun_s, report_s = run_site(crash, args.first, args.last, not args.no_report)
                dups = {
                    table: count - baseline.get(table, 0)
                    for table, count in duplicates(crash.warehouse, volatile).items()
                    if count > baseline.get(table, 0)
                }
                differ = differing_tables(clean.warehouse, crash.warehouse, volatile)
                calls = (
                    server.chat_count - clean_calls - sum(r["calls"] for r in rows) if server else 0
                )
                same_chart = chart(clean) == chart(crash)
                rows.append(
                    {
                        "point": label,
                        "killed": kill.killed,
                        "status": failed.status.value,
                        "at_s": kill.seconds,
                        "materialized": kill.materialized,
                        "duplicates": sum(dups.values()),
                        "differing": len(differ) + (not same_chart),
                        "rerun_s": rerun_s,
                        "report_s": report_s,
                        "calls": calls,
                    }
                )
                print(
                    f"kill {len(rows)} at {label}: killed={kill.killed} after {kill.seconds:.1f} s"
                    f" with {len(kill.materialized)} assets materialized "
                    f"({', '.join(kill.materialized) or 'none'}); run {failed.status.value}; "
                    f"rerun {rerun_s:.1f} s + report {report_s:.1f} s; duplicate rows {dups or 0};"
                    f" differing tables {differ or 0}; chart identical {same_chart}"
                    + (
                        f"; model requests by the killed run and its rerun {calls}"
                        if server
                        else ""
                    ),
                    flush=True,
                )
        written = write_kills(Path(tmp), args.write_kills, args.seed) if args.write_kills else {}
    print()
    print("| kill point | times | duplicate rows after rerun | tables differing | notes |")
    print("|---|---:|---:|---:|---|")
    for row in rows:
        done = row["materialized"]
        last = done[-1] if done else "none"
        print(
            f"| {row['point']} | 1 | {row['duplicates']} | {row['differing']} | "
            f"{'killed' if row['killed'] else 'ended before the kill'} {row['at_s']:.1f} s after "
            f"launch, {len(done)}/15 assets stored (last: {last}); run marked {row['status']}; "
            f"rerun {row['rerun_s']:.1f} s + report {row['report_s']:.1f} s |"
        )
    if written:
        bad = written["empty, partial or mixed"] + written["other partition changed"]
        print(
            f"| inside the DuckDB write (400k-row partition, {written['write_s']} s) | "
            f"{args.write_kills} | 0 | - | old rows kept {written['old']}, new rows committed "
            f"{written['new']}, empty/partial/mixed or other partition changed {bad} |"
        )
    if server is not None:
        server.__exit__(None, None, None)
        print(f"model requests in all: {server.chat_count} (uninterrupted run included)")
    kills = sum(r["killed"] for r in rows)
    print(
        f"\nkills {kills} of {len(rows)} (+{args.write_kills} inside the write); duplicate rows "
        f"after reruns {sum(r['duplicates'] for r in rows)}; tables differing from the "
        f"uninterrupted run {sum(r['differing'] for r in rows)}; wall "
        f"{time.perf_counter() - began:.0f} s"
    )


if __name__ == "__main__":
    main()
