"""A minute decided live (one partition a run, as the intraday schedule runs it) must trigger
debates exactly as the same minute inside a backfill (one run over a range): the gate compares
each minute with the one before, which a one-minute run has to look up itself."""

from pathlib import Path

import pandas as pd
from dagster import DagsterInstance, Definitions, define_asset_job

from tests.graph.conftest import QUIET, make_graph
from trading_assets.assets.ingest import MINUTES
from trading_assets.research.gating import trigger_kinds

GATE_ONLY = define_asset_job("gate_only", selection=["debate_triggers"], partitions_def=MINUTES)
SESSION = "2026-03-23"
EXACT = ["minute", "ticker", "triggered", "debated"]


def test_one_minute_runs_trigger_exactly_as_one_backfill_run(tmp_path: Path) -> None:
    graph = make_graph(tmp_path)
    defs = Definitions.merge(graph.defs, Definitions(jobs=[GATE_ONLY]))
    job = defs.resolve_job_def("gate_only")
    minutes = pd.date_range(f"{SESSION} 09:30", f"{SESSION} 09:59", freq="min")
    keys = [m.strftime("%Y-%m-%d|%H:%M") for m in minutes]
    with DagsterInstance.ephemeral() as instance:
        warm = graph.run(instance, "2026-03-20|09:30", keys[-1], job="ingest_job")
        assert warm.success
        ranged = job.execute_in_process(
            instance=instance,
            run_config=QUIET,
            tags={
                "dagster/asset_partition_range_start": keys[0],
                "dagster/asset_partition_range_end": keys[-1],
            },
        )
        assert ranged.success
        backfill = graph.query("SELECT * FROM trading.debate_triggers ORDER BY minute, ticker")
        for key in keys:
            assert job.execute_in_process(
                instance=instance, run_config=QUIET, tags={"dagster/partition": key}
            ).success
        live = graph.query("SELECT * FROM trading.debate_triggers ORDER BY minute, ticker")

    # The window has crossings to compare: a crossing is what needs the minute before, and a
    # live run that lost it would only ever miss crossings (headlines and shocks need no history).
    assert trigger_kinds(backfill)["signal crossing"] > 0
    pd.testing.assert_frame_equal(
        live[EXACT].reset_index(drop=True), backfill[EXACT].reset_index(drop=True)
    )
    # Strengths agree to the indicators' warm-up: 200 minutes of history are only 40 buckets
    # for the 5-minute EMAs, which then still depend on where the loaded history starts.
    pd.testing.assert_series_equal(live["strength"], backfill["strength"], atol=0.01, rtol=0)
