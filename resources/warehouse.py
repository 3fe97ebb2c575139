"""Where assets live: one DuckDB file, read by the IO manager, the checks and (later) dbt.

The file name (`warehouse.duckdb`) and the schema (`trading`) differ on purpose: DuckDB's binder
confuses `warehouse.x` between a catalog and a schema of the same name (DESIGN).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import duckdb
import pandas as pd
from dagster import InputContext, OutputContext
from dagster._core.definitions.metadata import TableMetadataSet
from dagster._core.storage.db_io_manager import DbTypeHandler, TableSlice
from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager, DuckDBPandasTypeHandler

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
    """The stock pandas handler, except that a quiet minute is not an error.

    The stock handler skips writing an empty frame, so an asset whose whole range was quiet (no
    news) has no table, and every downstream load then fails. Here an empty frame still creates
    the (empty) table with its columns, and loading a table that was never written gives an
    empty frame.
    """

    def handle_output(
        self, context: OutputContext, table_slice: TableSlice, obj: pd.DataFrame, connection
    ) -> None:
        if not (obj.empty and len(obj.columns)):
            super().handle_output(context, table_slice, obj, connection)
            return
        # The IO manager already deleted the range's old rows; only the table may be missing.
        # An empty object column would become DuckDB's NULL type, which no later row fits.
        obj = obj.astype({c: "string" for c in obj.columns if obj[c].dtype == object})
        connection.execute(
            f"CREATE TABLE IF NOT EXISTS {table_slice.schema}.{table_slice.table} "
            "AS SELECT * FROM obj"
        )
        context.add_output_metadata(
            dict(TableMetadataSet(partition_row_count=0, storage_kind="duckdb"))
            if context.has_partition_key
            else dict(TableMetadataSet(row_count=0, storage_kind="duckdb"))
        )

    def load_input(
        self, context: InputContext, table_slice: TableSlice, connection
    ) -> pd.DataFrame:
        try:
            return super().load_input(context, table_slice, connection)
        except duckdb.CatalogException:
            return pd.DataFrame()


class WarehouseIOManager(DuckDBPandasIOManager):
    @staticmethod
    def type_handlers() -> Sequence[DbTypeHandler]:
        return [_PandasHandler()]


def warehouse_io_manager(path: Path | None = None) -> DuckDBPandasIOManager:
    return WarehouseIOManager(database=str(path or warehouse_path()), schema=SCHEMA)


def warehouse_resource(path: Path | None = None) -> DuckDBResource:
    return DuckDBResource(database=str(path or warehouse_path()))
