"""Where the risk manager's portfolio state comes from: the broker, or the order ledger.

* broker (live and paper trading): account, positions and today's orders as the broker knows
  them at decision time. Only honest for the minute just closed, so the asset refuses it for a
  minute far behind the broker's clock (a backfill must not size past trades on today's book).
* ledger: rebuilt from `broker_orders` rows as of the minute (fills stamped before the minute's
  close only), starting from a configured equity; no broker call.
* backtest (backfills): the session's earlier signals filled by the paper broker's rules over
  the bars up to the minute (`trading_assets/backtest/simulate.py`). `state_from_backtest`
  re-simulates the session for one minute; a backfill advances one incremental book per session
  instead (`backtest_book.py`), which gives the same state at every minute.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from resources.broker import BrokerClient, OrderState
from trading_assets.backtest.simulate import simulate_fills
from trading_assets.decision.portfolio import (
    FillEvent,
    closed_trades,
    portfolio_state,
    positions_from_fills,
)
from trading_assets.decision.risk import SIGNAL_PREFIX, PortfolioState, Position, RiskLimits
from trading_assets.decision.signals import actionable
from trading_assets.execution.fills import FillModel
from trading_assets.execution.ledger import SENT_STATES, naive_ny


def _flat_orders(orders: Iterable[OrderState]) -> list[OrderState]:
    out: list[OrderState] = []
    for order in orders:
        out.append(order)
        out.extend(order.legs)
    return out


def broker_fills(orders: Iterable[OrderState]) -> list[FillEvent]:
    """One fill event per filled order or leg (alpaca reports the average price per order)."""
    fills = []
    for order in _flat_orders(orders):
        if order.filled_qty > 0 and order.filled_avg_price and order.filled_at is not None:
            fills.append(
                FillEvent(
                    symbol=order.symbol,
                    side=order.side,  # type: ignore[arg-type]
                    qty=float(order.filled_qty),
                    price=float(order.filled_avg_price),
                    at=naive_ny(order.filled_at).to_pydatetime(),
                    order_id=order.id,
                )
            )
    return sorted(fills, key=lambda f: f.at)


def entries_sent(orders: Iterable[OrderState]) -> int:
    """Entry orders the broker accepted (our signals' parents; legs and flattens are exits)."""
    return sum(
        1 for o in orders if o.client_order_id.startswith(SIGNAL_PREFIX) and o.status != "rejected"
    )


def state_from_broker(
    client: BrokerClient,
    as_of: datetime,
    session_open: pd.Timestamp,
    kill_switch: bool,
    limits: RiskLimits | None = None,
) -> PortfolioState:
    """The book at the broker now; `as_of` (naive NY) bounds which fills count as today's."""
    account = client.account()
    positions = [
        Position(
            ticker=p.symbol,
            qty=round(p.qty),
            avg_price=p.avg_entry_price,
            mark=p.current_price if p.current_price and p.current_price > 0 else None,
        )
        for p in client.positions()
        if round(p.qty) != 0 and p.avg_entry_price > 0
    ]
    orders = client.orders_since(session_open)
    return portfolio_state(
        equity=account.equity,
        cash=account.cash,
        positions=positions,
        fills_today=broker_fills(orders),
        entries_today=entries_sent(orders),
        as_of=as_of,
        day_start_equity=account.last_equity if account.last_equity > 0 else None,
        kill_switch=kill_switch,
        limits=limits,
    )


def ledger_fills(ledger: pd.DataFrame, as_of: datetime) -> list[FillEvent]:
    """Entry and exit fills recorded in `broker_orders`, stamped before `as_of`."""
    fills: list[FillEvent] = []
    cutoff = pd.Timestamp(as_of)
    for row in ledger.itertuples(index=False):
        qty = float(row.filled_qty) if pd.notna(row.filled_qty) else 0.0
        if qty <= 0 or pd.isna(row.entry_filled_at) or row.entry_filled_at > cutoff:
            continue
        fills.append(
            FillEvent(
                symbol=row.ticker,
                side=row.side,
                qty=qty,
                price=float(row.entry_price),
                at=pd.Timestamp(row.entry_filled_at).to_pydatetime(),
                order_id=str(row.signal_id),
            )
        )
        if pd.notna(row.exit_filled_at) and row.exit_filled_at <= cutoff:
            fills.append(
                FillEvent(
                    symbol=row.ticker,
                    side="sell" if row.side == "buy" else "buy",
                    qty=qty,
                    price=float(row.exit_price),
                    at=pd.Timestamp(row.exit_filled_at).to_pydatetime(),
                    order_id=f"{row.signal_id}-exit",
                )
            )
    return sorted(fills, key=lambda f: f.at)


def state_from_ledger(
    ledger: pd.DataFrame,
    as_of: datetime,
    equity: float,
    kill_switch: bool,
    limits: RiskLimits | None = None,
) -> PortfolioState:
    """The book rebuilt from the ledger as of `as_of` (naive NY), from a starting `equity`."""
    day = pd.Timestamp(as_of).normalize()
    fills = ledger_fills(ledger, as_of)
    trades = closed_trades(fills)
    realised_before = sum(t.pnl for t in trades if pd.Timestamp(t.closed_at) < day)
    realised_today = sum(t.pnl for t in trades if pd.Timestamp(t.closed_at) >= day)
    start_equity = equity + realised_before
    positions = positions_from_fills(fills)
    held_cost = sum(p.qty * p.avg_price for p in positions)  # long cost, short proceeds
    entries = 0
    if len(ledger):  # before the first execution there is no broker_orders table (no columns)
        decided = pd.to_datetime(ledger["minute"])
        earlier = pd.Timestamp(as_of) - pd.Timedelta(minutes=1)  # this minute's own rows excluded
        today = ledger[(decided >= day) & (decided < earlier)]
        entries = int(today["state"].isin(SENT_STATES).sum())
    return portfolio_state(
        equity=start_equity + realised_today,
        cash=start_equity + realised_today - held_cost,
        positions=positions,
        fills_today=fills,  # all of them: a position opened yesterday may close today
        entries_today=entries,
        as_of=as_of,
        day_start_equity=start_equity,
        kill_switch=kill_switch,
        limits=limits,
    )


def fill_events(rows: Iterable[Mapping[str, Any]]) -> list[FillEvent]:
    """The broker's view of simulated fills (`BACKTEST_FILL_COLUMNS` rows in the fill frame's
    order): one event per order (entry or exit leg) with its average price, stamped at its last
    fill's bar close, as `broker_fills` reports them. Plain rows, so the incremental book and
    the re-simulation share it."""
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row["trade_id"]), str(row["reason"])), []).append(row)
    events = []
    for (trade_id, leg), group in groups.items():
        qty = float(np.sum([r["qty"] for r in group]))
        notional = float(np.sum([r["qty"] * r["price"] for r in group]))
        last = max(pd.Timestamp(r["minute"]) for r in group)
        events.append(
            FillEvent(
                symbol=str(group[0]["ticker"]),
                side=str(group[0]["side"]),  # type: ignore[arg-type]
                qty=qty,
                price=notional / qty,
                at=(last + pd.Timedelta(minutes=1)).to_pydatetime(),
                order_id=f"{trade_id}-{leg}",
            )
        )
    return sorted(events, key=lambda f: f.at)


