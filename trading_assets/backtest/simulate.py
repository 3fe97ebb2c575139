"""Simulated execution of the trade signals: what the embedded paper broker would have done.

The rules are the paper broker's (`resources/paper_broker/engine.py`), bar by bar and ticker by
ticker, with the same `FillModel`, so a backfill and a paper-traded day over the same bars give
the same fills:

* an actionable signal decided at minute m is a bracket order submitted at m+1: a market entry
  that fills from the open of bar m+1, at most `max_volume_fraction` of each bar's volume
  (orders on one ticker share that cap in submission order); the rest keeps working;
* once some of the entry has filled, its stop and take-profit watch the bars *after* the last
  entry fill: the first bar that reaches one exits the filled quantity (the stop when a bar
  reaches both) and cancels what is left of the entry;
* at a session's last bar every working entry is cancelled and every open position is closed
  at that bar's close. The broker books one flatten per symbol; here each open trade gets its
  own closing fill (one commission each), so that every fill belongs to one round trip;
* an order never carries into the next session.

Point in time: with `horizon=m` only bars up to m are used, and a session's last bar is only
known to be the last once the horizon has reached the session's final minute.

One bar of one ticker is `bar_fills` (then `flatten_fills` at the session's last bar): the
whole-session simulation here and a backfill's incremental book
(`trading_assets/decision/backtest_book.py`) apply the same steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS, fill_row
from trading_assets.decision.signals import actionable
from trading_assets.execution.fills import Fill, FillModel
from trading_assets.partitions import session_bounds
from trading_assets.schemas import conform, empty_frame

ONE_MINUTE = pd.Timedelta(minutes=1)
STRATEGY = "agents"


@dataclass
class BracketOrder:
    """One actionable signal as the paper broker holds it: a market entry with its bracket."""

    trade_id: str
    signal_minute: pd.Timestamp
    ticker: str
    side: str  # buy = long entry, sell = short entry
    qty: float
    stop: float | None
    take_profit: float | None
    submitted: pd.Timestamp
    filled: float = 0.0
    last_fill_bar: pd.Timestamp | None = None
    working: bool = True  # the entry can still fill
    legs_active: bool = False  # the exits watch the bars (some of the entry has filled)

    @property
    def position_side(self) -> str:
        return "long" if self.side == "buy" else "short"

    @property
    def sort_key(self) -> tuple[pd.Timestamp, str]:
        """Submission order: orders on one ticker share a bar's volume cap in this order."""
        return self.signal_minute, self.trade_id


def _level(value: object) -> float | None:
    number = float(value) if value is not None and pd.notna(value) else float("nan")
    return number if np.isfinite(number) and number > 0 else None


def bracket_orders(signals: pd.DataFrame) -> list[BracketOrder]:
    """The orders the actionable `signals` submit, in submission order (minute, signal id)."""
    rows = actionable(signals)
    if rows.empty:
        return []
    rows = rows.sort_values(["minute", "signal_id"], kind="stable")
    return [
        BracketOrder(
            trade_id=str(row.signal_id),
            signal_minute=pd.Timestamp(row.minute),
            ticker=str(row.ticker),
            side="buy" if row.action == "BUY" else "sell",
            qty=float(row.qty),
            stop=_level(row.stop),
            take_profit=_level(row.take_profit),
            submitted=pd.Timestamp(row.minute) + ONE_MINUTE,
        )
        for row in rows.itertuples(index=False)
    ]


def _row(order: BracketOrder, fill: Fill, bar_start: pd.Timestamp) -> dict[str, object]:
    return fill_row(
        fill,
        minute=bar_start,
        strategy=STRATEGY,
        trade_id=order.trade_id,
        signal_minute=order.signal_minute,
        ticker=order.ticker,
        position_side=order.position_side,
    )


def session_last_minute(day: pd.Timestamp) -> pd.Timestamp | None:
    """The start of `day`'s last bar (None off-session): where every position is flattened."""
    bounds = session_bounds(day.date())
    return None if bounds is None else bounds[1] - ONE_MINUTE


