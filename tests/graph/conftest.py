"""Helpers to run the real code location against a throw-away warehouse and instance."""

import os
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
)

from resources.broker import BrokerResource
from resources.llm import LLMResource
from resources.market_data import MarketDataResource
from resources.providers.replay import BUNDLED_REPLAY_DIR
from resources.trading_controls import TradingControls
from trading_assets.assets.ingest import MINUTES
from trading_assets.checks.ingest import INGEST_CHECKS
from trading_assets.definitions import build_definitions
from trading_assets.event_writes import apply_event_writes
from trading_assets.partitions import PARTITION_TAG, MinuteSpan, key_minute

CHECKS_ONLY = define_asset_job(
    "ingest_checks_only",
    selection=AssetSelection.checks(*INGEST_CHECKS),
    partitions_def=MINUTES,
)
QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
apply_event_writes()  # the shipped setting, as `make test` exports it


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
        """`job` over the partitions `first` .. `last` (or the one partition `first`): one run,
        or one run per stretch a run may cover (`MinuteSpan.covering`, e.g. a warm-up from
        the previous session into this one); the first failed run's result, else the last."""
        if last is None:
            spans = [{PARTITION_TAG: first}]
        else:
            spans = [s.tags for s in MinuteSpan.covering(key_minute(first), key_minute(last))]
        for tags in spans:
            result = self.defs.resolve_job_def(job).execute_in_process(
                instance=instance, tags=tags, raise_on_error=False, run_config=QUIET
            )
            if not result.success:
                break
        return result

    def recheck(
        self, instance: DagsterInstance, first: str, last: str, check_name: str
    ) -> AssetCheckEvaluation:
        """Run only the checks over a range and return one check's evaluation."""
        result = self.run(instance, first, last, job=CHECKS_ONLY.name)
        return check_results(result)[check_name]

    def query(self, sql: str, params: list[object] | None = None) -> pd.DataFrame:
        with duckdb.connect(str(self.warehouse)) as conn:
            return conn.execute(sql, params or []).df()

    def execute(self, sql: str, params: list[object] | None = None) -> None:
        with duckdb.connect(str(self.warehouse)) as conn:
            conn.execute(sql, params or [])


def make_graph(
    tmp: Path,
    replay_dir: Path = BUNDLED_REPLAY_DIR,
    tickers: str = "",
    llm: LLMResource | None = None,
    broker: BrokerResource | None = None,
    controls: TradingControls | None = None,
) -> Graph:
    """The code location on a warehouse in `tmp`; the rules backend unless `llm` is given."""
    tmp.mkdir(parents=True, exist_ok=True)
    warehouse = tmp / "warehouse.duckdb"
    defs = build_definitions(
        warehouse=warehouse,
        market_data=MarketDataResource(replay_dir=str(replay_dir), tickers=tickers),
        llm=llm or LLMResource(provider="rules"),
        broker=broker,
        controls=controls,
    )
    return Graph(Definitions.merge(defs, Definitions(jobs=[CHECKS_ONLY])), warehouse)


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral() as inst:
        yield inst


def check_results(result: ExecuteInProcessResult) -> dict[str, AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


PG = {
    "host": os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("DAGSTER_PG_PORT", "5432")),
    "user": os.environ.get("DAGSTER_PG_USER", "postgres"),
}


def _admin() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    return conn


@contextmanager
def throwaway_postgres_instance(home: Path) -> Iterator[tuple[DagsterInstance, str]]:
    """A Dagster instance configured as dagster.yaml.example, on a database created for it on
    the local server and dropped afterwards."""
    db = f"dagster_test_{uuid.uuid4().hex[:10]}"
    with closing(_admin()) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    example = (Path(__file__).resolve().parents[2] / "dagster.yaml.example").read_text()
    (home / "dagster.yaml").write_text(
        example.replace("{env: DAGSTER_PG_HOST}", PG["host"])
        .replace("{env: DAGSTER_PG_USER}", PG["user"])
        .replace("{env: DAGSTER_PG_PASSWORD}", '""')
        .replace("{env: DAGSTER_PG_DB}", db)
        .replace("port: 5432", f"port: {PG['port']}")
    )
    instance = DagsterInstance.from_config(str(home))
    try:
        yield instance, db
    finally:
        instance.dispose()
        with closing(_admin()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [db]
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{db}"')


def replay_bars_utc() -> pd.DataFrame:
    """The bundled bars read independently of the provider (the source of truth in tests)."""
    bars = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    bars["timestamp"] = pd.to_datetime(bars["timestamp"], utc=True)
    return bars
