"""Faster offsets and key listings for minute partitions with exclusions (Dagster 1.13).

Dagster (1.13) moves a window `n` partitions back by calling `get_prev_partition_window` `n`
times, and each call builds fresh cron iterators for the schedule and every exclusion (~40 ms
here). The analysts read 200-390 minutes of history through such mappings, and Dagster resolves
each mapping dozens of times per run (input loading, data versions): profiled on a 10-minute
range of `research_job`, 85 of 104 s went there. Walking one reverse iterator `n` steps gives
the same windows in one pass (`tests/unit/test_partition_offsets.py` compares both on weekends,
holidays and early closes), so that is what `_offsetted_datetime` does here.

Listing every key of the definition costs ~240 us a key (each window is checked against every
exclusion with fresh cron iterators), and Dagster lists them all whenever an unpartitioned asset
reads a minute-partitioned one (the report job's assets and the dbt marts: once per parent per
step for data versions, 1.3 s each for the bundled 5,460 minutes; BENCHMARKS, "Backfill
throughput"). A definition with an `end` that has passed always lists the same keys, so
`partition_keys` lists them once per definition; anything else goes to Dagster as before.

The key range of a time window (what the IO manager asks for every input and output) walks cron
iterators from the window's end over every excluded minute to the next session (~80 ms for a
window ending at the close, ~50 times a run). For a definition whose end has passed,
`key_range_for_window` finds both keys by binary search in the listed keys' start times.

A subset for a key range is built key by key, each key's window found with cron iterators and
merged with its neighbour after a search for partitions in between (0.66 s for 4,680 minutes,
~120 times in a 12-session run). A key range is contiguous by definition, so `range_subset`
builds its one window from the first key's start to the last key's end directly.

Installed once, by importing `trading_assets.partitions`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from itertools import islice
from typing import Any

import numpy as np
import pandas as pd
from dagster import TimeWindow
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.definitions.partitions.definition.time_window import (
    TimeWindowPartitionsDefinition,
)
from dagster._core.definitions.partitions.mapping import time_window as mapping_module
from dagster._core.definitions.partitions.partition_key_range import PartitionKeyRange
from dagster._core.definitions.partitions.subset.time_window import TimeWindowPartitionsSubset

_original = mapping_module._offsetted_datetime
_original_keys = TimeWindowPartitionsDefinition.get_partition_keys
_listed: dict[tuple[object, ...], tuple[str, ...]] = {}
_starts: dict[tuple[object, ...], np.ndarray] = {}
_original_key_range = TimeWindowPartitionsDefinition.get_partition_key_range_for_time_window
_original_range_subset = TimeWindowPartitionsSubset.with_partition_key_range


def offsetted_datetime(
    partitions_def: TimeWindowPartitionsDefinition, dt: datetime, offset: int
) -> datetime:
    """`dt` moved `offset` partitions back, exactly as Dagster's own loop does."""
    if offset >= 0 or partitions_def.is_basic_daily or partitions_def.is_basic_hourly:
        return _original(partitions_def, dt, offset)  # not a path our mappings take
    windows = partitions_def._reverse_iterate_time_windows(dt.timestamp())
    return next(islice(windows, -offset - 1, None)).start


def _identity(partitions_def: TimeWindowPartitionsDefinition) -> tuple[object, ...]:
    return (
        partitions_def.cron_schedule,
        partitions_def.timezone,
        partitions_def.fmt,
        partitions_def.start_timestamp,
        partitions_def.end_timestamp,
        tuple(str(e) for e in partitions_def.exclusions),
    )


def _ended(partitions_def: TimeWindowPartitionsDefinition) -> bool:
    """True when the definition has an end and it has passed: its keys never change again."""
    if partitions_def.end is None:
        return False
    with partition_loading_context():
        return partitions_def._get_current_timestamp() >= partitions_def.end_timestamp


def partition_keys(
    self: TimeWindowPartitionsDefinition,
    current_time: datetime | None = None,
    dynamic_partitions_store: Any = None,
) -> Sequence[str]:
    """Every key, listed once per definition when its end has passed (then they never change)."""
    if self.end is None:
        return _original_keys(self, current_time, dynamic_partitions_store)
    with partition_loading_context(current_time, dynamic_partitions_store):
        now = self._get_current_timestamp()
    if now < self.end_timestamp:
        return _original_keys(self, current_time, dynamic_partitions_store)
    identity = _identity(self)
    if identity not in _listed:
        _listed[identity] = tuple(_original_keys(self, current_time, dynamic_partitions_store))
    return list(_listed[identity])


