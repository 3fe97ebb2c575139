"""Run-failure alerting: every failed run of the code location is logged, and posted to Slack
when a webhook is configured (TRADING_SLACK_WEBHOOK_URL; the URL is a secret and never logged).

A failed range run (a backfill, a backtest) also says which of its partitions it left
unmaterialized, per asset. With the shipped batched event writes Dagster plans one event per
asset per run and so shows those partitions as missing rather than failed
(`trading_assets/event_writes.py`); the alert is where the failure's extent is recorded, and
re-running the range or backfilling the missing partitions repairs it.
"""

import json
import os
import urllib.request

from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DefaultSensorStatus,
    RunFailureSensorContext,
    run_failure_sensor,
)

from trading_assets.partitions import RANGE_END_TAG, RANGE_START_TAG

WEBHOOK_ENV = "TRADING_SLACK_WEBHOOK_URL"


def _cause(context: RunFailureSensorContext) -> str:
    """The first failed step's error (first line): the run's own message only names the steps."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None and error.message.strip():
            return f" {event.step_key}: {error.message.strip().splitlines()[0]}"
    return ""


def unmaterialized(instance: DagsterInstance, run: DagsterRun) -> dict[AssetKey, list[str]]:
    """Per asset the run planned: its planned partitions not materialized since the run began
    (sorted). Empty for a run that planned no partitions."""
    planned: dict[AssetKey, set[str]] = {}
    records = instance.get_records_for_run(
        run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION_PLANNED
    ).records
    for record in records:
        data = record.event_log_entry.get_dagster_event().event_specific_data
        subset = getattr(data, "partitions_subset", None)
        keys = subset.get_partition_keys() if subset else [data.partition] if data.partition else []
        planned.setdefault(data.asset_key, set()).update(keys)
    if not planned:
        return {}
    started = min(r.storage_id for r in records)
    return {
        key: sorted(keys - instance.get_materialized_partitions(key, after_cursor=started))
        for key, keys in planned.items()
        if keys
    }


def _range_report(context: RunFailureSensorContext) -> str:
    run = context.dagster_run
    missing = unmaterialized(context.instance, run) if RANGE_START_TAG in run.tags else {}
    if not missing:
        return ""
    parts = [
        f"{key.to_user_string()} {len(keys)} (from {keys[0]})"
        for key, keys in sorted(missing.items(), key=lambda item: item[0].to_user_string())
        if keys
    ]
    return (
        f" | {run.tags[RANGE_START_TAG]}..{run.tags[RANGE_END_TAG]} not materialized: "
        + (", ".join(parts) or "none")
        + f" ({len(missing) - len(parts)} of {len(missing)} assets complete); re-run the "
        "range or backfill its missing partitions"
    )


def failure_message(context: RunFailureSensorContext) -> str:
    run = context.dagster_run
    partition = run.tags.get("dagster/partition", "")
    where = f" partition {partition}" if partition else ""
    return (
        f":rotating_light: {run.job_name}{where} failed (run {run.run_id[:8]}): "
        f"{context.failure_event.message}{_cause(context)}{_range_report(context)}"
    )[:3000]


def post_to_slack(url: str, text: str, timeout_s: float = 5.0) -> int:
    """POST {"text": ...} to an incoming webhook; the HTTP status."""
    request = urllib.request.Request(
        url,
        data=json.dumps({"text": text}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=timeout_s) as response:
        return int(response.status)


@run_failure_sensor(
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Reports every failed run of this code location: intraday, execution and "
    "close-out runs, backfills and backtests with the partitions they left unmaterialized "
    f"(Slack when {WEBHOOK_ENV} is set).",
)
def run_failure_alert(context: RunFailureSensorContext) -> None:
    text = failure_message(context)
    context.log.error(text)
    url = os.environ.get(WEBHOOK_ENV, "").strip()
    if not url:
        return
    try:
        status = post_to_slack(url, text)
        context.log.info(f"failure posted to Slack (HTTP {status})")
    except (OSError, ValueError) as exc:  # the alert must not hide the failure it reports;
        # ValueError: a URL without a scheme, whose message would show the secret URL
        context.log.warning(f"could not post to Slack: {type(exc).__name__}")
