"""How Dagster writes a backfill's events: the project's shipped setting, and Dagster's default.

By default Dagster stores a run's events one at a time: a planned and a materialized event per
partition per asset, each in its own transaction. A single-run backfill of the 12 bundled
sessions is 4,680 partitions x 15 assets, so the default spends most of the run writing events
(BENCHMARKS, "Backfill throughput"). The two variables below make Dagster batch them and plan
one event per asset per run. They are read by every process that creates or executes runs
(`dagster dev`'s webserver and daemon, run workers, `dagster job execute`), so they are
environment variables, exported by the Makefile and set by the project's entry points.

The caveat, from Dagster's source: with one planned event per run, the partitions of a run that
*fails* are shown as missing instead of failed. `sensors/failures.py` reports them for every
failed range run, and a re-run of the range (or a backfill of missing partitions) repairs them.
"""

import os
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager

BATCHED_EVENT_WRITES: dict[str, str] = {
    "DAGSTER_EVENT_BATCH_SIZE": "500",
    "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS": "true",
}


def apply_event_writes(env: MutableMapping[str, str] = os.environ) -> None:
    """Set the shipped settings where the environment does not choose otherwise."""
    for name, value in BATCHED_EVENT_WRITES.items():
        env.setdefault(name, value)


@contextmanager
def dagster_default_event_writes() -> Iterator[None]:
    """Dagster's own defaults for the duration (benchmarks compare the two)."""
    saved = {name: os.environ.pop(name, None) for name in BATCHED_EVENT_WRITES}
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is not None:
                os.environ[name] = value
