"""The `broker_orders` ledger: one row per trade signal with what became of it.

A row's `state` is one of:

* `not_sent`  the risk manager rejected the proposal (its reasons), so no order exists;
* `skipped`   the execution op's send-time check failed (market closed, wide spread, stale or
              missing quote, buying power, kill switch, stale signal): no order exists;
* `rejected`  the broker refused the order (its message);
* `error`     the broker could not be reached after every retry: unknown, re-checked next run;
* `submitted` the broker accepted the entry and it has not filled yet;
* `open`      the entry filled and the bracket's stop / take-profit are working;
* `closed`    the position is flat again (take-profit, stop, or the close-of-day flatten);
* `canceled` / `expired`  the entry never filled.

Final states: not_sent, skipped, rejected, closed, canceled, expired. Times are naive New York.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from trading_assets.decision.risk import SIGNAL_PREFIX
from trading_assets.schemas import MARKET_TZ, conform, empty_frame

LEDGER_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # the signal's partition minute
    "signal_id": "string",  # = the broker's client_order_id
    "ticker": "string",
    "side": "string",  # buy | sell (sell = short entry)
    "qty": "int64",  # the broker order's quantity once sent, else what the signal asked for
    "signal_status": "string",  # approved | resized | rejected (risk manager)
    "entry_ref": "float64",  # the signal's reference price
    "stop": "float64",
    "take_profit": "float64",
    "state": "string",
    "reason": "string",
    "broker_order_id": "string",
    "broker": "string",  # which broker (embedded / Alpaca paper / Alpaca live), no secrets
    "attempts": "int64",  # POSTs this run made (0: found by look-up or not sent)
    "submitted_at": "datetime64[ns]",
    "filled_qty": "float64",
    "entry_price": "float64",
    "entry_filled_at": "datetime64[ns]",
    "exit_reason": "string",  # take_profit | stop | flatten
    "exit_price": "float64",
    "exit_filled_at": "datetime64[ns]",
    "realised_pnl": "float64",  # gross of commissions (the broker API does not report them)
    "recorded_at": "datetime64[ns]",  # broker clock when this row was written
}
FINAL_STATES = frozenset({"not_sent", "skipped", "rejected", "closed", "canceled", "expired"})
SENT_STATES = frozenset({"submitted", "open", "closed", "canceled", "expired"})
_WORKING = {"new", "accepted", "pending_new", "held", "accepted_for_bidding", "pending_replace"}


def naive_ny(ts: Any) -> pd.Timestamp:
    """Naive New York wall clock from a tz-aware or naive (already NY) timestamp; NaT stays."""
    if ts is None or (not isinstance(ts, str) and pd.isna(ts)):
        return pd.NaT  # type: ignore[return-value]
    stamp = pd.Timestamp(ts)
    return stamp.tz_convert(MARKET_TZ).tz_localize(None) if stamp.tzinfo else stamp


def base_row(signal: Mapping[str, Any], broker: str, now: Any) -> dict[str, Any]:
    """The signal's own columns of its ledger row."""
    action = str(signal.get("proposed_action") or signal["action"])
    return {
        "minute": pd.Timestamp(signal["minute"]),
        "signal_id": str(signal["signal_id"]),
        "ticker": str(signal["ticker"]),
        "side": "buy" if action == "BUY" else "sell",
        "qty": int(signal["qty"]),
        "signal_status": str(signal["status"]),
        "entry_ref": float(signal["entry"]),
        "stop": float(signal["stop"]),
        "take_profit": float(signal["take_profit"]),
        "broker": broker,
        "attempts": 0,
        "recorded_at": naive_ny(now),
    }


def unsent_row(
    signal: Mapping[str, Any], state: str, reason: str, broker: str, now: Any, attempts: int = 0
) -> dict[str, Any]:
    return {**base_row(signal, broker, now), "state": state, "reason": reason, "attempts": attempts}


