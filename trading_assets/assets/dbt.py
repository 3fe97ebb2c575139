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
  older than a file of the project (a fresh clone, an edited model): `dbt parse`, about 7 s of
  CPU (7-18 s wall on the 2-core dev machine under load); it never opens the warehouse.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, get_dagster_logger
from dagster._utils import run_with_concurrent_update_guard
from dagster_dbt import (
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_duckdb import DuckDBResource
from packaging import version

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
    no env argument), so the variable must be in this process's environment while `cli()` runs;
    the subprocess has started when `cli()` returns. The lock keeps two threads from swapping
    the variable under each other.
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


def dbt_executable() -> str:
    """The `dbt` next to this interpreter (the project's venv, activated or not), else PATH's."""
    beside = Path(sys.executable).with_name("dbt")
    return str(beside) if beside.exists() else "dbt"


def _parse(project: DbtProject) -> None:
    env = {
        **os.environ,
        WAREHOUSE_ENV: os.environ.get(WAREHOUSE_ENV) or str(warehouse_path()),
        "DBT_PROFILES_DIR": str(project.profiles_dir),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    done = subprocess.run(
        [dbt_executable(), "parse", "--quiet", "--target-path", str(project.target_path)],
        cwd=project.project_dir,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"dbt parse failed in {project.project_dir} (exit {done.returncode}):\n"
            f"{done.stdout[-4000:]}{done.stderr[-4000:]}"
        )


def prepare_manifest(project: DbtProject = DBT_PROJECT, force: bool = False) -> float | None:
    """`dbt parse` into dbt/target when the manifest is missing or stale; the seconds it took,
    or None when the manifest was current.

    Parsing renders the profile, which needs TRADING_WAREHOUSE, but opens no connection: the
    warehouse file is not touched. A lock file keeps two processes loading the code location at
    once (the code server and the daemon) from parsing over each other; the second one finds
    the manifest fresh and skips.
    """
    if not (force or manifest_is_stale(project)):
        return None
    started = time.perf_counter()
    run_with_concurrent_update_guard(project.manifest_path, _parse, project=project)
    elapsed = time.perf_counter() - started
    get_dagster_logger().info(f"dbt manifest parsed in {elapsed:.1f} s: {project.manifest_path}")
    return elapsed


MANIFEST_PARSE_SECONDS = prepare_manifest()


class TradingDbtTranslator(DagsterDbtTranslator):
    """Sources are our existing one-part asset keys; models keep their name, in group `marts`;
    a model's description is its dbt description and where its SQL lives (dagster-dbt would
    append the whole SQL, which buries the description on the asset's page)."""

    def get_description(self, dbt_resource_props: Mapping[str, Any]) -> str:
        text = super().get_description(dbt_resource_props).split("\n\n#### Raw SQL:")[0]
        path = dbt_resource_props.get("original_file_path")
        return f"{text}\n\nSQL: `dbt/{path}`" if path else text

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


class WarehouseDbtCliResource(DbtCliResource):
    """DbtCliResource minus two per-run costs that buy nothing here (dagster-dbt 0.29):

    * the version probe: `dbt --version` in a subprocess on every run (a fresh resource each
      run), which also asks PyPI for the latest release (3-7 s here; a 1 s timeout offline).
      The executable is this environment's dbt-core, so its version is read in-process.
    * the in-process dbt adapter that `cli()` builds on the warehouse file (~3 s: profile,
      project and macros loaded) for `fetch_row_counts()` / `fetch_column_metadata()`, which
      we do not use: they would open a DuckDB connection from this process while the dbt
      subprocess writes the file, which DuckDB refuses (one writing process per file).
    """

    @cached_property
    def _cli_version(self) -> version.Version:
        from dbt.version import __version__

        return version.parse(__version__)

    def _initialize_dbt_core_adapter(self, args: Sequence[str]) -> Any:
        return None


def dbt_resource() -> DbtCliResource:
    """The `dbt` resource: this environment's dbt on dbt/ and its profile (the warehouse file
    comes from the `warehouse` resource at run time)."""
    return WarehouseDbtCliResource(project_dir=DBT_PROJECT, dbt_executable=dbt_executable())
