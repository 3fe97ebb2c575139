"""What each form of minute partitions costs in Dagster's own code (the webserver's and the
daemon's, which never import this project), over the bundled range and over a year.

    .venv/bin/python benchmarks/partition_forms.py [--year 2025] [--check-records 4680]

Forms:
* `minute cron + holiday minutes`: the definition before issue 19 (a `* 9-16 * * 1-5` cron,
  two cron exclusions and one exclusion per holiday or after-close minute);
* `minute cron, no exclusions`: the cheapest minute cron Dagster takes (`* 9-15 * * 1-5`, the
  wrong set of minutes: a floor for any single-dimension minute definition);
* `date x minute`: `trading_assets.partitions.market_minute_partitions` (today's form).

Per form: listing every key, one key's validity (`has_partition_key`, what every status and
check-state update asks per key; for a time window that is `time_window_for_partition_key`),
the status cache's cold step (`filter_valid_partition_keys` on every key), a subset of half the
keys, the serialized definition, and rebuilding a *partitioned* check's state from one record
per partition (`_process_partition_records`, what the UI does on every page that shows a check).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd
from dagster import AssetCheckKey, AssetKey, TimeWindowPartitionsDefinition
from dagster._core.asset_graph_view.serializable_entity_subset import (
    SerializableEntitySubset,
)
from dagster._core.definitions.partitions.context import partition_loading_context
from dagster._core.remote_representation.external_data import PartitionsSnap
from dagster._core.storage.asset_check_execution_record import (
    AssetCheckExecutionRecordStatus,
    AssetCheckExecutionResolvedStatus,
    AssetCheckPartitionInfo,
)
from dagster._core.storage.asset_check_state import _process_partition_records
from dagster._serdes import serialize_value

from trading_assets.partitions import market_minute_partitions, nyse_calendar
from trading_assets.schemas import MARKET_TZ

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)  # every range below has ended


def before_issue_19(start: str, end: str) -> TimeWindowPartitionsDefinition:
    """The minute cron definition the project had (trading_assets/partitions.py at 2e57600)."""
    cal = nyse_calendar(start, end)
    sessions = set(cal.sessions_in_range(start, pd.Timestamp(end) - pd.Timedelta(days=1)))
    excluded = []
    for day in pd.bdate_range(start, pd.Timestamp(end) - pd.Timedelta(days=1)):
        minutes = pd.date_range(day + pd.Timedelta(hours=9, minutes=30), periods=390, freq="min")
        if day not in sessions:
            excluded += list(minutes.to_pydatetime())
            continue
        close = cal.session_close(day).tz_convert(MARKET_TZ).tz_localize(None)
        excluded += list(minutes[minutes >= close].to_pydatetime())
    return TimeWindowPartitionsDefinition(
        cron_schedule="* 9-16 * * 1-5",
        start=dt.datetime.combine(pd.Timestamp(start).date(), dt.time(9, 30)),
        end=dt.datetime.combine(pd.Timestamp(end).date(), dt.time(0, 0)),
        timezone=MARKET_TZ,
        fmt="%Y-%m-%d-%H:%M",
        exclusions=["0-29 9 * * 1-5", "* 16 * * 1-5", *excluded],
    )


def plain_minute_cron(start: str, end: str) -> TimeWindowPartitionsDefinition:
    return TimeWindowPartitionsDefinition(
        cron_schedule="* 9-15 * * 1-5",
        start=dt.datetime.combine(pd.Timestamp(start).date(), dt.time(9, 30)),
        end=dt.datetime.combine(pd.Timestamp(end).date(), dt.time(0, 0)),
        timezone=MARKET_TZ,
        fmt="%Y-%m-%d-%H:%M",
    )


FORMS: dict[str, Callable[[str, str], object]] = {
    "minute cron + holiday minutes": before_issue_19,
    "minute cron, no exclusions": plain_minute_cron,
    "date x minute": market_minute_partitions,
}


def seconds(fn: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def check_state_seconds(partitions_def, keys: list[str], budget_s: float) -> str:
    """Rebuild a partitioned check's state from one succeeded record per key."""
    key = AssetCheckKey(AssetKey("bars"), "bars_valid")
    records = [
        AssetCheckPartitionInfo(
            check_key=key,
            partition_key=k,
            latest_execution_status=AssetCheckExecutionRecordStatus.SUCCEEDED,
            latest_target_materialization_storage_id=i,
            latest_check_event_storage_id=i,
            latest_materialization_storage_id=i,
            latest_planned_run_id="run",
        )
        for i, k in enumerate(keys)
    ]
    subsets = {s: SerializableEntitySubset.empty(key, partitions_def) for s in
               AssetCheckExecutionResolvedStatus}  # fmt: skip
    done, started = 0, time.perf_counter()
    for chunk in range(0, len(records), 100):
        subsets, _ = _process_partition_records(
            key, partitions_def, subsets, {}, records[chunk : chunk + 100]
        )
        done += len(records[chunk : chunk + 100])
        if time.perf_counter() - started > budget_s:
            return f">{budget_s:.0f} s ({done} of {len(keys)} records)"
    return f"{time.perf_counter() - started:.2f} s"


def measure(name: str, start: str, end: str, check_records: int, budget_s: float) -> None:
    build_s, partitions_def = seconds(lambda: FORMS[name](start, end))
    with partition_loading_context(NOW):
        list_s, keys = seconds(partitions_def.get_partition_keys)
        keys = [str(k) for k in keys]
        sample = keys[:: max(1, len(keys) // 200)][:200]
        valid_s, _ = seconds(lambda: [partitions_def.has_partition_key(k) for k in sample])
        cold_s = "-"
        if len(keys) * valid_s / len(sample) < budget_s * 4:
            took, _ = seconds(lambda: partitions_def.filter_valid_partition_keys(set(keys)))
            cold_s = f"{took:.2f} s"
        else:
            cold_s = f"~{len(keys) * valid_s / len(sample):.0f} s (extrapolated)"
        half_s, _ = seconds(
            lambda: partitions_def.subset_with_partition_keys(keys[: len(keys) // 2])
        )
        snap = len(serialize_value(PartitionsSnap.from_def(partitions_def)))
        state = check_state_seconds(partitions_def, keys[:check_records], budget_s)
    print(
        f"| {name} | {start} .. {end} | {len(keys):,} | {build_s:.2f} | {list_s:.2f} | "
        f"{valid_s / len(sample) * 1000:.2f} | {cold_s} | {half_s:.2f} | {snap:,} | {state} |",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--year", default="2025")
    parser.add_argument("--check-records", type=int, default=4680, help="12 sessions (4680)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds before giving up")
    args = parser.parse_args(argv)
    year = int(args.year)
    ranges = [("2026-03-12", "2026-03-28"), (f"{year}-01-01", f"{year + 1}-01-01")]
    print("| form | partitions defined | keys | build s | list keys s | one key's validity ms |"
          " status cache, cold | half subset s | serialized bytes | a partitioned check's "
          f"state from {args.check_records:,} records |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for start, end in ranges:
        for name in FORMS:
            measure(name, start, end, args.check_records, args.budget)
    return 0


if __name__ == "__main__":
    sys.exit(main())
