"""The signal sensor: a new `trade_signals` partition with actionable signals -> execute it.

The first evaluation of a sensor state only sets the cursor to the newest event: turning the
sensor on (or a second daemon with its own sensor state) never executes old signals. Reads only
the materialization events (their metadata carries the actionable count and the
batch id), never the warehouse, so a tick is cheap and cannot contend for the DuckDB file.
Exactly once at this level: the cursor is the last event storage id seen, and the run key is
partition + batch id + the deciding run (Dagster drops a second request with the same key, so a
re-evaluated tick launches nothing twice; a minute re-decided by a new run gets a new execution,
which finds its orders by client order id instead of sending them again). The op's own look-up by
client order id covers a retried run. Signals from backfills (backtests) and from runs not
tagged live are never executed, and a partition is only acted on once its run has finished
successfully: the blocking `trade_signals_valid` check runs after the materialization, and a
run it failed sends nothing. A live run decides one minute; a multi-minute run (a backtest or
a replay's quiet stretch) is never executed. Every tick that launches nothing says why.
"""

from dagster import (
    AssetKey,
    AssetRecordsFilter,
    DagsterRunStatus,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from jobs.trading import LIVE_TAG, execute_signals

SIGNALS = AssetKey("trade_signals")
PAGE = 200


def _value(metadata: dict, key: str, default: object) -> object:
    entry = metadata.get(key)
    return default if entry is None else entry.value


@sensor(
    job=execute_signals,
    # The sensor daemon loops every 5 s at best (MIN_INTERVAL_LOOP_TIME in Dagster). With a
    # minimum interval of 5 s a loop skips the sensor whenever its last tick started a hair
    # less than 5 s before (loop jitter), and a decision waits up to 10 s; 1 s: every loop.
    minimum_interval_seconds=1,
    default_status=DefaultSensorStatus.RUNNING,
    description="Launches execute_signals for each new live trade_signals partition that has "
    "actionable signals (run key = partition + signal batch + deciding run).",
)
def trade_signal_sensor(context: SensorEvaluationContext) -> SensorResult | SkipReason:
    instance = context.instance
    if not context.cursor:
        # A new sensor state (first start, or a new code-location origin such as `dagster dev`
        # next to a `dagster-daemon run`) starts after the newest event: history never trades.
        latest = instance.fetch_materializations(SIGNALS, limit=1).records
        start = latest[0].storage_id if latest else 0
        return SensorResult(
            skip_reason=SkipReason(
                f"first evaluation: watching trade_signals materializations after event {start}"
            ),
            cursor=str(start),
        )
    records = instance.fetch_materializations(
        AssetRecordsFilter(asset_key=SIGNALS, after_storage_id=int(context.cursor)),
        limit=PAGE,
        ascending=True,
    ).records
    if not records:
        return SkipReason("no new trade_signals materializations")
    runs: dict[str, object] = {}
    requests: list[RunRequest] = []
    skipped: dict[str, list[str]] = {}
    done: list[int] = []
    waiting = ""
    for record in records:
        partition = record.partition_key or "?"
        run = runs.get(record.run_id) or instance.get_run_by_id(record.run_id)
        runs[record.run_id] = run
        if run is not None and not run.is_finished:
            waiting = f"waiting for run {record.run_id[:8]} ({partition}) to finish its checks"
            break  # the cursor stops here; the next tick looks again
        done.append(record.storage_id)
        tags = run.tags if run is not None else {}
        materialization = record.asset_materialization
        metadata = dict(materialization.metadata) if materialization else {}
        actionable = int(_value(metadata, "actionable", 0))  # type: ignore[arg-type]
        batch = str(_value(metadata, "batch_id", ""))
        if run is not None and run.status != DagsterRunStatus.SUCCESS:
            why = f"from a run that did not succeed ({run.status.value}; a blocking check?)"
        elif "dagster/backfill" in tags:
            why = "from a backfill (backtests never trade)"
        elif "dagster/partition" not in tags:
            why = "from a multi-minute run (live runs decide one minute)"
        elif tags.get(LIVE_TAG) != "true":
            why = f"from a run not tagged {LIVE_TAG}=true"
        elif actionable == 0:
            why = "no actionable signals (HOLD or rejected only)"
        else:
            requests.append(
                RunRequest(
                    run_key=f"{partition}|{batch}|{record.run_id[:8]}",
                    partition_key=partition,
                    tags={"trading/signal_batch": batch, "trading/signals_run": record.run_id},
                )
            )
            continue
        skipped.setdefault(why, []).append(partition)
    cursor = str(max(done)) if done else context.cursor
    if waiting:
        skipped.setdefault("not yet: " + waiting, [])
    if requests:
        for why, partitions in skipped.items():
            context.log.info(f"skipped {len(partitions)} partitions {why}")
        return SensorResult(run_requests=requests, cursor=cursor)
    reasons = "; ".join(
        f"{len(p)} partition{'s' if len(p) > 1 else ''} {why} (last {p[-1]})" if p else why
        for why, p in skipped.items()
    )
    return SensorResult(skip_reason=SkipReason(reasons), cursor=cursor)
