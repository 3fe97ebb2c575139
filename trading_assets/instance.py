"""The Dagster instance folder the project's commands use (`DAGSTER_HOME`).

A folder the project creates gets a `dagster.yaml` with Dagster's telemetry and its "Join the
community" pop-up turned off: the demo and the UI talk to nobody, and the first page a user
opens is the page. Storage stays Dagster's default (SQLite in the folder); a `dagster.yaml`
already there (e.g. the Postgres one `make ui-postgres` copies) is the user's and left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

INSTANCE_YAML = """\
# Written by the trading-assets commands (trading_assets/instance.py). Storage: Dagster's
# default, SQLite in this folder; see dagster.yaml.example for Postgres.
telemetry:
  enabled: false
nux:
  enabled: false
"""


def prepare_home(home: str | Path | None = None) -> Path:
    """`home` (default DAGSTER_HOME, else ./.dagster_home), created with the project's
    `dagster.yaml` if it has none; DAGSTER_HOME is set to it for this process and children."""
    path = Path(home or os.environ.get("DAGSTER_HOME") or ".dagster_home").expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    config = path / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


if __name__ == "__main__":  # `python -m trading_assets.instance`: prepare DAGSTER_HOME, print it
    print(prepare_home())
