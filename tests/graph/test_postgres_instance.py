"""The ingest job on a Dagster instance stored in the machine's real PostgreSQL server.

A throw-away database is created and dropped per test; the instance is configured the way
dagster.yaml.example configures it (scheme postgresql+psycopg2).
"""

import os
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest
from dagster import AssetKey, DagsterInstance, DagsterRunStatus

from tests.graph.conftest import make_graph

PG = {
    "host": os.environ.get("DAGSTER_PG_HOST", "127.0.0.1"),
    "port": int(os.environ.get("DAGSTER_PG_PORT", "5432")),
    "user": os.environ.get("DAGSTER_PG_USER", "postgres"),
}
pytestmark = pytest.mark.postgres


def admin() -> psycopg2.extensions.connection:
    conn = psycopg2.connect(dbname="postgres", **PG)
    conn.autocommit = True
    return conn


@pytest.fixture
def pg_instance(tmp_path: Path) -> Iterator[tuple[DagsterInstance, str]]:
    db = f"dagster_test_{uuid.uuid4().hex[:10]}"
    with closing(admin()) as conn, conn.cursor() as cur:
        cur.execute(f'CREATE DATABASE "{db}"')
    example = (Path(__file__).resolve().parents[2] / "dagster.yaml.example").read_text()
    config = (
        example.replace("{env: DAGSTER_PG_HOST}", PG["host"])
        .replace("{env: DAGSTER_PG_USER}", PG["user"])
        .replace("{env: DAGSTER_PG_PASSWORD}", '""')
        .replace("{env: DAGSTER_PG_DB}", db)
        .replace("port: 5432", f"port: {PG['port']}")
    )
    (tmp_path / "dagster.yaml").write_text(config)
    instance = DagsterInstance.from_config(str(tmp_path))
    try:
        yield instance, db
    finally:
        instance.dispose()
        with closing(admin()) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [db]
            )
            cur.execute(f'DROP DATABASE IF EXISTS "{db}"')


def test_ingest_run_is_stored_in_postgres_and_reads_back(
    pg_instance: tuple[DagsterInstance, str], tmp_path: Path
) -> None:
    instance, db = pg_instance
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    graph = make_graph(tmp_path)
    result = graph.run(instance, "2026-03-23-10:00", "2026-03-23-10:29")
    assert result.success

    run = instance.get_run_by_id(result.run_id)
    assert run is not None and run.status == DagsterRunStatus.SUCCESS
    for asset in ("bars", "news", "fundamentals"):
        assert len(instance.get_materialized_partitions(AssetKey(asset))) == 30, asset

    with psycopg2.connect(dbname=db, **PG) as conn, conn.cursor() as cur:
        cur.execute("SELECT status FROM runs WHERE run_id = %s", [result.run_id])
        assert cur.fetchone() == ("SUCCESS",)
        cur.execute(
            "SELECT asset_key, count(DISTINCT partition) FROM event_logs "
            "WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION' "
            "GROUP BY asset_key ORDER BY asset_key",
            [result.run_id],
        )
        assert cur.fetchall() == [('["bars"]', 30), ('["fundamentals"]', 30), ('["news"]', 30)]
        cur.execute(
            "SELECT check_name, count(*) FROM asset_check_executions "
            "WHERE run_id = %s AND execution_status = 'SUCCEEDED' GROUP BY check_name",
            [result.run_id],
        )
        succeeded = dict(cur.fetchall())
    assert set(succeeded) == {
        "bars_valid",
        "bars_expected_tickers",
        "news_valid",
        "fundamentals_point_in_time",
    }
