"""Where assets live: one DuckDB file, read by the IO manager, the checks and (later) dbt.

The file name (`warehouse.duckdb`) and the schema (`trading`) differ on purpose: DuckDB's binder
confuses `warehouse.x` between a catalog and a schema of the same name (DESIGN).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster_duckdb import DuckDBResource
from dagster_duckdb_pandas import DuckDBPandasIOManager

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


def warehouse_io_manager(path: Path | None = None) -> DuckDBPandasIOManager:
    return DuckDBPandasIOManager(database=str(path or warehouse_path()), schema=SCHEMA)


def warehouse_resource(path: Path | None = None) -> DuckDBResource:
    return DuckDBResource(database=str(path or warehouse_path()))