def backtest_state(
    events: list[FillEvent],
    marks: Mapping[str, float],
    cash: float,
    entries: int,
    minute: pd.Timestamp,
    equity: float,
    kill_switch: bool,
    limits: RiskLimits | None = None,
) -> PortfolioState:
    """A backtest book at the close of `minute` as the risk manager sees it: the positions the
    simulated fill `events` leave, valued at the `marks` (each ticker's last close so far).
    One assembly for the re-simulation here and the incremental book, so both give one state."""
    positions = [
        p.model_copy(update={"mark": float(marks[p.ticker])}) if p.ticker in marks else p
        for p in positions_from_fills(events)
    ]
    value = sum(p.qty * (p.mark or p.avg_price) for p in positions)
    return portfolio_state(
        equity=cash + value,
        cash=cash,
        positions=positions,
        fills_today=events,
        entries_today=entries,
        as_of=(minute + pd.Timedelta(minutes=1)).to_pydatetime(),
        day_start_equity=equity,
        kill_switch=kill_switch,
        limits=limits,
    )


def state_from_backtest(
    earlier_signals: pd.DataFrame,
    bars: pd.DataFrame,
    minute: pd.Timestamp,
    equity: float,
    kill_switch: bool,
    limits: RiskLimits | None = None,
    model: FillModel | None = None,
) -> PortfolioState:
    """The book a backtest holds at the close of `minute`: this session's earlier signals run
    through the paper broker's fill rules over the bars up to `minute` (no later bar is read).

    Each session starts flat from `equity`, as a fresh paper account would; the equity curve of
    `backtest_performance` carries P&L across sessions, the sizing here does not. This
    re-simulates the session so far on every call: the reference that a backfill's
    incremental book (`trading_assets/decision/backtest_book.py`) must equal at every minute.
    """
    day = minute.normalize()
    session = bars[(bars["minute"] >= day) & (bars["minute"] <= minute)]
    fills = simulate_fills(earlier_signals, session, model or FillModel(), horizon=minute)
    marks = session.sort_values("minute").groupby("ticker")["close"].last()
    entries = len(actionable(earlier_signals)) if len(earlier_signals) else 0
    return backtest_state(
        fill_events(fills.to_dict("records")),
        marks.to_dict(),
        equity + float(fills["cash_delta"].sum()),
        entries,
        minute,
        equity,
        kill_switch,
        limits,
    )
