"""Crash-safe backfills: a backtest backfill SIGKILLed mid-run, re-launched over the same range,
ends with exactly one copy of every partition's rows and the same tables as a run that was never
interrupted; a kill inside the warehouse write leaves the old rows or the new, never neither.

The killed runs are `dagster job execute` processes on a throw-away Postgres instance, tagged as
the backfill daemon tags a single-run backfill (tests/graph/crash_harness.py). The backtest runs
over one hour after a warm-up session, like tests/graph/test_backtest.py; the report job and
larger ranges with more kill points are benchmarks/crash_backfill.py's.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DailyPartitionsDefinition,
    asset,
    build_run_status_sensor_context,
    materialize,
)

from resources.warehouse import warehouse_io_manager
from sensors.failures import failure_message, run_failure_alert, unmaterialized
from tests.graph import write_worker
from tests.graph.crash_harness import (
    BACKFILL,
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
from trading_assets.definitions import build_definitions

WARM_UP = ("2026-03-20|09:30", "2026-03-20|15:59")  # history for the look-backs
FIRST, LAST = "2026-03-23|10:00", "2026-03-23|10:59"
MINUTES = 60
ANALYSTS = ("technical_analysis", "fundamental_analysis", "sentiment_analysis", "macro_analysis")


@dataclass
class Crashed:
    uninterrupted: Site
    crashed: Site
    kills: list[Kill]
    alerts: list[str]
    left: list[dict[AssetKey, list[str]]]  # per kill: what the alert reports unmaterialized
    rerun_success: bool


def alert_for(instance: DagsterInstance, run_id: str) -> str:
    """The text run_failure_alert posts for this run's RUN_FAILURE event."""
    run = instance.get_run_by_id(run_id)
    assert run is not None
    (record,) = instance.all_logs(run_id, of_type=DagsterEventType.RUN_FAILURE)
    context = build_run_status_sensor_context(
        sensor_name=run_failure_alert.name,
        dagster_instance=instance,
        dagster_run=run,
        dagster_event=record.dagster_event,
    ).for_run_failure()
    return failure_message(context)


@pytest.fixture(scope="module")
def crashed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Crashed]:
    """The same warm-up in two warehouses; one runs the hour uninterrupted, the other is killed
    after the ingest layer, re-launched and killed again among the analysts, then re-launched
    to the end."""
    root = tmp_path_factory.mktemp("crash")
    with sites(root, "uninterrupted", "crashed") as (clean, crash):
        clean_defs = build_definitions(warehouse=clean.warehouse)
        assert run_in_process(clean_defs, clean, "ingest_job", *WARM_UP).success
        copy_warehouse(clean, crash)
        assert run_in_process(clean_defs, clean, "backtest_job", FIRST, LAST).success

        kills, alerts, left = [], [], []
        for ready in (
            lambda done, _: "bars" in done,
            lambda done, _: any(a in done for a in ANALYSTS),
        ):
            kill = kill_when(crash, FIRST, LAST, ready)
            run = mark_failed(crash, kill)
            kills.append(kill)
            alerts.append(alert_for(crash.instance, kill.run_id))
            left.append(unmaterialized(crash.instance, run))

        crash_defs = build_definitions(warehouse=crash.warehouse)
        rerun = run_in_process(crash_defs, crash, "backtest_job", FIRST, LAST)
        yield Crashed(clean, crash, kills, alerts, left, rerun.success)


def test_each_kill_landed_mid_run_and_the_run_is_marked_failed(crashed: Crashed) -> None:
    after_ingest, among_analysts = (kill.materialized for kill in crashed.kills)
    assert "bars" in after_ingest and "trade_signals" not in after_ingest
    assert any(a in among_analysts for a in ANALYSTS) and "debate" not in among_analysts
    for kill in crashed.kills:
        assert kill.killed
        assert kill.status == DagsterRunStatus.STARTED  # nothing told the instance it died
        run = crashed.crashed.instance.get_run_by_id(kill.run_id)
        assert run.status == DagsterRunStatus.FAILURE
        assert run.tags[BACKFILL] and run.job_name == "backtest_job"


