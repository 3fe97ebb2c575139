"""Where assets live: one DuckDB file, read by the IO manager, the checks and (later) dbt.

The file name (`warehouse.duckdb`) and the schema (`trading`) differ on purpose: DuckDB's binder
confuses `warehouse.x` between a catalog and a schema of the same name (DESIGN).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd
from dagster import InputContext, OutputContext, TimeWindow
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TablePartitionDimension, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb.io_manager import DbIOManager, DuckDbClient
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

from resources.duckdb_locks import connect as lock_aware_connect
from trading_assets.partitions import (
    HISTORY_MINUTES,
    MinuteSpan,
    is_minute_partitions,
    minutes_back,
)

SCHEMA = "trading"
REPO_ROOT = Path(__file__).resolve().parents[1]


def data_dir() -> Path:
    """TRADING_DATA_DIR, or ./data in the repository."""
    return Path(os.environ.get("TRADING_DATA_DIR") or REPO_ROOT / "data").expanduser().resolve()


def warehouse_path() -> Path:
    """TRADING_WAREHOUSE, or warehouse.duckdb in the data folder."""
    explicit = os.environ.get("TRADING_WAREHOUSE")
    path = Path(explicit).expanduser().resolve() if explicit else data_dir() / "warehouse.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def table_exists(conn: duckdb.DuckDBPyConnection, table: str, schema: str = SCHEMA) -> bool:
    """Whether `schema.table` has ever been written (readers of optional tables ask first)."""
    row = conn.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(row and row[0])


class _PandasHandler(DuckDBPandasTypeHandler):
    """The stock pandas handler, with two differences.

    A quiet minute is not an error: the stock handler skips writing an empty frame, so an asset
    whose whole range was quiet (no news) has no table, and every downstream load then fails.
    Here an empty frame still creates the (empty) table with its columns, and loading a table
    that was never written gives an empty frame.

    Metadata stays small: the stock handler attaches the frame's column schema and its row
    count to the output, which Dagster copies into every partition's materialization (4,680
    copies in a 12-session backfill; BENCHMARKS). Only a one-partition run records its row
    count here; a range's figures are the asset's own run summary.
    """

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> None:
        # The IO manager already deleted the range's old rows; only the table may be missing.
        # An empty object column would become DuckDB's NULL type, which no later row fits.
        if not len(obj.columns):
            context.log.warning(f"{table_slice.table}: a frame without columns is not stored")
            return
        if obj.empty:
            obj = obj.astype({c: "string" for c in obj.columns if obj[c].dtype == object})
        table = f"{table_slice.schema}.{table_slice.table}"
        connection.execute(f"CREATE TABLE IF NOT EXISTS {table} AS SELECT * FROM obj LIMIT 0")
        if len(obj):
            connection.execute(f"INSERT INTO {table} SELECT * FROM obj")
        if not context.has_asset_partitions:
            summary = TableMetadataSet(row_count=len(obj), storage_kind="duckdb")
        elif context.has_partition_key:
            summary = TableMetadataSet(partition_row_count=len(obj), storage_kind="duckdb")
        else:
            return
        context.add_output_metadata(dict(summary))

    def load_input(
        self, context: InputContext, table_slice: TableSlice, connection
    ) -> pd.DataFrame:
        if not table_exists(connection, table_slice.table, table_slice.schema):
            return pd.DataFrame()
        return super().load_input(context, table_slice, connection)


class _LockAwareClient(DuckDbClient):
    """dagster-duckdb's client with its connect going through `resources.duckdb_locks`: a
    jittered, time-bounded wait for another process's file lock instead of a fixed ladder."""

    @staticmethod
    @contextmanager
    def connect(context, _) -> Iterator[duckdb.DuckDBPyConnection]:
        config = {"custom_user_agent": "dagster", **context.resource_config["connection_config"]}
        conn = lock_aware_connect(context.resource_config["database"], config=config)
        try:
            yield conn
        finally:
            conn.close()


