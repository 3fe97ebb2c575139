"""The backtest book of a backfill: one per session, advanced minute by minute.

`state_from_backtest` re-simulates a session's earlier signals over all of its bars so far, for
every decided minute: the cost of a minute grows with the session, and a session's with its
square. A `BacktestBook` keeps the simulation's orders and fills between minutes instead. Moving
it to a minute reads only the bars it has not read yet, through the rules `simulate_fills`
applies (`bar_fills`: entries at the next bar's open under the shared volume cap, bracket
exits; `flatten_fills` at the session's last bar), and the minute's new signals are added as
orders once decided. Its state is `state_from_backtest`'s at every minute, to the bit (the unit
tests compare them), at a cost per minute of the new bars and the fills so far.

`backtest_signals` is a backfill's decision loop on these books, with no Dagster in it.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS
from trading_assets.backtest.simulate import (
    BracketOrder,
    bar_fills,
    bracket_orders,
    flatten_fills,
    session_last_minute,
    session_signals,
)
from trading_assets.decision.portfolio import FillEvent
from trading_assets.decision.risk import PortfolioState, RiskLimits
from trading_assets.decision.signals import ACTIONS, minute_signals, signal_frame
from trading_assets.decision.sources import backtest_state, fill_events
from trading_assets.decision.trader import Proposal
from trading_assets.execution.fills import FillModel
from trading_assets.partitions import session_bounds
from trading_assets.schemas import conform, empty_frame

# A fill's place in `simulate_fills`' frame: (minute, ticker, trade id), ties in the order the
# simulation made them (one ticker's fills are made in time order, so a counter does).
_FillKey = tuple[pd.Timestamp, str, str, int]


class BacktestBook:
    """One session's backtest book: its signals' orders filled over its bars up to a horizon.

    `add_signals` takes signals decided at or after the horizon (their entries are submitted a
    minute later, so no bar already read could have filled them); `state_at` moves the horizon
    forward and returns the risk manager's state at that minute's close. No bar after the
    horizon is read.
    """

    def __init__(
        self,
        bars: pd.DataFrame,
        day: pd.Timestamp,
        equity: float,
        model: FillModel | None = None,
    ) -> None:
        self.day = pd.Timestamp(day).normalize()
        self.equity = equity
        self._model = model or FillModel()
        self._last_minute = session_last_minute(self.day)
        session = bars[bars["minute"].dt.normalize() == self.day]
        # Bars grouped by start, in time order; one ticker's keep their order within a start.
        self._starts: list[pd.Timestamp] = []
        self._bars: list[list[Any]] = []
        for bar in session.sort_values("minute", kind="stable").itertuples(index=False):
            start = pd.Timestamp(bar.minute)
            if not self._starts or self._starts[-1] != start:
                self._starts.append(start)
                self._bars.append([])
            self._bars[-1].append(bar)
        self._read = 0  # bar starts read so far
        self.horizon: pd.Timestamp | None = None
        self._orders: dict[str, list[BracketOrder]] = {}  # by ticker, in submission order
        self._entries = 0
        self._last_bar: dict[str, tuple[pd.Timestamp, Any]] = {}  # each ticker's latest bar
        self._marks: dict[str, float] = {}  # each ticker's last close (NaN if none was valid)
        self._fills: list[tuple[_FillKey, dict[str, object]]] = []  # in the frame's order
        self._seq = itertools.count()
        self._events: tuple[int, list[FillEvent], float] | None = None  # (fills, events, cash)

    def add_signals(self, signals: pd.DataFrame) -> None:
        """Submit the actionable `signals` (this session's, decided at or after the horizon)."""
        for order in bracket_orders(signals):
            if order.signal_minute.normalize() != self.day:
                raise ValueError(f"signal {order.trade_id} is not of the {self.day:%Y-%m-%d} book")
            if self.horizon is not None and order.signal_minute < self.horizon:
                raise ValueError(
                    f"signal {order.trade_id} of {order.signal_minute} is earlier than the "
                    f"book's horizon {self.horizon}: bars it could have filled on are read"
                )
            # after the equal keys: the re-simulation's sort is stable (earlier adds first)
            bisect.insort_right(
                self._orders.setdefault(order.ticker, []), order, key=lambda o: o.sort_key
            )
            self._entries += 1

    def advance(self, minute: pd.Timestamp) -> None:
        """Read the bars up to `minute` (a bar start) that were not read yet."""
        if self.horizon is not None and minute < self.horizon:
            raise ValueError(f"the book is at {self.horizon}; it cannot go back to {minute}")
        while self._read < len(self._starts) and self._starts[self._read] <= minute:
            start = self._starts[self._read]
            for bar in self._bars[self._read]:
                ticker = str(bar.ticker)
                self._last_bar[ticker] = (start, bar)
                close = float(bar.close)
                if not math.isnan(close) or ticker not in self._marks:
                    self._marks[ticker] = close
                orders = self._orders.get(ticker)
                if orders:
                    self._record(self._fills, bar_fills(orders, bar, start, self._model))
            self._read += 1
        self.horizon = minute

    def state_at(
        self, minute: pd.Timestamp, kill_switch: bool, limits: RiskLimits | None = None
    ) -> PortfolioState:
        """The book at the close of `minute`, as `state_from_backtest` gives it."""
        self.advance(minute)
        events, cash = self._events_and_cash()
        return backtest_state(
            events,
            self._marks,
            cash,
            self._entries,
            minute,
            self.equity,
            kill_switch,
            limits,
        )

    def fills(self) -> pd.DataFrame:
        """The fills up to the horizon, as `simulate_fills` gives them (BACKTEST_FILL_COLUMNS)."""
        rows = self._rows()
        if not rows:
            return empty_frame(BACKTEST_FILL_COLUMNS)
        return conform(pd.DataFrame(rows), BACKTEST_FILL_COLUMNS)

    def _events_and_cash(self) -> tuple[list[FillEvent], float]:
        """The fill events and the cash so far; rebuilt only when a fill was added (fills are
        only ever added, so their count tells) or the session's close is in the rows."""
        closing = self._closing()
        if not closing and self._events is not None and self._events[0] == len(self._fills):
            return self._events[1], self._events[2]
        rows = [row for _, row in sorted([*self._fills, *closing], key=lambda item: item[0])]
        cash = self.equity + float(np.sum([row["cash_delta"] for row in rows]))
        events = fill_events(rows)
        if not closing:
            self._events = (len(self._fills), events, cash)
        return events, cash

    def _record(
        self, into: list[tuple[_FillKey, dict[str, object]]], rows: Sequence[dict[str, object]]
    ) -> None:
        for row in rows:
            key = (row["minute"], row["ticker"], row["trade_id"], next(self._seq))
            bisect.insort_right(into, (key, row), key=lambda item: item[0])

    def _rows(self) -> list[dict[str, object]]:
        """The fills up to the horizon in the frame's order."""
        return [row for _, row in sorted([*self._fills, *self._closing()], key=lambda i: i[0])]

    def _closing(self) -> list[tuple[_FillKey, dict[str, object]]]:
        """Once the horizon has reached the session's last minute: every open position closed
        at its ticker's last bar. Worked out on copies of the orders, so that the close would
        move to a later bar, were one read."""
        if self._last_minute is None or self.horizon is None or self.horizon < self._last_minute:
            return []
        out: list[tuple[_FillKey, dict[str, object]]] = []
        for ticker, orders in self._orders.items():
            if ticker in self._last_bar:
                start, bar = self._last_bar[ticker]
                copies = [dataclasses.replace(order) for order in orders]
                self._record(out, flatten_fills(copies, bar, start, self._model))
        return out


def backtest_signals(
    proposals: Mapping[pd.Timestamp, list[Proposal]],
    stored: pd.DataFrame,
    bars: pd.DataFrame,
    *,
    limits: RiskLimits,
    sectors: Mapping[str, str],
    equity: float,
    kill_switch: bool,
    model: FillModel | None = None,
) -> list[pd.DataFrame]:
    """A backfill's signal frames, one per minute with proposals, in minute order: each
    minute's proposals reviewed against the book its session's earlier signals have built by
    the minute's close. Those are the `stored` ones (decided by earlier runs) and this run's
    own; each session starts flat from `equity`. `bars` must hold every bar of the sessions
    decided (later bars are never read). Raises ValueError for a minute outside any session.
    """
    frames: list[pd.DataFrame] = []
    book: BacktestBook | None = None
    bars_by_day = dict(tuple(bars.groupby(bars["minute"].dt.normalize()))) if proposals else {}
    for minute, batch in sorted(proposals.items()):
        bounds = session_bounds(minute.date())
        if bounds is None:
            raise ValueError(f"{minute} is not in an NYSE session")
        day = minute.normalize()
        if book is None or book.day != day:
            book = BacktestBook(bars_by_day.get(day, bars.iloc[:0]), day, equity, model)
            book.add_signals(session_signals([stored], day))
        state = book.state_at(minute, kill_switch, limits)
        signals = minute_signals(batch, state, limits, sectors, minute, bounds[1])
        frames.append(signal_frame(signals, state, "backtest"))
        if any(s.action in ACTIONS and s.qty > 0 for s in signals):  # else no order to add
            book.add_signals(frames[-1])
    return frames
