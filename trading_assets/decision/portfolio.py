"""The portfolio the risk manager sees: fills (the broker's orders or our ledger) -> PortfolioState.

Pure functions, no Dagster, no HTTP. The daily-loss limit, the consecutive-loss breaker, the
trades-per-day limit and the open-position limits of `risk.py` all read the state built here.
Choices a reader should know:

* Times are naive America/New_York wall clock. A tz-aware fill time (or `as_of`) is converted
  on the way in, so every `at`, `opened_at` and `closed_at` here is naive New York.
* `closed_trades` walks the fills in time order (equal times keep their input order) with one
  signed position and an average entry price per symbol. A fill in the direction of the
  position (or from flat) adds at the weighted average; a fill against it closes
  min(fill qty, |position|) and yields a `ClosedTrade` for that quantity; what is left of the
  fill beyond flat opens the opposite position (a flip) at the fill price.
* pnl = (exit - average entry) x qty for a long, (average entry - exit) x qty for a short,
  minus the commissions attributable to the closed quantity: the closing fill's commission pro
  rata to the part of the fill that closed, and the position's opening commissions (those of
  every fill that opened or added to it, not yet attributed) pro rata to the part of the
  position closed. On a flip the rest of the fill's commission becomes the new position's
  opening commission. The average entry price itself excludes commission.
* `opened_at` is when the position left flat (its first opening fill), also for adds.
* `portfolio_state` counts only trades closed on `as_of`'s New York date at or before `as_of`,
  and ignores fills stamped after `as_of` (a fill at exactly `as_of` counts): the state for a
  decision must not see later fills. Pass every fill of the positions open today, including
  the opening fills of a position carried from an earlier day; a close without its opening
  fill would look like a new opening and its pnl would be lost. Earlier days' trades do not
  count today.
* consecutive_losses is the run of losses (pnl < 0) at the end of today's closed trades. A
  breakeven (pnl == 0 after commissions) is not a loss and, like a win, ends the run. Trades
  closed by one order (same symbol and non-empty order_id, e.g. a stop that filled in several
  executions) count as one outcome, with their pnl summed: a stop-out filled in three pieces is
  one loss, not three. Fills without an order_id each count on their own.
* last_loss_at is the closed_at of the most recent losing trade today (the cool-down clock of
  the breaker), whether or not the run of losses is still going.
* trades_today is the caller's count of entry orders today; exits are not trades for the
  per-day limit, so it is not derived from the fills.
* `positions_from_fills` returns whole-share positions (Position.qty is an int); a fractional
  remainder raises rather than being rounded away from the exposure the risk manager checks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from trading_assets.decision.risk import PortfolioState, Position, RiskLimits
from trading_assets.decision.trader import naive_ny

QTY_EPS = 1e-9  # quantities closer than this to zero are flat (float fills, partial closes)


class FillEvent(BaseModel):
    """One execution, from the broker's orders or from our ledger."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    side: Literal["buy", "sell"]
    qty: float = Field(gt=0, allow_inf_nan=False)
    price: float = Field(gt=0, allow_inf_nan=False)
    at: datetime = Field(description="when it filled; stored as naive New York")
    commission: float = Field(default=0.0, ge=0, allow_inf_nan=False)
    order_id: str = ""

    @field_validator("side", mode="before")
    @classmethod
    def _lower_side(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("at")
    @classmethod
    def _ny(cls, value: datetime) -> datetime:
        return naive_ny(value)


class ClosedTrade(BaseModel):
    """One position round trip, or the part of it that one fill closed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    direction: Literal["long", "short"]
    qty: float
    entry_price: float = Field(description="average entry price of the position (no commission)")
    exit_price: float
    opened_at: datetime
    closed_at: datetime
    pnl: float = Field(description="after the commissions attributable to this trade")
    commission: float = Field(default=0.0, description="the commissions taken off pnl")
    order_id: str = Field(default="", description="the closing fill's order id")

    @property
    def win(self) -> bool:
        return self.pnl > 0


@dataclass
class _Book:
    """One symbol's open position while walking the fills."""

    qty: float = 0.0  # signed: > 0 long, < 0 short
    avg: float = 0.0
    open_commission: float = 0.0  # opening commissions not yet attributed to a closed trade
    opened_at: datetime | None = None

    def flat(self) -> bool:
        return abs(self.qty) < QTY_EPS

    def reset(self) -> None:
        self.qty, self.avg, self.open_commission, self.opened_at = 0.0, 0.0, 0.0, None

    def add(self, signed: float, price: float, commission: float, at: datetime) -> None:
        if self.flat():
            self.reset()
            self.opened_at = at
        total = abs(self.qty) + abs(signed)
        self.avg = (self.avg * abs(self.qty) + price * abs(signed)) / total
        self.qty += signed
        self.open_commission += commission


def _point_in_time(fills: Iterable[FillEvent], as_of: datetime | None) -> list[FillEvent]:
    """The fills in time order (stable for equal times), without those after `as_of`."""
    ordered = sorted(fills, key=lambda f: f.at)  # sorted() is stable: input order breaks ties
    if as_of is None:
        return ordered
    cutoff = naive_ny(as_of)
    return [f for f in ordered if f.at <= cutoff]


def _walk(fills: Iterable[FillEvent]) -> tuple[list[ClosedTrade], dict[str, _Book]]:
    """Closed trades in closing order and the books left open, for fills already in time order."""
    books: dict[str, _Book] = {}
    trades: list[ClosedTrade] = []
    for fill in fills:
        book = books.setdefault(fill.symbol, _Book())
        signed = fill.qty if fill.side == "buy" else -fill.qty
        if book.flat() or (book.qty > 0) == (signed > 0):
            book.add(signed, fill.price, fill.commission, fill.at)
            continue
        held = abs(book.qty)
        closed = min(fill.qty, held)
        long = book.qty > 0
        gross = (fill.price - book.avg) * closed if long else (book.avg - fill.price) * closed
        open_part = book.open_commission * closed / held
        close_part = fill.commission * closed / fill.qty
        trades.append(
            ClosedTrade(
                symbol=fill.symbol,
                direction="long" if long else "short",
                qty=closed,
                entry_price=book.avg,
                exit_price=fill.price,
                opened_at=book.opened_at or fill.at,  # set when not flat
                closed_at=fill.at,
                pnl=gross - open_part - close_part,
                commission=open_part + close_part,
                order_id=fill.order_id,
            )
        )
        book.open_commission -= open_part
        book.qty += closed if not long else -closed
        if book.flat():
            book.reset()
        remainder = fill.qty - closed
        if remainder >= QTY_EPS:  # a flip: the rest of the fill opens the other side
            book.add(
                remainder if signed > 0 else -remainder,
                fill.price,
                fill.commission - close_part,
                fill.at,
            )
    return trades, books


def closed_trades(fills: Iterable[FillEvent]) -> list[ClosedTrade]:
    """Every (partial) round trip the fills close, ordered by closed_at (ties: fill order)."""
    trades, _ = _walk(_point_in_time(fills, None))
    return trades


def positions_from_fills(
    fills: Iterable[FillEvent],
    marks: Mapping[str, float] | None = None,
    *,
    as_of: datetime | None = None,
) -> list[Position]:
    """The positions the fills leave open (by ticker), for the ledger path where no broker is
    asked. avg_price is the average entry (no commission); mark comes from `marks` when it has
    a positive finite price for the symbol, else None (the risk manager then uses avg_price).
    With `as_of`, fills after it are ignored. Raises ValueError on a fractional share left."""
    _, books = _walk(_point_in_time(fills, as_of))
    out: list[Position] = []
    for symbol in sorted(books):
        book = books[symbol]
        if book.flat():
            continue
        qty = round(book.qty)
        if abs(book.qty - qty) > 1e-6:
            raise ValueError(
                f"{symbol}: the fills leave {book.qty} shares open; positions are whole shares"
            )
        mark = (marks or {}).get(symbol)
        good = mark is not None and math.isfinite(mark) and mark > 0
        out.append(
            Position(ticker=symbol, qty=qty, avg_price=book.avg, mark=mark if good else None)
        )
    return out


def _outcomes(trades: Sequence[ClosedTrade]) -> list[tuple[float, datetime]]:
    """(pnl, closed_at) per outcome for the loss streak, in closing order: the trades of one
    closing order (same symbol, non-empty order_id) are one outcome, placed (and timed) where
    its last piece closed."""
    groups: dict[object, list[float]] = {}
    last: dict[object, int] = {}
    for i, trade in enumerate(trades):
        key: object = (trade.symbol, trade.order_id) if trade.order_id else i
        groups.setdefault(key, []).append(trade.pnl)
        last[key] = i
    return [
        (sum(groups[key]), trades[last[key]].closed_at)
        for key in sorted(groups, key=last.__getitem__)
    ]


def breaker_trips(
    outcomes: Sequence[tuple[float, datetime]], base: float, limits: RiskLimits
) -> tuple[datetime | None, str]:
    """When the circuit breaker last tripped today and why: the losing outcome that made the
    loss streak reach its limit, or took the day's realised loss to its limit (`base` is the
    day-start equity). A later win ends the streak but not a cool-down already running."""
    tripped: datetime | None = None
    cause = ""
    streak, realised = 0, 0.0
    for pnl, at in outcomes:
        realised += pnl
        streak = streak + 1 if pnl < 0 else 0
        if pnl >= 0:
            continue
        if streak >= limits.max_consecutive_losses:
            tripped, cause = at, f"{streak} consecutive losses"
        elif base > 0 and -realised / base >= limits.max_daily_loss_pct:
            tripped, cause = at, f"daily loss {-realised:,.2f} ({-realised / base:.2%})"
    return tripped, cause


def portfolio_state(
    *,
    equity: float,
    cash: float,
    positions: Sequence[Position],
    fills_today: Iterable[FillEvent],
    entries_today: int,
    as_of: datetime,
    day_start_equity: float | None = None,
    kill_switch: bool = False,
    limits: RiskLimits | None = None,
) -> PortfolioState:
    """The risk manager's view of the account at `as_of` (naive New York or tz-aware).

    realised_pnl_today, consecutive_losses and last_loss_at come from the trades the fills close
    on as_of's New York date at or before as_of (see the module docs); fills after as_of are
    ignored. equity, cash, positions, day_start_equity and kill_switch are passed through;
    trades_today is `entries_today`. With `limits`, the time the circuit breaker last tripped
    is recorded too, so its cool-down runs its full length even if a later trade wins."""
    now = naive_ny(as_of)
    trades, _ = _walk(_point_in_time(fills_today, now))
    today = [t for t in trades if t.closed_at.date() == now.date() and t.closed_at <= now]
    outcomes = _outcomes(today)
    streak = 0
    for pnl, _ in reversed(outcomes):
        if pnl >= 0:
            break
        streak += 1
    losses = [t for t in today if t.pnl < 0]
    realised = sum(t.pnl for t in today)
    base = day_start_equity if day_start_equity is not None else equity - realised
    tripped, cause = breaker_trips(outcomes, base, limits) if limits else (None, "")
    return PortfolioState(
        equity=equity,
        cash=cash,
        positions=list(positions),
        trades_today=entries_today,
        realised_pnl_today=realised,
        consecutive_losses=streak,
        last_loss_at=losses[-1].closed_at if losses else None,
        kill_switch=kill_switch,
        day_start_equity=day_start_equity,
        breaker_tripped_at=tripped,
        breaker_cause=cause,
    )
