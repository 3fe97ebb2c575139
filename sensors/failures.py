"""Run-failure alerting: every failed trading run is logged, and posted to Slack when a webhook
is configured (TRADING_SLACK_WEBHOOK_URL; the URL is a secret and never logged)."""

import json
import os
import urllib.request

from dagster import DefaultSensorStatus, RunFailureSensorContext, run_failure_sensor

from jobs.trading import close_all_positions, execute_signals, intraday_job

WEBHOOK_ENV = "TRADING_SLACK_WEBHOOK_URL"


def _cause(context: RunFailureSensorContext) -> str:
    """The first failed step's error (first line): the run's own message only names the steps."""
    for event in context.get_step_failure_events():
        error = event.step_failure_data.error
        if error is not None and error.message.strip():
            return f" {event.step_key}: {error.message.strip().splitlines()[0]}"
    return ""


def failure_message(context: RunFailureSensorContext) -> str:
    run = context.dagster_run
    partition = run.tags.get("dagster/partition", "")
    where = f" partition {partition}" if partition else ""
    return (
        f":rotating_light: {run.job_name}{where} failed (run {run.run_id[:8]}): "
        f"{context.failure_event.message}{_cause(context)}"
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
    monitored_jobs=[intraday_job, execute_signals, close_all_positions],
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=5,
    description="Reports failed intraday, execution and close-out runs (Slack when "
    f"{WEBHOOK_ENV} is set).",
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
