"""Helpers to run the real code location against a throw-away warehouse and instance."""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
)

from resources.market_data import MarketDataResource
from resources.providers.replay import BUNDLED_REPLAY_DIR
from trading_assets.assets.ingest import MINUTES
from trading_assets.checks.ingest import INGEST_CHECKS
from trading_assets.definitions import build_definitions

CHECKS_ONLY = define_asset_job(
    "ingest_checks_only",
    selection=AssetSelection.checks(*INGEST_CHECKS),
    partitions_def=MINUTES,
)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


@dataclass
class Graph:
    defs: Definitions
    warehouse: Path

    def run(
        self,
        instance: DagsterInstance,
        first: str,
        last: str | None = None,
        job: str = "ingest_job",
    ) -> ExecuteInProcessResult:
        tags = (
            {"dagster/partition": first}
            if last is None
            else {
                "dagster/asset_partition_range_start": first,
                "dagster/asset_partition_range_end": last,
            }
        )
        return self.defs.resolve_job_def(job).execute_in_process(
            instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
        )

    def query(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse)) as conn:
            return conn.execute(sql, params or []).df()

    def execute(self, sql: str, params: list[object] | None = None) -> None:
        with duckdb.connect(str(self.warehouse)) as conn:
            conn.execute(sql, params or [])


def make_graph(tmp: Path, replay_dir: Path = BUNDLED_REPLAY_DIR) -> Graph:
    warehouse = tmp / "warehouse.duckdb"
    defs = build_definitions(
        warehouse=warehouse, market_data=MarketDataResource(replay_dir=str(replay_dir))
    )
    return Graph(Definitions.merge(defs, Definitions(jobs=[CHECKS_ONLY])), warehouse)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        yield inst


def check_results(result: ExecuteInProcessResult) -> dict[str, object]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def replay_bars_utc() -> pd.DataFrame:
    """The bundled bars read independently of the provider (the source of truth in tests)."""
    bars = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    return bars