def key_range_for_window(
    self: TimeWindowPartitionsDefinition, time_window: TimeWindow, respect_bounds: bool = True
) -> PartitionKeyRange:
    """The first and last keys of a window: the last start at or before its start, and the last
    window ending at or before its end (Dagster's rules), by binary search when they apply."""
    if not _ended(self):
        return _original_key_range(self, time_window, respect_bounds)
    identity = _identity(self)
    keys = self.get_partition_keys()  # listed once (partition_keys above)
    if identity not in _starts:
        try:  # the keys are their windows' starts, written in the definition's time zone
            local = pd.to_datetime(keys, format=self.fmt)
            stamps = local.tz_localize(self.timezone, ambiguous="raise", nonexistent="raise")
        except (ValueError, TypeError):  # a clock change inside a window: Dagster's way
            return _original_key_range(self, time_window, respect_bounds)
        _starts[identity] = stamps.asi8 / 1e9
    starts = _starts[identity]
    first = int(np.searchsorted(starts, time_window.start.timestamp(), side="right")) - 1
    last = int(np.searchsorted(starts, time_window.end.timestamp(), side="left")) - 1
    if first < 0 or last < 0:  # before the first partition: Dagster's own answer
        return _original_key_range(self, time_window, respect_bounds)
    if self.time_window_for_partition_key(keys[last]).end.timestamp() > (
        time_window.end.timestamp()
    ):
        last -= 1  # that window runs past the end: the one before it is the last inside
    return PartitionKeyRange(keys[first], keys[last])


def range_subset(
    self: TimeWindowPartitionsSubset,
    partitions_def: TimeWindowPartitionsDefinition,
    partition_key_range: PartitionKeyRange,
) -> TimeWindowPartitionsSubset:
    """An empty subset plus a key range: one window, exactly what Dagster's key-by-key merge
    gives; any other case goes to Dagster."""
    if self.included_time_windows or partitions_def != self.partitions_def:
        return _original_range_subset(self, partitions_def, partition_key_range)
    keys = partitions_def.get_partition_keys_in_range(partition_key_range)  # validates the keys
    if not keys:
        return _original_range_subset(self, partitions_def, partition_key_range)
    first = partitions_def.time_window_for_partition_key(keys[0])
    last = partitions_def.time_window_for_partition_key(keys[-1])
    with partition_loading_context():
        now = partitions_def._get_current_timestamp()
    if last.end.timestamp() > now:  # not every key exists yet: Dagster drops those
        return _original_range_subset(self, partitions_def, partition_key_range)
    window = TimeWindow(first.start, last.end)
    return TimeWindowPartitionsSubset(partitions_def, len(keys), [window])


def install() -> None:
    if mapping_module._offsetted_datetime is not offsetted_datetime:
        mapping_module._offsetted_datetime = offsetted_datetime
    if TimeWindowPartitionsDefinition.get_partition_keys is not partition_keys:
        TimeWindowPartitionsDefinition.get_partition_keys = partition_keys  # type: ignore[method-assign]
    if TimeWindowPartitionsDefinition.get_partition_key_range_for_time_window is not (
        key_range_for_window
    ):
        TimeWindowPartitionsDefinition.get_partition_key_range_for_time_window = (  # type: ignore[method-assign]
            key_range_for_window
        )
    if TimeWindowPartitionsSubset.with_partition_key_range is not range_subset:
        TimeWindowPartitionsSubset.with_partition_key_range = range_subset  # type: ignore[method-assign]


def original(*args: Any) -> datetime:
    """Dagster's own implementation, for the equivalence test."""
    return _original(*args)


def original_keys(partitions_def: TimeWindowPartitionsDefinition, *args: Any) -> Sequence[str]:
    """Dagster's own key listing, for the equivalence test."""
    return _original_keys(partitions_def, *args)


def original_range_subset(
    subset: TimeWindowPartitionsSubset,
    partitions_def: TimeWindowPartitionsDefinition,
    partition_key_range: PartitionKeyRange,
) -> TimeWindowPartitionsSubset:
    """Dagster's own key-by-key subset, for the equivalence test."""
    return _original_range_subset(subset, partitions_def, partition_key_range)


def original_key_range(
    partitions_def: TimeWindowPartitionsDefinition, time_window: TimeWindow
) -> PartitionKeyRange:
    """Dagster's own key range of a window, for the equivalence test."""
    return _original_key_range(partitions_def, time_window)
