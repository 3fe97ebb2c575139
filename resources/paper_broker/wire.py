"""Alpaca's JSON shapes for the paper broker: plain functions of rows the engine has read.

Quantities and prices go out as strings, the way Alpaca sends them; bars and quotes as numbers.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pandas as pd

from resources.paper_broker.bars import ONE_MINUTE
from resources.paper_broker.clock import MARKET_TZ
from resources.paper_broker.state import iso

EXCHANGES = {"SPY": "ARCA", "QQQ": "NASDAQ"}


def num(value: float | None) -> str | None:
    """Alpaca sends quantities and prices as strings; whole numbers without a decimal point."""
    if value is None:
        return None
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


def et(ts: pd.Timestamp) -> str:
    return ts.tz_convert(MARKET_TZ).isoformat()


def asset_id(symbol: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"paper-broker/asset/{symbol}"))


def clock_json(
    now: pd.Timestamp, is_open: bool, next_open: pd.Timestamp, next_close: pd.Timestamp
) -> dict[str, Any]:
    return {
        "timestamp": et(now),
        "is_open": is_open,
        "next_open": et(next_open),
        "next_close": et(next_close),
    }


def order_json(order: dict[str, Any], legs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """An order row; `legs` are the already-shaped bracket legs (None outside a nested parent)."""
    return {
        "id": order["id"],
        "client_order_id": order["client_order_id"],
        "created_at": order["created_at"],
        "updated_at": order["updated_at"],
        "submitted_at": order["submitted_at"],
        "filled_at": order["filled_at"],
        "expired_at": order["expired_at"],
        "canceled_at": order["canceled_at"],
        "failed_at": None,
        "replaced_at": None,
        "replaced_by": None,
        "replaces": None,
        "asset_id": asset_id(order["symbol"]),
        "symbol": order["symbol"],
        "asset_class": "us_equity",
        "notional": None,
        "qty": num(order["qty"]),
        "filled_qty": num(order["filled_qty"]),
        "filled_avg_price": num(order["filled_avg_price"]),
        "order_class": order["order_class"],
        "order_type": order["type"],
        "type": order["type"],
        "side": order["side"],
        "time_in_force": order["time_in_force"],
        "limit_price": num(order["limit_price"]),
        "stop_price": num(order["stop_price"]),
        "status": order["status"],
        "extended_hours": bool(order["extended_hours"]),
        "legs": legs,
        "trail_percent": None,
        "trail_price": None,
        "hwm": None,
        "position_intent": order["position_intent"],
        "commission": order["commission"],
    }


def position_json(row: dict[str, Any], price: float, held: float) -> dict[str, Any]:
    """A position row valued at `price`; `held` shares are reserved by working stop legs."""
    symbol = row["symbol"]
    qty = float(row["qty"])
    avg = float(row["avg_entry_price"])
    market_value = qty * price
    cost_basis = qty * avg
    pl = market_value - cost_basis
    values = {
        "avg_entry_price": num(avg),
        "market_value": num(market_value),
        "cost_basis": num(cost_basis),
        "unrealized_pl": num(pl),
        "unrealized_plpc": num(pl / abs(cost_basis) if cost_basis else 0.0),
        "unrealized_intraday_pl": num(pl),
        "unrealized_intraday_plpc": num(pl / abs(cost_basis) if cost_basis else 0.0),
        "current_price": num(price),
        "lastday_price": num(price),
        "change_today": "0",
    }
    return {
        "asset_id": asset_id(symbol),
        "symbol": symbol,
        "exchange": EXCHANGES.get(symbol, "NASDAQ"),
        "asset_class": "us_equity",
        "asset_marginable": True,
        "qty": num(qty),
        "side": "long" if qty > 0 else "short",
        "qty_available": num(max(abs(qty) - held, 0.0) * (1 if qty > 0 else -1)),
        **values,
    }


def account_json(
    *,
    account_id: str | None,
    account_number: str | None,
    created_at: str | None,
    cash: float,
    long_value: float,
    short_value: float,
    last_equity: float,
) -> dict[str, Any]:
    """The account from cash and the signed market values of long and short positions."""
    equity = cash + long_value + short_value
    buying_power = max(0.0, equity - long_value + short_value)
    return {
        "id": account_id,
        "account_number": account_number,
        "status": "ACTIVE",
        "currency": "USD",
        "cash": num(cash),
        "buying_power": num(buying_power),
        "regt_buying_power": num(buying_power),
        "non_marginable_buying_power": num(buying_power),
        "options_buying_power": "0",
        "accrued_fees": "0",
        "pending_transfer_in": "0",
        "pending_transfer_out": "0",
        "portfolio_value": num(equity),
        "equity": num(equity),
        "last_equity": num(last_equity),
        "long_market_value": num(long_value),
        "short_market_value": num(short_value),
        "initial_margin": "0",
        "maintenance_margin": "0",
        "last_maintenance_margin": "0",
        "sma": "0",
        "multiplier": "1",
        "daytrade_count": 0,
        "pattern_day_trader": False,
        "trading_blocked": False,
        "transfers_blocked": False,
        "account_blocked": False,
        "trade_suspended_by_user": False,
        "shorting_enabled": True,
        "created_at": created_at,
    }


def quote_json(symbol: str, bar: pd.Series, spread_bps: float) -> dict[str, Any]:
    """Bid/ask around the bar's close, `spread_bps` wide, stamped at the bar's close."""
    close = float(bar["close"])
    half = close * spread_bps / 20_000.0
    return {
        "t": iso(bar["timestamp"] + ONE_MINUTE),
        "ax": "V",
        "ap": close + half,
        "as": 1,
        "bx": "V",
        "bp": close - half,
        "bs": 1,
        "c": ["R"],
        "z": "C" if symbol in EXCHANGES else "A",
    }


def bar_json(bar: Any, *, with_counts: bool = True) -> dict[str, Any]:
    """A stored bar (a pandas row or an `itertuples` tuple); without counts n and vw are null."""
    f = bar.to_dict() if isinstance(bar, pd.Series) else bar._asdict()
    return {
        "t": f["timestamp"].strftime("%Y-%m-%dT%H:%M:%SZ"),
        "o": float(f["open"]),
        "h": float(f["high"]),
        "l": float(f["low"]),
        "c": float(f["close"]),
        "v": int(f["volume"]),
        "n": None if not with_counts or pd.isna(f["trade_count"]) else int(f["trade_count"]),
        "vw": None if not with_counts or pd.isna(f["vwap"]) else float(f["vwap"]),
    }


def page_offset(token: str | None) -> int:
    """The row offset a `next_page_token` stands for (0 without one)."""
    return int(base64.b64decode(token).decode()) if token else 0


def page_token(offset: int) -> str:
    return base64.b64encode(str(offset).encode()).decode()
