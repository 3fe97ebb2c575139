"""The dbt project (dbt/) as Dagster assets: staging -> round trips, daily P&L, the scorecard.

* Every dbt source is one of our assets (`bars`, `trade_signals`, `backtest_fills`, the
  analysts, `debate`, `broker_orders`): the translator keys sources by their table name, which
  is also their `meta.dagster.asset_key` in dbt/models/staging/sources.yml, so the lineage runs
  from the team into the marts. Every model lands in the group `marts`.
* dbt tests are asset checks on the model they test (dagster-dbt's default); the singular tests
  that read several models name theirs with `meta.dagster.ref`.
* `dbt build` is a subprocess writing the same DuckDB file as the IO manager. DuckDB allows one
  writing process per file, so the step holds no connection while dbt runs: it only reads the
  file's path from the `warehouse` resource (so dbt always targets the IO manager's file) and
  hands it to dbt as TRADING_WAREHOUSE (dbt/profiles.yml).
* The manifest is parsed when this module is imported if dbt/target/manifest.json is missing or
  older than a file of the project (a fresh clone, an edited model): `dbt parse`, ~5 s; no
  database access.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, get_dagster_logger
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource

from resources.warehouse import REPO_ROOT, warehouse_path

DBT_DIR = REPO_ROOT / "dbt"
WAREHOUSE_ENV = "TRADING_WAREHOUSE"  # what dbt/profiles.yml reads
GROUP = "marts"

DBT_PROJECT = DbtProject(project_dir=DBT_DIR)

_ENV_LOCK = threading.Lock()


@contextmanager
def warehouse_env(path: str | Path) -> Iterator[None]:
    """TRADING_WAREHOUSE set to `path` while dbt is started, then restored.

    DbtCliResource.cli builds the subprocess's environment from os.environ (dagster-dbt 0.29 has
    no env argument) and loads the profile in-process too, so the variable must be in this
    process's environment while `cli()` runs; the subprocess has started when `cli()` returns.
    """
    with _ENV_LOCK:
        before = os.environ.get(WAREHOUSE_ENV)
        os.environ[WAREHOUSE_ENV] = str(Path(path).expanduser().resolve())
        try:
            yield
        finally:
            if before is None:
                os.environ.pop(WAREHOUSE_ENV, None)
            else:
                os.environ[WAREHOUSE_ENV] = before


def _project_files(project_dir: Path) -> Iterator[Path]:
    yield project_dir / "dbt_project.yml"
    yield project_dir / "profiles.yml"
    for folder in ("models", "macros", "tests"):
        yield from (p for p in (project_dir / folder).rglob("*") if p.is_file())


def manifest_is_stale(project: DbtProject = DBT_PROJECT) -> bool:
    """No manifest, or a project file changed after it was written."""
    manifest = project.manifest_path
    if not manifest.exists():
        return True
    written = manifest.stat().st_mtime
    return any(p.stat().st_mtime > written for p in _project_files(Path(project.project_dir)))


def prepare_manifest(project: DbtProject = DBT_PROJECT, force: bool = False) -> float | None:
    """`dbt parse` into dbt/target when the manifest is missing or stale; the seconds it took,
    or None when the manifest was current. Parsing renders the profile, which needs
    TRADING_WAREHOUSE, but opens no connection: the warehouse file is not touched."""
    if not (force or manifest_is_stale(project)):
        return None
    started = time.perf_counter()
    with warehouse_env(os.environ.get(WAREHOUSE_ENV) or warehouse_path()):
        # dagster-dbt's preparer: `dbt parse --quiet`, guarded against a concurrent parse by
        # another process loading the code location (code server and daemon).
        project.preparer.prepare(project)
    elapsed = time.perf_counter() - started
    get_dagster_logger().info(f"dbt manifest parsed in {elapsed:.1f} s: {project.manifest_path}")
    return elapsed


MANIFEST_PARSE_SECONDS = prepare_manifest()


class TradingDbtTranslator(DagsterDbtTranslator):
    """Sources are our existing one-part asset keys; models keep their name, in group `marts`."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            meta = dbt_resource_props.get("meta", {}).get("dagster", {})
            key = meta.get("asset_key") or [dbt_resource_props["name"]]
            return AssetKey(key)
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return GROUP


TRANSLATOR = TradingDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))


@dbt_assets(
    manifest=DBT_PROJECT.manifest_path,
    project=DBT_PROJECT,
    dagster_dbt_translator=TRANSLATOR,
    name="warehouse_marts",
)
def warehouse_marts(
    context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBResource
) -> Iterator[Any]:
    """`dbt build` (models and their tests, in dependency order) on the warehouse file."""
    with warehouse_env(warehouse.database):
        invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()


def dbt_resource() -> DbtCliResource:
    """The `dbt` resource: the CLI in this interpreter's environment, on dbt/ and its profile."""
    executable = Path(sys.executable).with_name("dbt")
    return DbtCliResource(
        project_dir=DBT_PROJECT,
        dbt_executable=str(executable) if executable.exists() else "dbt",
    )
