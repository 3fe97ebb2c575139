"""Send time: re-check a signal against the broker's present, then place it exactly once.

The risk manager decided at the minute's close; by the time the order goes out the market may
have closed, the quote may have widened or gone stale (a halt), buying power may have been used
and the kill switch may be on. Each failed check skips the signal with its reason; nothing is
sent from a stale, future or rejected signal. Exactly once: the signal id is the client order
id, `BrokerClient.submit_bracket` looks it up before every POST, and a signal the ledger already
closed out (skipped, rejected, not sent) is never reconsidered.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from resources.broker import (
    BrokerAccount,
    BrokerClient,
    BrokerClock,
    BrokerPosition,
    BrokerRejected,
    BrokerUnavailable,
    Quote,
)
from resources.trading_controls import TradingControls
from trading_assets.execution.ledger import (
    reasons_text,
    sent_row,
    unsent_row,
)

UNSENT_FINAL = frozenset({"skipped", "rejected", "not_sent"})


def _money(x: float) -> str:
    return f"{x:,.2f}"


def signal_age_problem(minute: Any, now: pd.Timestamp, max_age_minutes: int) -> str | None:
    """Orders may go out only after the minute closed, and not long after (naive NY `minute`,
    tz-aware `now`)."""
    closed = pd.Timestamp(minute).tz_localize("America/New_York") + pd.Timedelta(minutes=1)
    age = (now - closed) / pd.Timedelta(minutes=1)
    if age < 0:
        return (
            f"signal from the future: its minute closes at {closed.isoformat()}, broker clock "
            f"{now.isoformat()}"
        )
    if age > max_age_minutes:
        return f"stale signal: its minute closed {age:.1f} min ago (limit {max_age_minutes} min)"
    return None


def quote_problems(quote: Quote | None, now: pd.Timestamp, controls: TradingControls) -> list[str]:
    if quote is None:
        return ["no quote (halted or unknown symbol)"]
    if not (quote.bid > 0 and quote.ask > 0) or quote.ask < quote.bid:
        return [f"invalid quote: bid {quote.bid}, ask {quote.ask}"]
    problems = []
    age = (now - quote.timestamp).total_seconds()
    if age > controls.max_quote_age_seconds:
        problems.append(
            f"stale quote: last at {quote.timestamp.isoformat()}, {age:.0f} s old "
            f"(limit {controls.max_quote_age_seconds} s; halted?)"
        )
    if quote.spread_pct > controls.max_spread_pct:
        problems.append(
            f"spread {quote.spread_pct:.2%} is wider than {controls.max_spread_pct:.2%} "
            f"(bid {quote.bid:.2f}, ask {quote.ask:.2f})"
        )
    return problems


@dataclass
class SendContext:
    """What the op reads from the broker once per run."""

    clock: BrokerClock
    account: BrokerAccount
    positions: list[BrokerPosition]
    committed: float = 0.0  # value of the orders this run already sent
    opened: set[str] = field(default_factory=set)


def _order_value(signal: Mapping[str, Any], quote: Quote | None) -> float:
    """What the order would cost at the quote (ask for a buy, bid for a sell), else at entry."""
    if quote is None:
        price = float(signal["entry"])
    else:
        price = quote.ask if signal["action"] == "BUY" else quote.bid
    return int(signal["qty"]) * price


def send_time_problems(
    signal: Mapping[str, Any], quote: Quote | None, ctx: SendContext, controls: TradingControls
) -> list[str]:
    """Every reason not to send `signal` now (empty: send it)."""
    now = ctx.clock.now
    problems: list[str] = []
    if controls.kill_switch:
        problems.append("kill switch is on: no new entries")
    age = signal_age_problem(signal["minute"], now, controls.max_signal_age_minutes)
    if age:
        problems.append(age)
    if not ctx.clock.is_open:
        problems.append(f"market closed (next open {ctx.clock.next_open.isoformat()})")
    if ctx.account.trading_blocked:
        problems.append(f"account trading blocked (status {ctx.account.status})")
    problems += quote_problems(quote, now, controls)
    value = _order_value(signal, quote)
    room = ctx.account.buying_power - ctx.committed
    if value > room:
        problems.append(f"buying power {_money(room)} < order value {_money(value)}")
    held = {p.symbol for p in ctx.positions if p.qty != 0} | ctx.opened
    ticker = str(signal["ticker"])
    if ticker not in held and len(held) >= controls.max_open_positions:
        problems.append(
            f"max open positions at send time: {len(held)} of {controls.max_open_positions}"
        )
    gross = sum(abs(p.qty) * (p.current_price or p.avg_entry_price) for p in ctx.positions)
    cap = ctx.account.equity * controls.max_total_exposure_pct
    if gross + ctx.committed + value > cap * 1.001:  # 0.1%: the signal was sized at the close
        problems.append(
            f"total exposure at send time: open {_money(gross + ctx.committed)} + order "
            f"{_money(value)} > {controls.max_total_exposure_pct:.0%} of equity ({_money(cap)})"
        )
    return problems


def execute_signal(
    client: BrokerClient,
    signal: Mapping[str, Any],
    ctx: SendContext,
    controls: TradingControls,
    broker: str,
    prior: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The ledger row of one signal after this run's attempt (see module docs)."""
    now = ctx.clock.now
    sid = str(signal["signal_id"])
    if signal["action"] not in ("BUY", "SELL") or int(signal["qty"]) <= 0:
        reason = "risk manager: " + (reasons_text(signal.get("reasons")) or "no size")
        return unsent_row(signal, "not_sent", reason, broker, now)
    if prior is not None and prior.get("state") in UNSENT_FINAL:
        return {k: v for k, v in prior.items() if k != "run_id"}  # decided once, for good
    try:  # the look-up comes first: an earlier attempt's order may be booked already
        existing = client.order_by_client_id(sid)
        quote = None if existing is not None else client.latest_quote(str(signal["ticker"]))
    except BrokerUnavailable as exc:
        reason = f"broker unavailable before sending (nothing sent by this attempt): {exc}"
        return unsent_row(signal, "error", reason, broker, now)
    if existing is not None:
        return sent_row(signal, existing, broker, now)
    problems = send_time_problems(signal, quote, ctx, controls)
    if problems:
        return unsent_row(signal, "skipped", "; ".join(problems), broker, now)
    side = "buy" if signal["action"] == "BUY" else "sell"
    try:
        result = client.submit_bracket(
            client_order_id=sid,
            symbol=str(signal["ticker"]),
            side=side,
            qty=int(signal["qty"]),
            take_profit=float(signal["take_profit"]),
            stop_loss=float(signal["stop"]),
        )
    except BrokerRejected as exc:
        return unsent_row(signal, "rejected", f"broker refused: {exc}", broker, now, attempts=1)
    except BrokerUnavailable as exc:
        return unsent_row(signal, "error", f"broker unavailable: {exc}", broker, now)
    ctx.committed += _order_value(signal, quote)
    ctx.opened.add(str(signal["ticker"]))
    note = "" if result.outcome == "submitted" else "already at the broker (found by its id)"
    return sent_row(signal, result.order, broker, now, attempts=result.attempts, note=note)


def refresh(
    client: BrokerClient,
    rows: Sequence[dict[str, Any]],
    signals: Mapping[str, Mapping[str, Any]],
    broker: str,
    since: pd.Timestamp,
) -> list[dict[str, Any]]:
    """Re-read every sent, unfinished row's order (fills and exits happen after the send)."""
    if not any(r.get("broker_order_id") and r["state"] in ("submitted", "open") for r in rows):
        return list(rows)
    orders = client.orders_since(since)
    now = client.clock().now
    by_client = {o.client_order_id: o for o in orders}
    out = []
    for row in rows:
        order = by_client.get(row["signal_id"])
        if order is None or row["state"] not in ("submitted", "open"):
            out.append(row)
            continue
        fresh = sent_row(signals[row["signal_id"]], order, broker, now, others=orders)
        out.append({**fresh, "attempts": row.get("attempts", 0)})
    return out
