"""One bundled session (390 minute partitions) of the ingest layer, as one run, on a SQLite and
on a Postgres Dagster instance. Prints wall-clock seconds per instance kind.

    .venv/bin/python benchmarks/ingest_session.py [--session 2026-03-23]

GX's ~13 s import is paid once, before timing, so both figures are the run alone.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from dagster import DagsterInstance

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' graph helpers


from tests.graph.conftest import make_graph, throwaway_postgres_instance
from trading_assets.checks.expectations import _context


def timed_run(instance: DagsterInstance, tmp: Path, session: str) -> float:
    graph = make_graph(tmp)
    started = time.perf_counter()
    result = graph.run(instance, f"{session}|09:30", f"{session}|15:59")
    elapsed = time.perf_counter() - started
    assert result.success
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--session", default="2026-03-23")
    args = parser.parse_args()
    _context()  # import great_expectations before timing

    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "sqlite"
        home.mkdir()
        with DagsterInstance.local_temp(str(home)) as instance:
            sqlite_s = timed_run(instance, Path(tmp), args.session)
    print(f"sqlite instance:   390 partitions x 3 assets + 4 checks in {sqlite_s:6.1f} s")

    with tempfile.TemporaryDirectory() as tmp, throwaway_postgres_instance(Path(tmp)) as pg:
        pg_s = timed_run(pg[0], Path(tmp), args.session)
    print(f"postgres instance: 390 partitions x 3 assets + 4 checks in {pg_s:6.1f} s")


if __name__ == "__main__":
    main()
