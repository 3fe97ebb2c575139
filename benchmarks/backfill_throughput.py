"""Backfill throughput: the whole graph over 1, 3 and 12 bundled sessions, each as one run.

    .venv/bin/python benchmarks/backfill_throughput.py          # the figures in BENCHMARKS.md
    .venv/bin/python benchmarks/backfill_throughput.py --sessions 1 --modes tuned,plain   # quick

For each number of sessions (the first N of the 12 bundled ones, from 2026-03-12) and mode, a
fresh subprocess (so peak memory is per measurement) on a throw-away Postgres database on the
local server (the instance `dagster.yaml.example` configures) and a throw-away warehouse, rules
backend:

- `tuned`: the shipped event writes (`trading_assets/event_writes.py`): `backtest_job` (ingest ..
  trade_signals, backtest_fills, 18 checks) as one run, then `backtest_report_job` (baselines,
  performance and chart, dbt build with its tests as checks): the whole graph.
- `default`: the same runs with Dagster's default event writes.
- `plain`: the same computation as `backtest_job` by the asset bodies called directly on frames
  in memory (benchmarks/plain_graph.py): no executor, instance, events, IO manager or checks.
- `floor`: Dagster alone: as many trivial minute-partitioned assets as `backtest_job`
  materializes (15), doing nothing, over the same range, shipped event writes. What a
  single-run backfill of that shape costs before any computation.

Prints minute partitions per second, seconds per session, the growth with sessions, the
default/tuned and Dagster/plain ratios, the slowest steps and peak memory.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from backtest_backfill import step_seconds  # noqa: E402

FIRST_SESSION = "2026-03-12"
LAST_SESSION = "2026-03-27"


def sessions(n: int) -> tuple[str, str, int]:
    """(first key, last key, minutes) of the first n bundled sessions."""
    from trading_assets.partitions import minute_key, session_minutes

    minutes = session_minutes(FIRST_SESSION, LAST_SESSION)
    days = sorted(set(minutes.normalize()))[:n]
    chosen = minutes[minutes.normalize().isin(days)]
    return minute_key(chosen[0]), minute_key(chosen[-1]), len(chosen)


def measure(mode: str, n: int) -> dict[str, object]:
    """One measurement, in this process."""
    from trading_assets.event_writes import (
        BATCHED_EVENT_WRITES,
        apply_event_writes,
        dagster_default_event_writes,
    )

    for name in BATCHED_EVENT_WRITES:
        os.environ.pop(name, None)  # each mode sets exactly what it measures
    if mode != "default":
        apply_event_writes()  # the shipped setting (`default` measures Dagster's own)
    import great_expectations  # noqa: F401  (its ~13 s import is start-up, not throughput)

    from tests.graph.conftest import QUIET, make_graph, throwaway_postgres_instance

    first, last, minutes = sessions(n)
    out: dict[str, object] = {"mode": mode, "sessions": n, "partitions": minutes}
    with tempfile.TemporaryDirectory() as tmp:
        graph = make_graph(Path(tmp) / "warehouse")
        if mode == "floor":
            home = Path(tmp) / "home"
            home.mkdir()
            with throwaway_postgres_instance(home) as (instance, _):
                started = time.perf_counter()
                result = floor_job().execute_in_process(
                    instance=instance, tags=_range_tags(first, last), run_config=QUIET
                )
                assert result.success
                out |= {"backtest_s": time.perf_counter() - started, "report_s": 0.0, "steps": {}}
        elif mode == "plain":
            from plain_graph import run_plain

            started = time.perf_counter()
            _, spent = run_plain(graph.defs, first, last)
            out |= {"backtest_s": time.perf_counter() - started, "report_s": 0.0, "steps": spent}
        else:
            home = Path(tmp) / "home"
            home.mkdir()
            with (
                dagster_default_event_writes() if mode == "default" else _nothing(),
                throwaway_postgres_instance(home) as (instance, _),
            ):
                tags = _range_tags(first, last)
                started = time.perf_counter()
                result = graph.defs.resolve_job_def("backtest_job").execute_in_process(
                    instance=instance, tags=tags, run_config=QUIET, raise_on_error=False
                )
                backtest_s = time.perf_counter() - started
                assert result.success, "backtest_job failed"
                started = time.perf_counter()
                report = graph.defs.resolve_job_def("backtest_report_job").execute_in_process(
                    instance=instance, run_config=QUIET, raise_on_error=False
                )
                report_s = time.perf_counter() - started
                assert report.success, "backtest_report_job failed"
                out |= {
                    "backtest_s": backtest_s,
                    "report_s": report_s,
                    "steps": step_seconds(instance, result.run_id)
                    | {f"report:{k}": v for k, v in step_seconds(instance, report.run_id).items()},
                }
    out["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _range_tags(first: str, last: str) -> dict[str, str]:
    from trading_assets.partitions import MinuteSpan

    return MinuteSpan.of_keys(first, last).tags


FLOOR_ASSETS = 15  # backtest_job's materialized outputs (the four analysts, bull and bear)


def floor_job():  # type: ignore[no-untyped-def]
    """A chain of FLOOR_ASSETS minute-partitioned assets that compute and store nothing."""
    from dagster import BackfillPolicy, Definitions, asset, define_asset_job

    from trading_assets.assets.ingest import MINUTES

    chain = []
    for i in range(FLOOR_ASSETS):

        @asset(
            name=f"noop_{i}",
            partitions_def=MINUTES,
            backfill_policy=BackfillPolicy.single_run(),
            deps=chain[-1:],
        )
        def _noop() -> None:
            return None

        chain.append(_noop)
    defs = Definitions(assets=chain, jobs=[define_asset_job("floor", partitions_def=MINUTES)])
    return defs.resolve_job_def("floor")


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None


def run_one(mode: str, n: int) -> dict[str, object]:
    """A measurement in a fresh interpreter."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--one", mode, str(n)],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode or not lines:
        sys.stderr.write(proc.stderr[-3000:])
        raise SystemExit(f"{mode} x {n} sessions failed")
    out = json.loads(lines[-1])
    out["process_s"] = time.perf_counter() - started
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", default="1,3,12", help="numbers of sessions (%(default)s)")
    parser.add_argument("--modes", default="tuned,plain,floor,default", help="(%(default)s)")
    parser.add_argument(
        "--default-max-sessions",
        type=int,
        default=1,
        help="measure Dagster's defaults up to this many sessions (%(default)s; ~5 min a "
        "session here)",
    )
    parser.add_argument("--one", nargs=2, metavar=("MODE", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], int(args.one[1]))))
        return 0
    counts = [int(x) for x in args.sessions.split(",")]
    modes = args.modes.split(",")
    print(f"load before: {os.getloadavg()[0]:.2f} (2 cores)")
    results: dict[tuple[str, int], dict] = {}
    for n in counts:
        for mode in modes:
            if mode == "default" and n > args.default_max_sessions:
                continue
            r = run_one(mode, n)
            results[(mode, n)] = r
            total = r["backtest_s"] + r["report_s"]
            print(
                f"{mode:>7} {n:>2} sessions ({r['partitions']:>5} partitions): "
                f"backtest_job {r['backtest_s']:7.1f} s + report {r['report_s']:5.1f} s = "
                f"{total:7.1f} s; {r['partitions'] / total:6.1f} partitions/s; "
                f"{total / n:6.1f} s/session; peak {r['peak_mib']:,.0f} MiB",
                flush=True,
            )
    print("\n| sessions | partitions | mode | backtest_job s | report s | total s | partitions/s "
          "| s/session | peak MiB |")  # fmt: skip
    print("|---:|---:|---|---:|---:|---:|---:|---:|---:|")
    for (mode, n), r in sorted(results.items(), key=lambda x: (x[0][1], x[0][0])):
        total = r["backtest_s"] + r["report_s"]
        print(
            f"| {n} | {r['partitions']} | {mode} | {r['backtest_s']:.1f} | {r['report_s']:.1f} | "
            f"{total:.1f} | {r['partitions'] / total:.1f} | {total / n:.1f} | "
            f"{r['peak_mib']:,.0f} |"
        )
    print()
    for mode in modes:
        runs = sorted((n, r) for (m, n), r in results.items() if m == mode)
        if len(runs) > 1:
            (n0, r0), (n1, r1) = runs[0], runs[-1]
            t0, t1 = r0["backtest_s"] + r0["report_s"], r1["backtest_s"] + r1["report_s"]
            print(
                f"growth ({mode}): {n1 / n0:.0f}x the sessions took {t1 / t0:.2f}x the time "
                f"(linear = {n1 / n0:.0f}x)"
            )
    for n in counts:
        tuned, default, plain = (results.get((m, n)) for m in ("tuned", "default", "plain"))
        if tuned and default:
            ratio = (default["backtest_s"] + default["report_s"]) / (
                tuned["backtest_s"] + tuned["report_s"]
            )
            print(f"{n} sessions: Dagster defaults / shipped setting = {ratio:.1f}x")
        floor = results.get(("floor", n))
        if tuned and floor:
            print(
                f"{n} sessions: backtest_job {tuned['backtest_s']:.1f} s; Dagster's floor for "
                f"{FLOOR_ASSETS} assets x {tuned['partitions']} partitions: "
                f"{floor['backtest_s']:.1f} s"
            )
        if tuned and plain:
            print(
                f"{n} sessions: backtest_job in Dagster / the same computation plain = "
                f"{tuned['backtest_s'] / plain['backtest_s']:.2f}x "
                f"({tuned['backtest_s']:.1f} s vs {plain['backtest_s']:.1f} s)"
            )
    for (mode, n), r in sorted(results.items(), key=lambda x: (x[0][1], x[0][0])):
        if n == max(counts):
            top = sorted(r["steps"].items(), key=lambda x: -x[1])[:8]
            print(f"slowest steps, {mode} x {n}: " + ", ".join(f"{k} {v:.1f}" for k, v in top))
            checks = sum(v for k, v in r["steps"].items() if "_valid" in k or "_ok" in k)
            steps = sum(v for k, v in r["steps"].items() if not k.startswith("report:"))
            if mode != "plain" and steps:
                print(
                    f"  {mode} x {n}: backtest_job steps {steps:.1f} s (checks {checks:.1f} s); "
                    f"outside any step (run creation, planning, resources) "
                    f"{r['backtest_s'] - steps:.1f} s"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
