"""A backtest by backfill: `backtest_job` over a range of sessions as one run, then the report.

    .venv/bin/python benchmarks/backtest_backfill.py [--first KEY] [--last KEY]

Prints the wall time of the run and of each step (from the run's own events), peak memory
(ru_maxrss of this process), and the performance table the report computes. A throw-away
warehouse and an ephemeral instance, the rules backend, the bundled data: what `make demo`
does after its replay, minus the SQLite instance's event writes.
"""

import argparse
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' helpers

from tests.graph.conftest import make_graph
from trading_assets.assets.backtest import performance_markdown


def step_seconds(instance: DagsterInstance, run_id: str) -> dict[str, float]:
    """Seconds between each step's start and its success, from the run's event log."""
    started: dict[str, float] = {}
    spent: dict[str, float] = defaultdict(float)
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            spent[event.step_key] += record.timestamp - started.get(
                event.step_key, record.timestamp
            )
    return dict(spent)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--first", default="2026-03-12|09:30")
    parser.add_argument("--last", default="2026-03-27|15:59")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, DagsterInstance.ephemeral() as instance:
        graph = make_graph(Path(tmp))
        started = time.perf_counter()
        result = graph.run(instance, args.first, args.last, job="backtest_job")
        backtest_s = time.perf_counter() - started
        assert result.success, "backtest_job failed"
        print(f"backtest_job {args.first} .. {args.last}: {backtest_s:.1f} s (one run)")
        for step, seconds in sorted(
            step_seconds(instance, result.run_id).items(), key=lambda x: -x[1]
        ):
            print(f"  {step:<28} {seconds:7.1f} s")
        started = time.perf_counter()
        report = graph.defs.resolve_job_def("backtest_report_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        report_s = time.perf_counter() - started
        assert report.success, "backtest_report_job failed"
        print(f"backtest_report_job: {report_s:.1f} s")
        for step, seconds in step_seconds(instance, report.run_id).items():
            print(f"  {step:<28} {seconds:7.1f} s")
        frame = report.output_for_node("backtest_performance")
        table = frame[frame["scope"] == "all"]
        fills = graph.query("SELECT count(*) AS n FROM trading.backtest_fills")["n"].iloc[0]
        print(f"\n{int(table['sessions'].iloc[0])} sessions, {fills} agent fills")
        print(performance_markdown(table))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory (this process): {peak:,.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