def _exit_from_legs(order: Any) -> tuple[str, float, pd.Timestamp] | None:
    for leg in getattr(order, "legs", ()) or ():
        if leg.status == "filled" and leg.filled_avg_price:
            kind = "stop" if leg.stop_price is not None and leg.type != "limit" else "take_profit"
            return kind, float(leg.filled_avg_price), naive_ny(leg.filled_at)
    return None


def _exit_from_flatten(order: Any, others: Sequence[Any]) -> tuple[str, float, pd.Timestamp] | None:
    """A close-out order on the same symbol after the entry filled (the broker's or our
    flatten at the close): the first filled opposite-side order not sent for a signal."""
    if order.filled_at is None:
        return None
    opposite = "sell" if order.side == "buy" else "buy"
    for other in others:
        if (
            other.symbol == order.symbol
            and other.side == opposite
            and other.status == "filled"
            and not str(other.client_order_id).startswith(SIGNAL_PREFIX)
            and other.filled_at is not None
            and other.filled_at >= order.filled_at
            and other.filled_avg_price
        ):
            return "flatten", float(other.filled_avg_price), naive_ny(other.filled_at)
    return None


def sent_row(
    signal: Mapping[str, Any],
    order: Any,
    broker: str,
    now: Any,
    *,
    attempts: int = 0,
    others: Sequence[Any] = (),
    note: str = "",
) -> dict[str, Any]:
    """The row of a signal whose order the broker holds (`order`: resources.broker.OrderState,
    with its bracket legs); `others` are the day's other orders (to find a flatten exit)."""
    row = {
        **base_row(signal, broker, now),
        "qty": round(float(order.qty)),  # what the broker holds, checked against the signal
        "broker_order_id": str(order.id),
        "attempts": attempts,
        "submitted_at": naive_ny(order.submitted_at),
        "filled_qty": float(order.filled_qty or 0.0),
        "entry_price": float(order.filled_avg_price) if order.filled_avg_price else math.nan,
        "entry_filled_at": naive_ny(order.filled_at),
    }
    filled = row["filled_qty"] > 0
    exit_ = (_exit_from_legs(order) or _exit_from_flatten(order, others)) if filled else None
    if exit_ is not None:
        kind, price, at = exit_
        sign = 1.0 if order.side == "buy" else -1.0
        row |= {
            "state": "closed",
            "exit_reason": kind,
            "exit_price": price,
            "exit_filled_at": at,
            "realised_pnl": round(sign * (price - row["entry_price"]) * row["filled_qty"], 6),
            "reason": note or f"closed by {kind.replace('_', '-')} at {price:.2f}",
        }
    elif filled:
        row |= {"state": "open", "reason": note or "entry filled; bracket legs working"}
    elif order.status in ("canceled", "expired", "rejected"):
        row |= {"state": order.status, "reason": note or f"entry {order.status} by the broker"}
    elif order.status in _WORKING or order.status == "partially_filled":
        row |= {"state": "submitted", "reason": note or "accepted; waiting for the next bar"}
    else:
        row |= {"state": "submitted", "reason": note or f"broker status {order.status}"}
    return row


def ledger_frame(rows: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    if not rows:
        return empty_frame(LEDGER_COLUMNS)
    frame = pd.DataFrame(list(rows))
    for column, dtype in LEDGER_COLUMNS.items():
        if column not in frame:
            frame[column] = pd.Series(
                pd.NaT if dtype.startswith("datetime") else None, index=frame.index
            )
    frame["reason"] = frame["reason"].fillna("")
    frame["broker_order_id"] = frame["broker_order_id"].fillna("")
    frame["exit_reason"] = frame["exit_reason"].fillna("")
    frame["attempts"] = frame["attempts"].fillna(0)
    return conform(frame, LEDGER_COLUMNS)


def reasons_text(reasons: Any) -> str:
    """The risk manager's JSON reasons as one line."""
    try:
        items = json.loads(reasons) if isinstance(reasons, str) else list(reasons or [])
    except json.JSONDecodeError:
        return str(reasons)
    return "; ".join(str(r) for r in items)
