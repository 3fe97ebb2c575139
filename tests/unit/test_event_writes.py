"""The shipped event-write setting: one definition, exported by the Makefile, overridable."""

import re
from pathlib import Path

from trading_assets.event_writes import (
    BATCHED_EVENT_WRITES,
    apply_event_writes,
)

MAKEFILE = Path(__file__).resolve().parents[2] / "Makefile"


def test_the_makefile_exports_the_same_settings_to_every_process_it_starts() -> None:
    exported = dict(re.findall(r"^export (DAGSTER_\w+) \?= (\S+)$", MAKEFILE.read_text(), re.M))
    assert {k: v for k, v in exported.items() if k != "DAGSTER_HOME"} == BATCHED_EVENT_WRITES


def test_an_explicit_environment_wins_over_the_shipped_setting() -> None:
    env = {"DAGSTER_EVENT_BATCH_SIZE": "0"}  # a user turning batching off
    apply_event_writes(env)
    assert env["DAGSTER_EVENT_BATCH_SIZE"] == "0"
    assert env["DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"] == "true"
