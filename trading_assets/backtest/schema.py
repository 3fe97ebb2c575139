"""The contract of `backtest_fills`: one row per simulated execution, keyed by the bar it
happened in (so a partition only ever holds what was knowable by its close)."""

from __future__ import annotations

import pandas as pd

from trading_assets.execution.fills import Fill

BACKTEST_FILL_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # start of the bar the fill happened in (the partition key)
    "strategy": "string",  # "agents" for the team's signals; a baseline's name otherwise
    "trade_id": "string",  # the signal id (one round trip); baselines make their own
    "signal_minute": "datetime64[ns]",  # the minute the trade was decided
    "ticker": "string",
    "position_side": "string",  # long | short: the round trip this fill belongs to
    "side": "string",  # buy | sell: this fill's direction
    "reason": "string",  # entry | stop | take_profit | close | exit (a baseline's signal)
    "qty": "float64",  # shares, > 0
    "price": "float64",  # executed price, slippage included
    "reference_price": "float64",  # the bar price it was based on (open, stop, limit, close)
    "commission": "float64",
    "slippage_cost": "float64",  # qty * |price - reference_price|
    "cash_delta": "float64",  # buys pay notional + commission; sells receive less commission
}


def fill_row(
    fill: Fill,
    *,
    strategy: str,
    trade_id: str,
    signal_minute: pd.Timestamp,
    ticker: str,
    position_side: str,
    reason: str | None = None,
    minute: pd.Timestamp | None = None,
) -> dict[str, object]:
    """One `BACKTEST_FILL_COLUMNS` row; `minute` defaults to the fill's bar, `reason` to the
    fill's own (a baseline names its signal exits "exit")."""
    return {
        "minute": fill.timestamp if minute is None else minute,
        "strategy": strategy,
        "trade_id": trade_id,
        "signal_minute": signal_minute,
        "ticker": ticker,
        "position_side": position_side,
        "side": fill.side,
        "reason": fill.reason if reason is None else reason,
        "qty": fill.qty,
        "price": fill.price,
        "reference_price": fill.reference_price,
        "commission": fill.commission,
        "slippage_cost": fill.qty * abs(fill.price - fill.reference_price),
        "cash_delta": fill.cash_delta,
    }
