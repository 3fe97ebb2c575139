"""The decision layer: the trading agent and the risk manager turn the debate into signals.

`trade_signals` has one row per proposal (a debated BUY/SELL verdict) with the risk manager's
answer; its materialization metadata carries the actionable count and the batch id the signal
sensor keys its runs on, so the sensor never has to open the warehouse.
"""

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    Failure,
    MetadataValue,
    asset,
)
from dagster_duckdb import DuckDBResource

from resources.broker import BrokerConfigError, BrokerError, BrokerResource
from resources.market_data import MarketDataResource
from resources.trading_controls import LIVE_TAG, TradingControls
from resources.warehouse import SCHEMA, table_exists
from trading_assets.assets.analysts import MINUTE_ASSET
from trading_assets.assets.ingest import PARTITION_EXPR, stamped
from trading_assets.assets.metadata import add_run_summary
from trading_assets.assets.minutes import history, run_minutes
from trading_assets.decision.backtest_book import backtest_signals
from trading_assets.decision.risk import PortfolioState
from trading_assets.decision.signals import (
    SIGNAL_COLUMNS,
    actionable,
    batch_id,
    minute_signals,
    proposals_by_minute,
    signal_frame,
)
from trading_assets.decision.sources import state_from_broker, state_from_ledger
from trading_assets.partitions import FULL_SESSION_MINUTES, session_bounds
from trading_assets.schemas import conform

LEDGER_TABLE = f"{SCHEMA}.broker_orders"
SIGNALS_TABLE = f"{SCHEMA}.trade_signals"
SOURCES = ("broker", "ledger", "backtest")
BOOK_SOURCES = {
    "ledger": "the broker_orders ledger (this warehouse)",
    "backtest": "the backtest's own book (its earlier signals under the paper broker's fills)",
}
# A run's first minute may be its session's last: one session back reaches every earlier bar.
SESSION_HISTORY = history(FULL_SESSION_MINUTES)


