"""The trading jobs: the intraday decision run, the execution, and closing every position."""

from collections.abc import Iterator

from dagster import (
    AssetSelection,
    Failure,
    Nothing,
    OpExecutionContext,
    Out,
    Output,
    define_asset_job,
    job,
    op,
)

from resources.broker import BrokerError, BrokerResource
from resources.trading_controls import LIVE_TAG
from trading_assets.assets.ingest import MINUTES

__all__ = ["LIVE_TAG"]  # re-exported: the schedules and the sensor read it from here


intraday_job = define_asset_job(
    name="intraday_job",
    selection=AssetSelection.groups("ingest", "events", "analysts", "research", "decision"),
    partitions_def=MINUTES,
    description="One minute end to end: bars, news and fundamentals, the gate, the analysts, the "
    "debate and the trade signals. The intraday schedule runs it for the minute just closed; "
    "the signal sensor then launches execute_signals.",
)

decision_job = define_asset_job(
    name="decision_job",
    selection=AssetSelection.assets("trade_signals"),
    partitions_def=MINUTES,
    description="trade_signals alone, over research already materialized: the replay's decision "
    "step, and re-deciding a minute after a limit change.",
)

execute_signals = define_asset_job(
    name="execute_signals",
    selection=AssetSelection.assets("broker_orders"),
    partitions_def=MINUTES,
    description="The execution op graph: re-check each actionable signal, place its bracket "
    "order exactly once (client order id = signal id) and record the outcome in broker_orders. "
    "Over a range it sends nothing stale and refreshes every row's state (end of day).",
)


@op(
    description="Cancel every open order, then close every position at market.",
    out=Out(Nothing),  # counts go to the metadata; nothing for the warehouse to store
)
def close_positions(context: OpExecutionContext, broker: BrokerResource) -> Iterator[Output]:
    try:
        client = broker.client()
        canceled = client.cancel_all_orders()
        closing = client.close_all_positions()
    except BrokerError as exc:
        raise Failure(
            description=f"closing positions at {broker.describe()} failed: {exc}"
        ) from exc
    context.log.info(
        f"{broker.describe()}: canceled {canceled} open orders, closing {len(closing)} positions: "
        + ", ".join(f"{o.side} {o.qty:g} {o.symbol}" for o in closing)
    )
    yield Output(None, metadata={"canceled_orders": canceled, "closing_orders": len(closing)})


@job(
    description="Flatten the book: cancel every open order (bracket legs too) and close every "
    "position. The flatten schedule runs it before the close; run it by hand as the kill "
    "switch's second half (TRADING_KILL_SWITCH blocks new entries)."
)
def close_all_positions() -> None:
    close_positions()