def test_the_failure_alert_names_what_the_killed_run_left_unmaterialized(
    crashed: Crashed,
) -> None:
    for kill, text, left in zip(crashed.kills, crashed.alerts, crashed.left, strict=True):
        assert text.startswith(":rotating_light: backtest_job failed (run ")
        assert "run worker process died (SIGKILL)" in text
        assert f"{FIRST}..{LAST} not materialized: " in text
        # every asset the run stored is complete; every other one lacks the whole hour
        for key, missing in left.items():
            if key.to_user_string() in kill.materialized:
                assert missing == []
            else:
                assert len(missing) == MINUTES and missing[0] == FIRST
                assert f"{key.to_user_string()} {MINUTES} (from {FIRST})" in text
        assert left[AssetKey("backtest_fills")]  # the run did not get to the end


def test_the_rerun_leaves_one_copy_of_every_row_and_the_uninterrupted_result(
    crashed: Crashed,
) -> None:
    assert crashed.rerun_success
    assert duplicates(crashed.crashed.warehouse) == {}
    assert differing_tables(crashed.uninterrupted.warehouse, crashed.crashed.warehouse) == {}
    assert {"run_id", "created_at"} == VOLATILE_COLUMNS  # all that was left out of the compare
    with duckdb.connect(str(crashed.crashed.warehouse), read_only=True) as conn:
        per_minute = conn.execute(
            "SELECT count(DISTINCT minute), count(*) / count(DISTINCT minute) FROM trading.bars "
            "WHERE minute >= '2026-03-23 10:00' AND minute < '2026-03-23 11:00'"
        ).fetchone()
        signals = conn.execute("SELECT count(*) FROM trading.trade_signals").fetchone()[0]
    assert per_minute == (MINUTES, 9)  # each minute once per ticker of the universe
    assert signals > 0  # the comparison covers decisions, not just empty tables


def test_a_kill_inside_the_warehouse_write_keeps_the_old_rows_or_the_new(
    tmp_path: Path,
) -> None:
    """Kill a process while the IO manager replaces a partition (its delete and insert), at
    several points: the partition then holds all of the old version or all of the new one,
    and the other partition is untouched."""
    warehouse, rows = tmp_path / "warehouse.duckdb", 400_000
    for day in write_worker.DAYS:
        write_worker.write(warehouse, day, 1, rows)
    day, other = write_worker.DAYS
    seconds = write_worker.write(warehouse, day, 1, rows)  # how long replacing it takes
    for version, fraction in enumerate((0.2, 0.5, 0.8), start=2):
        held = write_worker.kill_while_writing(warehouse, day, version, rows, seconds * fraction)
        assert held[other] == {1: rows}
        ((kept, count),) = held[day].items()  # one version, never a mix or none
        assert count == rows and 1 <= kept <= version
    write_worker.write(warehouse, day, 9, rows)
    assert write_worker.versions(warehouse) == {day: {9: rows}, other: {1: rows}}


def test_a_write_the_table_refuses_keeps_the_partitions_previous_rows(tmp_path: Path) -> None:
    """An upgraded asset whose frame no longer fits the stored table (a renamed column) fails
    its write; the range it was replacing keeps its rows instead of being left empty."""
    days = DailyPartitionsDefinition(start_date="2026-03-20")
    io_manager = warehouse_io_manager(tmp_path / "warehouse.duckdb")

    def table(columns: dict[str, object]) -> AssetsDefinition:
        @asset(name="prices", partitions_def=days, metadata={"partition_expr": "minute"})
        def prices() -> pd.DataFrame:
            return pd.DataFrame(columns)

        return prices

    minute = pd.Timestamp("2026-03-23 10:00")
    old = table({"minute": [minute], "close": [101.0]})
    with DagsterInstance.ephemeral() as instance:
        first = materialize(
            [old],
            partition_key="2026-03-23",
            resources={"io_manager": io_manager},
            instance=instance,
        )
        assert first.success
        new = table({"minute": [minute], "close_price": np.array(["not a number"])})
        second = materialize(
            [new],
            partition_key="2026-03-23",
            resources={"io_manager": io_manager},
            instance=instance,
            raise_on_error=False,
        )
    assert not second.success
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("SELECT minute, close FROM trading.prices").fetchall() == [
            (minute.to_pydatetime(), 101.0)
        ]