def read_ledger(warehouse: DuckDBResource, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """Ledger rows with minutes in [first, last] (empty before the first execution)."""
    with warehouse.get_connection() as conn:
        if not table_exists(conn, "broker_orders"):
            return pd.DataFrame()
        return conn.execute(
            f"SELECT * FROM {LEDGER_TABLE} WHERE minute >= ? AND minute <= ?",
            [first.to_pydatetime(), last.to_pydatetime()],
        ).df()


def _broker_state(
    context: AssetExecutionContext,
    broker: BrokerResource,
    controls: TradingControls,
    minute: pd.Timestamp,
    session_open: pd.Timestamp,
) -> PortfolioState:
    """The broker's book, refused when the broker's clock is not at this minute's close."""
    try:
        client = broker.client()
        now = client.clock().now
    except BrokerConfigError as exc:
        raise Failure(description=f"broker configuration: {exc}", allow_retries=False) from exc
    closed = minute.tz_localize("America/New_York") + pd.Timedelta(minutes=1)
    lag = (now - closed) / pd.Timedelta(minutes=1)
    if not 0 <= lag <= controls.max_state_lag_minutes:
        raise Failure(
            description=(
                f"portfolio_source=broker is only valid for the minute just closed: minute "
                f"{minute:%Y-%m-%d %H:%M} closed at {closed.isoformat()}, the broker's clock is "
                f"{now.isoformat()} ({lag:+.1f} min, allowed 0..{controls.max_state_lag_minutes})."
                " Backfills size on the backtest book: portfolio_source 'auto' or 'backtest'."
            ),
            allow_retries=False,
        )
    context.log.info(f"portfolio from {broker.describe()} at {now.isoformat()}")
    as_of = (minute + pd.Timedelta(minutes=1)).to_pydatetime()
    utc_open = session_open.tz_localize("America/New_York").tz_convert("UTC")
    return state_from_broker(client, as_of, utc_open, controls.kill_switch, controls.limits())


def read_session_signals(
    warehouse: DuckDBResource, first: pd.Timestamp, before: pd.Timestamp
) -> pd.DataFrame:
    """Stored signals with minutes in [first, before): the session's decisions made by earlier
    runs, which a backtest run starting mid-session must fill before it decides."""
    with warehouse.get_connection() as conn:
        if first >= before or not table_exists(conn, "trade_signals"):
            return pd.DataFrame()
        frame = conn.execute(
            f"SELECT * FROM {SIGNALS_TABLE} WHERE minute >= ? AND minute < ?",
            [first.to_pydatetime(), before.to_pydatetime()],
        ).df()
    return conform(frame, SIGNAL_COLUMNS) if len(frame) else frame


@asset(
    ins={
        "debate": AssetIn(),
        "technical_analysis": AssetIn(),
        "bars": SESSION_HISTORY,
    },
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="decision",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def trade_signals(
    context: AssetExecutionContext,
    market_data: MarketDataResource,
    broker: BrokerResource,
    controls: TradingControls,
    warehouse: DuckDBResource,
    debate: pd.DataFrame,
    technical_analysis: pd.DataFrame,
    bars: pd.DataFrame,
) -> pd.DataFrame:
    """The trading agent's proposal for every debated BUY/SELL verdict, validated, sized and
    gated by the risk manager against the portfolio: approved, resized or rejected, each with
    its reasons. A live run (the schedule's) sizes on the broker's book; a backfill sizes on the
    book its own earlier signals would have built under the paper broker's fill rules, so a
    backfill is a backtest of exactly what live would have done."""
    minutes = run_minutes(context)
    proposals = proposals_by_minute(debate, technical_analysis)
    limits, sectors = controls.limits(), market_data.sectors()
    source = controls.source_for(live=context.run.tags.get(LIVE_TAG) == "true")
    if source not in SOURCES:
        raise Failure(description=f"portfolio_source must be auto or one of {SOURCES}: {source!r}")
    if source == "broker" and len(proposals) > 1:
        raise Failure(
            description=f"{len(proposals)} minutes with proposals in one run: the broker's book "
            "is only valid for the minute just closed; backfills size on the backtest book "
            "(portfolio_source 'auto' or 'backtest')",
            allow_retries=False,
        )
    if source == "backtest":
        off_session = [m for m in proposals if session_bounds(m.date()) is None]
        if off_session:
            raise Failure(description=f"{off_session[0]} is not in an NYSE session")
        stored = pd.DataFrame()
        if proposals:
            stored = read_session_signals(warehouse, minutes.min().normalize(), minutes.min())
        frames = backtest_signals(
            proposals,
            stored,
            bars,
            limits=limits,
            sectors=sectors,
            equity=controls.starting_equity,
            kill_switch=controls.kill_switch,
        )
    else:
        frames = []
        ledger = pd.DataFrame()
        if source == "ledger" and proposals:
            first_day = minutes.min().normalize() - pd.Timedelta(days=7)
            ledger = read_ledger(warehouse, first_day, minutes.max())
        for minute, batch in proposals.items():
            bounds = session_bounds(minute.date())
            if bounds is None:
                raise Failure(description=f"{minute} is not in an NYSE session")
            as_of = (minute + pd.Timedelta(minutes=1)).to_pydatetime()
            try:
                if source == "broker":
                    state = _broker_state(context, broker, controls, minute, bounds[0])
                else:
                    state = state_from_ledger(
                        ledger, as_of, controls.starting_equity, controls.kill_switch, limits
                    )
            except BrokerError as exc:
                raise Failure(description=f"portfolio state from the broker failed: {exc}") from exc
            signals = minute_signals(batch, state, limits, sectors, minute, bounds[1])
            frames.append(signal_frame(signals, state, source))
    frame = pd.concat(frames, ignore_index=True) if frames else signal_frame([], None, source)
    ready = actionable(frame)
    add_run_summary(
        context,
        {
            "proposals": len(frame),
            "actionable": len(ready),
            "batch_id": batch_id(frame),
            "statuses": MetadataValue.json(frame["status"].value_counts().to_dict()),
            "actions": MetadataValue.json(ready["action"].value_counts().to_dict()),
            "portfolio_source": source,
            "kill_switch": controls.kill_switch,
            # Where this run's book came from, as it was then (not a broker to contact now: a
            # backfill never asks one, and a replay's embedded broker is gone after the replay).
            "book": BOOK_SOURCES[source] if source != "broker" else broker.describe(),
        },
    )
    return stamped(frame, context)