def bar_fills(
    orders: list[BracketOrder], bar: Any, start: pd.Timestamp, model: FillModel
) -> list[dict[str, object]]:
    """One bar of one ticker (a row with open/high/low/close/volume starting at `start`) over
    that ticker's `orders` in submission order: bracket exits, then entries. Updates the orders;
    shared by the whole-session simulation and the incremental backtest book."""
    out: list[dict[str, object]] = []
    # 1. exits of filled brackets, on bars after their last entry fill
    for order in orders:
        if not order.legs_active or order.last_fill_bar is None:
            continue
        if order.last_fill_bar >= start:
            continue
        fill = model.bracket_exit(
            order.side, order.stop, order.take_profit, [bar], qty=order.filled
        )  # type: ignore[arg-type]
        if fill is None:
            continue
        out.append(_row(order, fill, start))
        order.legs_active = False
        order.working = False
    # 2. working entries share the bar's volume cap in submission order
    used = 0.0
    for order in orders:
        if not order.working or order.submitted > start:
            continue
        left = float(bar.volume) - used / model.max_volume_fraction
        fill = model.entry_fill(
            order.side,  # type: ignore[arg-type]
            order.qty - order.filled,
            {"open": bar.open, "volume": max(left, 0.0), "timestamp": start},
        )
        if fill is None:
            continue
        used += fill.qty
        out.append(_row(order, fill, start))
        order.filled += fill.qty
        order.last_fill_bar = start
        order.legs_active = True
        if order.filled >= order.qty - 1e-9:
            order.working = False
    return out


def flatten_fills(
    orders: list[BracketOrder], bar: Any, start: pd.Timestamp, model: FillModel
) -> list[dict[str, object]]:
    """The session's last bar (after its `bar_fills`): cancel every working entry and close
    every open position at the bar's close. Updates the orders."""
    out: list[dict[str, object]] = []
    for order in orders:
        order.working = False
        if order.legs_active:
            fill = model.close_fill(
                order.side, order.filled, {"close": bar.close, "timestamp": start}
            )  # type: ignore[arg-type]
            out.append(_row(order, fill, start))
            order.legs_active = False
    return out


def _simulate_day(
    orders: list[BracketOrder], bars: pd.DataFrame, model: FillModel, complete: bool
) -> list[dict[str, object]]:
    """One ticker's orders over its bars of one session (time-ordered)."""
    out: list[dict[str, object]] = []
    last_index = len(bars) - 1
    first_submit = min(o.submitted for o in orders)
    for index, bar in enumerate(bars.itertuples(index=False)):
        start = pd.Timestamp(bar.minute)
        if start < first_submit:
            continue
        out.extend(bar_fills(orders, bar, start, model))
        # 3. flat at the session's last bar
        if complete and index == last_index:
            out.extend(flatten_fills(orders, bar, start, model))
    return out


def simulate_fills(
    signals: pd.DataFrame,
    bars: pd.DataFrame,
    model: FillModel,
    *,
    horizon: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Every fill the actionable `signals` get over `bars` (BAR_COLUMNS), up to `horizon` (a
    bar start; default: the last bar), as `BACKTEST_FILL_COLUMNS` rows in time order."""
    orders = bracket_orders(signals)
    if not orders or bars.empty:
        return empty_frame(BACKTEST_FILL_COLUMNS)
    if horizon is not None:
        bars = bars[bars["minute"] <= horizon]
    end = bars["minute"].max() if horizon is None else horizon
    by_key: dict[tuple[str, pd.Timestamp], list[BracketOrder]] = {}
    for order in orders:
        by_key.setdefault((order.ticker, order.signal_minute.normalize()), []).append(order)
    wanted = {ticker for ticker, _ in by_key}
    subset = bars[bars["ticker"].isin(wanted)].sort_values(["ticker", "minute"], kind="stable")
    rows: list[dict[str, object]] = []
    for (ticker, day), day_bars in subset.groupby(
        [subset["ticker"], subset["minute"].dt.normalize()], sort=True
    ):
        day_orders = by_key.get((str(ticker), pd.Timestamp(day)))
        if not day_orders:
            continue
        last_minute = session_last_minute(pd.Timestamp(day))
        complete = last_minute is not None and end >= last_minute
        rows.extend(_simulate_day(day_orders, day_bars, model, complete))
    if not rows:
        return empty_frame(BACKTEST_FILL_COLUMNS)
    frame = pd.DataFrame(rows).sort_values(["minute", "ticker", "trade_id"], kind="stable")
    return conform(frame.reset_index(drop=True), BACKTEST_FILL_COLUMNS)


def session_signals(frames: Iterable[pd.DataFrame], day: pd.Timestamp) -> pd.DataFrame:
    """The signals of `day`'s session out of several frames (stored and just decided)."""
    parts = [f[f["minute"].dt.normalize() == day.normalize()] for f in frames if len(f)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
