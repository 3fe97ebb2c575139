"""A fault drill: a replayed session traded through a broker that fails at random.

It shows the execution path's promise under faults: every signal reaches a final state, no
signal is ordered twice, and the ledger has one row per signal. The paper broker's chaos switch
fails a seeded share of every API call (500s, 429s, timeouts, dropped connections, and answers
lost after the broker applied the request). On top of that the drill does what a busy
deployment does:

* the signal sensor is evaluated twice per tick with the same cursor (a daemon restart), and
  both evaluations' run requests are launched, so every signal batch is requested twice
  (Dagster would drop the second by its run key; launching it anyway tests the op's look-up);
* a run that fails is run again with the run-retry daemon's tags (`dagster/max_retries`
  policy, `dagster/parent_run_id`), and `send_orders` has its own op retry policy;
* at the end the book is flattened and the ledger refreshed, as the flatten and ledger
  schedules do at the close.

Runs are executed in process, one after another, on the caller's instance; the decisions are
made per minute with the broker's clock at the minute's close, as live (see replay.py). The
counts come from the stored signals, the warehouse ledger and the broker's own order book.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from jobs.schedules import intraday_schedule
from resources.broker import BrokerResource
from resources.duckdb_locks import connect
from resources.paper_broker import PaperBroker
from trading_assets.decision.risk import SIGNAL_PREFIX
from trading_assets.execution.ledger import FINAL_STATES
from trading_assets.partitions import PARTITION_TAG, MinuteSpan, session_bounds, session_minutes
from trading_assets.replay import QUIET, key, proposal_minutes, run_range, scheduled, utc

RUN_ATTEMPTS = 4  # a first run and up to three retries, as `dagster/max_retries: 3`
CHAOS_TIMEOUT_S = 1.0  # how long the paper broker holds a "timeout" fault's connection


def drill_broker(url: str) -> BrokerResource:
    """The broker resource a drill trades with: its timeout below the chaos timeout (a held
    answer times out) and short backoffs (faults are many, the broker is local)."""
    return BrokerResource(
        mode="embedded",
        base_url=url,
        timeout_s=CHAOS_TIMEOUT_S / 2,
        backoff_s=0.01,
        max_backoff_s=0.05,
    )


@dataclass
class DrillCounts:
    """What the drill did and what it found (RELIABILITY.md prints these)."""

    minutes: int = 0
    decision_runs: int = 0
    decision_failures: int = 0
    sensor_evaluations: int = 0
    sensor_repeats_same_keys: int = 0
    execute_runs: int = 0
    duplicate_requests_launched: int = 0
    execute_failures: int = 0
    op_retries: int = 0
    run_retries: int = 0
    flatten_runs: int = 0
    ledger_runs: int = 0
    signals: int = 0
    actionable: int = 0
    ledger_rows: int = 0
    ledger_duplicates: int = 0
    signals_without_row: int = 0
    signals_without_final_state: int = 0
    orders_at_broker: int = 0
    orders_doubled: int = 0
    orders_without_signal: int = 0
    sent_not_at_broker: int = 0
    states: dict[str, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def fault_share(self) -> float:
        requests = self.faults.get("requests", 0)
        return self.faults.get("faults", 0) / requests if requests else 0.0


def run_with_retries(
    defs: Any,
    instance: Any,
    job: str,
    tags: dict[str, str],
    counts: DrillCounts,
    attempts: int = RUN_ATTEMPTS,
) -> Any:
    """Run `job` until it succeeds, retrying a failed run the way Dagster's run-retry daemon
    does (a new run with the same tags and the parent's id); the last result either way."""
    definition = defs.resolve_job_def(job)
    result = None
    root = None
    for number in range(attempts):
        retry_tags = (
            {
                "dagster/parent_run_id": result.run_id,
                "dagster/root_run_id": root or result.run_id,
                "dagster/retry_number": str(number),
            }
            if result is not None
            else {}
        )
        if result is not None:
            root = root or result.run_id
            counts.run_retries += 1
        result = definition.execute_in_process(
            instance=instance,
            tags={**tags, **retry_tags},
            run_config=QUIET,
            raise_on_error=False,
        )
        if result.success:
            break
    return result


def _op_retries(instance: Any, run_id: str) -> int:
    return sum(
        1
        for entry in instance.all_logs(run_id)
        if entry.dagster_event is not None
        and entry.dagster_event.event_type.name == "STEP_UP_FOR_RETRY"
    )


def run_fault_drill(
    defs: Any,
    instance: Any,
    broker: PaperBroker,
    warehouse: Path,
    session: str,
    *,
    first: str,
    last: str,
    rate: float,
    seed: int,
    log: Callable[[str], None] = print,
) -> DrillCounts:
    """Trade [first, last] (HH:MM) of `session` with `rate` of broker calls failing at random.

    `defs` must trade on `broker` through `drill_broker(broker.url)` and store assets in
    `warehouse`."""
    from dagster import SensorResult, build_sensor_context

    from sensors.signals import trade_signal_sensor

    started = time.perf_counter()
    counts = DrillCounts()
    bounds = session_bounds(session)
    if bounds is None:
        raise ValueError(f"{session} is not an NYSE session")
    minutes = session_minutes(session, session)
    lo, hi = pd.Timestamp(f"{session} {first}"), pd.Timestamp(f"{session} {last}")
    minutes = minutes[(minutes >= lo) & (minutes <= hi)]
    if minutes.empty:
        raise ValueError(f"no session minutes in {first}..{last} on {session}")
    counts.minutes = len(minutes)

    broker.clear_faults()
    broker.set_clock(max(broker.now, utc(minutes[0])))
    previous = session_minutes(
        (pd.Timestamp(session) - pd.Timedelta(days=7)).strftime("%Y-%m-%d"),
        (pd.Timestamp(session) - pd.Timedelta(days=1)).strftime("%Y-%m-%d"),
    )
    warm_to = minutes[0] - pd.Timedelta(minutes=1) if minutes[0] > bounds[0] else previous[-1]
    warm_from = previous[previous >= previous[-1].normalize()][0]
    run_range(defs, instance, "ingest_job", warm_from, warm_to)  # no faults yet
    run_range(defs, instance, "research_job", minutes[0], minutes[-1])
    decide = sorted(proposal_minutes(warehouse, minutes[0], minutes[-1]))
    log(f"research done; {len(decide)} minutes with a BUY/SELL verdict; faults at {rate:.0%}")

    cursor = trade_signal_sensor(build_sensor_context(instance=instance, definitions=defs)).cursor
    broker.inject_chaos(rate, seed, seconds=CHAOS_TIMEOUT_S)

    def evaluate() -> SensorResult:
        counts.sensor_evaluations += 1
        out = trade_signal_sensor(
            build_sensor_context(instance=instance, cursor=cursor, definitions=defs)
        )
        return out if isinstance(out, SensorResult) else SensorResult(skip_reason=out)

    for minute in decide:
        tick = utc(minute) + pd.Timedelta(minutes=1)
        broker.set_clock(max(broker.now, tick))
        counts.decision_runs += 1
        decided = run_with_retries(
            defs, instance, "decision_job", scheduled(intraday_schedule, tick), counts
        )
        if not decided.success:
            counts.decision_failures += 1
            log(f"{key(minute)}: the decision failed {RUN_ATTEMPTS} times; no signals")
        once, twice = evaluate(), evaluate()  # a restarted daemon evaluates the tick again
        keys = [r.run_key for r in once.run_requests or []]
        if keys == [r.run_key for r in twice.run_requests or []] and keys:
            counts.sensor_repeats_same_keys += 1
        cursor = once.cursor or cursor
        requests = [*(once.run_requests or []), *(twice.run_requests or [])]
        counts.duplicate_requests_launched += len(twice.run_requests or [])
        for request in requests:
            counts.execute_runs += 1
            tags = {
                **request.tags,
                PARTITION_TAG: str(request.partition_key),
                "dagster/run_key": str(request.run_key),
                "dagster/sensor_name": "trade_signal_sensor",
            }
            result = run_with_retries(defs, instance, "execute_signals", tags, counts)
            counts.op_retries += _op_retries(instance, result.run_id)
            if not result.success:
                counts.execute_failures += 1
        log(f"{key(minute)}: {len(requests)} execute runs, faults so far {broker.fault_stats()}")

    # the close: flatten the book, let the closing orders fill, refresh every row's state
    flatten_at = max(broker.now, utc(minutes[-1]) + pd.Timedelta(minutes=1))
    broker.set_clock(flatten_at)
    counts.flatten_runs += 1
    run_with_retries(defs, instance, "close_all_positions", {}, counts)
    broker.set_clock(min(flatten_at + pd.Timedelta(minutes=2), utc(bounds[1])))
    for _ in range(RUN_ATTEMPTS):
        counts.ledger_runs += 1
        session_tags = MinuteSpan(minutes[0], minutes[-1]).tags
        run_with_retries(defs, instance, "execute_signals", session_tags, counts)
        if not _unfinished(warehouse, minutes[0], minutes[-1]):
            break
    counts.faults = broker.fault_stats()
    broker.clear_faults()
    _count_outcome(counts, broker, warehouse, minutes[0], minutes[-1])
    counts.wall_s = time.perf_counter() - started
    return counts


def _frames(warehouse: Path, first: pd.Timestamp, last: pd.Timestamp) -> dict[str, pd.DataFrame]:
    span = [first.to_pydatetime(), last.to_pydatetime()]
    with connect(warehouse, read_only=True) as conn:
        return {
            table: conn.execute(
                f"SELECT * FROM trading.{table} WHERE minute BETWEEN ? AND ?", span
            ).df()
            for table in ("trade_signals", "broker_orders")
        }


def _unfinished(warehouse: Path, first: pd.Timestamp, last: pd.Timestamp) -> int:
    frames = _frames(warehouse, first, last)
    return int((~frames["broker_orders"]["state"].isin(FINAL_STATES)).sum())


def _count_outcome(
    counts: DrillCounts,
    broker: PaperBroker,
    warehouse: Path,
    first: pd.Timestamp,
    last: pd.Timestamp,
) -> None:
    frames = _frames(warehouse, first, last)
    signals, ledger = frames["trade_signals"], frames["broker_orders"]
    actionable = signals[(signals["action"] != "HOLD") & (signals["qty"] > 0)]
    ids = set(signals["signal_id"])
    per_signal = Counter(ledger["signal_id"])
    counts.signals = len(ids)
    counts.actionable = len(actionable)
    counts.ledger_rows = len(ledger)
    counts.ledger_duplicates = sum(n - 1 for n in per_signal.values() if n > 1)
    counts.signals_without_row = len(ids - set(per_signal))
    final = set(ledger.loc[ledger["state"].isin(FINAL_STATES), "signal_id"])
    counts.signals_without_final_state = len(ids - final)
    counts.states = {str(k): int(v) for k, v in ledger["state"].value_counts().items()}
    engine = broker.engine
    assert engine is not None
    with engine.lock:
        orders = engine.state.orders()
    entries = [o for o in orders if o["parent_id"] is None]
    ours = [o for o in entries if str(o["client_order_id"]).startswith(SIGNAL_PREFIX)]
    counts.orders_at_broker = len(ours)
    counts.orders_without_signal = sum(1 for o in ours if o["client_order_id"] not in ids)
    minute_of = dict(zip(signals["signal_id"], signals["minute"], strict=True))
    per_trade = Counter((o["symbol"], o["side"], minute_of.get(o["client_order_id"])) for o in ours)
    counts.orders_doubled = sum(n - 1 for n in per_trade.values() if n > 1)
    sent = {o["client_order_id"] for o in ours}
    decided_to_send = set(ledger.loc[ledger["broker_order_id"] != "", "signal_id"])
    counts.sent_not_at_broker = len(decided_to_send - sent)


def describe(counts: DrillCounts) -> list[str]:
    """The drill's outcome as printable lines."""
    faults = {k: v for k, v in counts.faults.items() if k not in ("requests", "faults")}
    return [
        f"minutes {counts.minutes}; decision runs {counts.decision_runs} "
        f"(failed after retries {counts.decision_failures})",
        f"broker API requests {counts.faults.get('requests', 0)}, faulted "
        f"{counts.faults.get('faults', 0)} ({counts.fault_share:.1%}): {faults}",
        f"sensor evaluations {counts.sensor_evaluations} (ticks evaluated twice with the same "
        f"run keys: {counts.sensor_repeats_same_keys})",
        f"execute_signals runs {counts.execute_runs} (same batch requested twice: "
        f"{counts.duplicate_requests_launched}; failed after retries {counts.execute_failures}); "
        f"op retries {counts.op_retries}; run retries {counts.run_retries}; "
        f"flatten runs {counts.flatten_runs}; ledger refresh runs {counts.ledger_runs}",
        f"signals {counts.signals} (actionable {counts.actionable}); ledger rows "
        f"{counts.ledger_rows} {counts.states}",
        f"orders at the broker {counts.orders_at_broker}; orders doubled "
        f"{counts.orders_doubled}; orders without a signal {counts.orders_without_signal}; "
        f"ledger duplicates {counts.ledger_duplicates}; signals without a ledger row "
        f"{counts.signals_without_row}; signals without a final state "
        f"{counts.signals_without_final_state}; sent per the ledger but not at the broker "
        f"{counts.sent_not_at_broker}",
        f"wall {counts.wall_s:.0f} s",
    ]