class _TransactionalClient(_LockAwareClient):
    """Every IO manager connection is one transaction. Dagster's DbIOManager deletes the
    partition range's rows and then the handler inserts the new ones on this connection; as
    two autocommitted statements, a run killed between them (or an insert the table refuses)
    left the range empty while the instance still showed it materialized. Now the old rows
    stay until the new ones commit with them.

    Any failed statement aborts a DuckDB transaction, so nothing here may fail on purpose: a
    table not written yet is looked up, not caught (here and in `_PandasHandler.load_input`)."""

    @staticmethod
    @contextmanager
    def connect(context, table_slice) -> Iterator[duckdb.DuckDBPyConnection]:
        with _LockAwareClient.connect(context, table_slice) as conn:
            conn.begin()
            try:
                yield conn
            except BaseException:
                conn.rollback()
                raise
            conn.commit()

    @staticmethod
    def delete_table_slice(context: OutputContext, table_slice: TableSlice, connection) -> None:
        if table_exists(connection, table_slice.table, table_slice.schema):
            DuckDbClient.delete_table_slice(context, table_slice, connection)


class _MinuteWindowIOManager(DbIOManager):
    """dagster-duckdb's IO manager with the run's rows chosen by time, not by partition keys.

    A minute partition key is two-dimensional (`trading_assets.partitions`), so Dagster's own
    slice would be "these dates x these minute labels", and it refuses a multi-session range
    outright (one key range per date). A run covers one stretch of minutes (`MinuteSpan`), so
    its rows are exactly `first <= minute < end`: what an output replaces, what an input reads.
    An input declared with `history_minutes` also reads that many session minutes before the
    run's first (the analysts' warm-up), and never anything after the run's last minute,
    whatever Dagster's partition mapping lists: the point-in-time rule lives here.
    """

    def _get_table_slice(
        self, context: OutputContext | InputContext, output_context: OutputContext
    ) -> TableSlice:
        if context.has_asset_partitions and not is_minute_partitions(
            context.asset_partitions_def
        ):  # another partitioning (a test's daily asset, say): dagster-duckdb's own slice
            return super()._get_table_slice(context, output_context)
        metadata = output_context.definition_metadata or {}
        table_slice = TableSlice(
            table=context.asset_key.path[-1],
            schema=str(metadata.get("schema") or self._schema),
            database=self._database,
            partition_dimensions=[],
            columns=(context.definition_metadata or {}).get("columns"),
        )
        if not context.has_asset_partitions:
            return table_slice
        span = MinuteSpan.of_tags(context.step_context.dagster_run.tags)
        if span is None:  # an unpartitioned asset reading a partitioned one: every row
            return table_slice
        start = span.first
        if isinstance(context, InputContext):
            start = minutes_back(
                span.first, int(context.definition_metadata.get(HISTORY_MINUTES, 0))
            )
        window = TimeWindow(start.to_pydatetime(), span.end.to_pydatetime())
        dimension = TablePartitionDimension(str(metadata["partition_expr"]), window)
        return table_slice._replace(partition_dimensions=[dimension])


class WarehouseIOManager(DuckDBPandasIOManager):
    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_PandasHandler()]

    def create_io_manager(self, context) -> DbIOManager:
        return _MinuteWindowIOManager(
            db_client=_TransactionalClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="DuckDBIOManager",
        )


class WarehouseResource(DuckDBResource):
    """DuckDBResource whose connections wait out another process's lock (duckdb_locks)."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        config = {"custom_user_agent": "dagster", **self.connection_config}
        conn = lock_aware_connect(self.database, config=config)
        try:
            yield conn
        finally:
            conn.close()


def warehouse_io_manager(path: Path | None = None) -> DuckDBPandasIOManager:
    return WarehouseIOManager(database=str(path or warehouse_path()), schema=SCHEMA)


def warehouse_resource(path: Path | None = None) -> DuckDBResource:
    return WarehouseResource(database=str(path or warehouse_path()))
