"""The execution layer: the `broker_orders` ledger, built by an op graph that sends the orders.

`execute_signals` (jobs/execution.py) materializes this graph-backed asset: `send_orders`
re-checks every actionable signal at send time and places its bracket order exactly once;
`record_orders` re-reads what the broker did with each (fills, exits) and writes one ledger row
per signal. Re-materializing a partition never sends twice (the look-up by signal id comes
first) and refreshes its rows' states, which is how the end-of-day run records final states.

Faults (RELIABILITY.md): a signal the broker could not be asked about ends its pass as `error`
and is tried again in this run (`SEND_PASSES`), look-up first; `send_orders` itself is retried
by Dagster when the broker is unreachable before anything is sent, and a retried op or a
re-executed run finds every order it already placed by its client order id.
"""

import time
from typing import Any

import pandas as pd
from dagster import (
    AssetIn,
    BackfillPolicy,
    Failure,
    In,
    MetadataValue,
    OpExecutionContext,
    Out,
    RetryPolicy,
    graph_asset,
    op,
)
from dagster_duckdb import DuckDBResource

from resources.broker import BrokerConfigError, BrokerError, BrokerResource
from resources.trading_controls import TradingControls
from trading_assets.assets.decision import read_ledger
from trading_assets.assets.ingest import MINUTES, PARTITION_EXPR
from trading_assets.assets.minutes import run_minutes
from trading_assets.execution.ledger import FINAL_STATES, ledger_frame
from trading_assets.execution.send import SendContext, execute_signal, refresh
from trading_assets.partitions import session_bounds

MEMORY = "mem_io_manager"  # op-to-op hand-over inside one in-process run, never the warehouse
SEND_PASSES = 3  # a pass per signal, then again for those the broker could not be asked about
PASS_WAIT_S = 0.5
# The op fails before sending anything when the broker is unreachable at its first reads; a
# retry is safe (look-up first) and cheap next to losing the minute. Config errors never retry.
SEND_RETRY = RetryPolicy(max_retries=2, delay=1.0)


@op(
    ins={"trade_signals": In(pd.DataFrame)},
    out=Out(list, io_manager_key=MEMORY),
    retry_policy=SEND_RETRY,
    description="Re-check each signal against the broker's present (clock, quote, spread, "
    "buying power, limits, kill switch, signal age) and place its bracket order exactly once.",
)
def send_orders(
    context: OpExecutionContext,
    trade_signals: pd.DataFrame,
    broker: BrokerResource,
    controls: TradingControls,
    warehouse: DuckDBResource,
) -> list[dict[str, Any]]:
    minutes = run_minutes(context)
    prior = read_ledger(warehouse, minutes[0], minutes[-1])
    prior_rows = {r["signal_id"]: r for r in prior.to_dict("records")} if len(prior) else {}
    label = broker.describe()
    try:
        client = broker.client()
        ctx = SendContext(
            clock=client.clock(), account=client.account(), positions=client.positions()
        )
    except BrokerConfigError as exc:
        raise Failure(description=f"broker configuration: {exc}", allow_retries=False) from exc
    except BrokerError as exc:
        raise Failure(description=f"broker unreachable before sending: {exc}") from exc
    ordered = trade_signals.sort_values(["minute", "confidence", "ticker"], ascending=[1, 0, 1])
    signals = ordered.to_dict("records")
    rows: dict[str, dict[str, Any]] = {}
    pending = signals
    for attempt in range(1, SEND_PASSES + 1):
        if attempt > 1:
            context.log.warning(
                f"pass {attempt}: {len(pending)} signals the broker could not be asked about"
            )
            time.sleep(PASS_WAIT_S)
        for signal in pending:
            sid = str(signal["signal_id"])
            row = execute_signal(client, signal, ctx, controls, label, prior_rows.get(sid))
            context.log.info(f"{sid} {signal['ticker']}: {row['state']} {row['reason']}")
            rows[sid] = row
        pending = [s for s in pending if rows[str(s["signal_id"])]["state"] == "error"]
        if not pending:
            break
    return [rows[str(s["signal_id"])] for s in signals]


@op(
    out=Out(pd.DataFrame),
    description="Re-read each sent order (entry fill, stop / take-profit / flatten exit) and "
    "lay out one ledger row per signal.",
)
def record_orders(
    context: OpExecutionContext,
    trade_signals: pd.DataFrame,
    sent: list[dict[str, Any]],
    broker: BrokerResource,
) -> pd.DataFrame:
    first = run_minutes(context)[0]
    bounds = session_bounds(first.date())
    since = (bounds[0] if bounds else first.normalize()).tz_localize("America/New_York")
    signals = {str(s["signal_id"]): s for s in trade_signals.to_dict("records")}
    try:
        rows = refresh(broker.client(), sent, signals, broker.describe(), since.tz_convert("UTC"))
    except BrokerError as exc:  # the send already happened: keep its rows, refresh next run
        context.log.warning(f"could not refresh order states: {exc}")
        rows = sent
    frame = ledger_frame(rows)
    frame["run_id"] = context.run_id
    states = frame["state"].value_counts().to_dict()
    closed = frame[frame["state"] == "closed"]
    context.add_output_metadata(
        {
            "signals": len(frame),
            "states": MetadataValue.json(states),
            "sent_this_run": int(frame["attempts"].gt(0).sum()),
            "final": int(frame["state"].isin(FINAL_STATES).sum()),
            "realised_pnl": round(float(closed["realised_pnl"].sum()), 2),
            "broker": broker.describe(),
        }
    )
    return frame


@graph_asset(
    ins={"trade_signals": AssetIn()},
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="execution",
    kinds={"pandas", "duckdb", "alpaca"},
    partitions_def=MINUTES,
    backfill_policy=BackfillPolicy.single_run(),
)
def broker_orders(trade_signals: pd.DataFrame) -> pd.DataFrame:
    """The order ledger: one row per trade signal with its order's state (not_sent, skipped,
    rejected, submitted, open, closed, canceled, expired), fills, exit and realised P&L."""
    return record_orders(trade_signals, send_orders(trade_signals))
