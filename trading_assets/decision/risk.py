"""The risk manager: validates, sizes and gates the trader's proposals into trade signals.

Pure functions over pydantic models; the portfolio state comes from the order ledger (paper,
backtest) or the broker (live), the wiring builds it. Choices a reader should know:

* Stop: "the less aggressive of 1.5 x ATR and 0.5 % below entry" is read as the stop FURTHER
  from entry, i.e. distance = max(1.5 x ATR, 0.5 % x entry). The 1-minute ATR of a liquid name
  is a few hundredths of a percent, so 0.5 % acts as a floor that keeps the stop out of the
  bar-to-bar noise; a volatile minute widens it. Without an ATR the 0.5 % alone is used.
  Take-profit sits reward_risk (2) x that distance on the other side. Prices are rounded to the
  tick: the stop away from entry (never tighter than computed), the target from the rounded
  stop, so reward/risk stays 2:1 within a tick.
* Size: qty = floor(equity x 2 % / entry), the per-position cap (a requested qty above it is
  cut). It is then cut to fit the room left under the total (10 %) and sector (5 %) gross
  exposure limits, cash (buys only; short proceeds are not counted as cash) and the order
  quantity maximum. Each cut is a reason with its numbers; status "resized". Below 1 share:
  "rejected". "approved" means the standard (or requested) size went through uncut.
* Exposure is gross: |qty| x mark (or the average price when the state has no mark). A ticker
  without a known sector goes to one shared "unknown" bucket (conservative). SPY and QQQ share
  the "ETF" bucket of the universe file.
* Adding to a position in the same direction is allowed up to the per-position cap and does not
  count as a new open position; an entry against an open position is rejected (exits are the
  bracket's stop / take-profit, a flip is not a risk manager's call).
* Circuit breaker: realised loss today >= 2 % of day-start equity, or >= 3 consecutive losses,
  blocks new entries while minute < last_loss_at + 60 min. After the cool-down entries resume;
  a further loss restarts it. If the time of the loss is unknown the breaker holds (fail closed),
  and so does a realised P&L (or, with a loss, a day-start equity) that is not a number or <= 0.
  A trip recorded in the state (`breaker_tripped_at`) blocks for its full cool-down even when a
  position still open at the trip closes with a win meanwhile (the streak ends, the pause not).
* Cut-off: minutes_to_close is counted from the end of the signal's bar (when its order can
  first fill) to the session close; entries need minutes_to_close > no_entry_minutes_before_close.
  With a 16:00 close and 15 minutes, the 15:43 bar is the last that may open a position.
* A rejected signal has action HOLD and qty 0 (so nothing downstream can execute it), and keeps
  the proposed side in `proposed_action` and its stable `signal_id`.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from trading_assets.decision.trader import Proposal, iso_minute, naive_ny

TICKER_RE = re.compile(r"^[A-Z]{1,5}(\.[A-Z])?$")
MIN_QTY = 1
MAX_QTY = 10_000
UNKNOWN_SECTOR = "unknown"
SIGNAL_PREFIX = "sig-"  # every signal id (= client order id) starts with it


class RiskLimits(BaseModel):
    """The configurable limits (defaults from issue 4); fractions, not percents."""

    model_config = ConfigDict(extra="forbid")

    max_position_pct: float = Field(default=0.02, gt=0, le=1)
    max_total_exposure_pct: float = Field(default=0.10, gt=0)
    max_sector_exposure_pct: float = Field(default=0.05, gt=0)
    atr_stop_multiple: float = Field(default=1.5, gt=0)
    min_stop_pct: float = Field(default=0.005, gt=0, lt=1)
    reward_risk: float = Field(default=2.0, gt=0)
    max_trades_per_day: int = Field(default=10, ge=0)
    max_open_positions: int = Field(default=5, ge=0)
    max_daily_loss_pct: float = Field(default=0.02, gt=0)
    max_consecutive_losses: int = Field(default=3, ge=1)
    cooldown_minutes: int = Field(default=60, ge=0)
    no_entry_minutes_before_close: int = Field(default=15, ge=0)
    price_tick: float = Field(default=0.01, ge=0, description="0 = no rounding")


class Position(BaseModel):
    """One open position: qty > 0 long, < 0 short."""

    model_config = ConfigDict(extra="forbid")

    ticker: str
    qty: int
    avg_price: float = Field(gt=0)
    sector: str | None = Field(default=None, description="None: looked up in sector_of")
    mark: float | None = Field(default=None, gt=0, description="last price; else avg_price")

    @property
    def value(self) -> float:
        """Gross exposure in currency."""
        return abs(self.qty) * (self.mark if self.mark is not None else self.avg_price)


class PortfolioState(BaseModel):
    """What the risk manager needs to know about the account right now."""

    model_config = ConfigDict(extra="forbid")

    equity: float
    cash: float
    positions: list[Position] = Field(default_factory=list)
    trades_today: int = 0
    realised_pnl_today: float = 0.0
    consecutive_losses: int = 0
    last_loss_at: datetime | None = None
    kill_switch: bool = False
    day_start_equity: float | None = Field(
        default=None, description="base of the daily-loss limit; else equity - realised today"
    )
    breaker_tripped_at: datetime | None = Field(
        default=None, description="when the breaker last tripped today (its cool-down start)"
    )
    breaker_cause: str = ""

    def position(self, ticker: str) -> Position | None:
        return next((p for p in self.positions if p.ticker == ticker and p.qty != 0), None)


class Signal(BaseModel):
    """The risk manager's answer for one proposal. Lenient types on purpose: `validate` holds
    the rules, so it can be run on any signal (including one read back from storage)."""

    model_config = ConfigDict(extra="forbid")

    signal_id: str
    ticker: str
    minute: str
    action: Literal["BUY", "SELL", "HOLD"]
    proposed_action: Literal["BUY", "SELL"]
    qty: int
    entry: float
    stop: float
    take_profit: float
    confidence: float
    status: Literal["approved", "resized", "rejected"]
    reasons: list[str] = Field(default_factory=list)
    sector: str = UNKNOWN_SECTOR
    horizon_minutes: int = 0
    model: str = ""
    rationale: str = ""


def signal_id(ticker: str, minute: object, side: str, model: str) -> str:
    """Stable id (the broker's client order id): a re-run of the same minute gives the same id,
    so the execution op can find an order it already sent."""
    key = f"{ticker}|{iso_minute(minute)}|{side.lower()}|{model}"
    return SIGNAL_PREFIX + hashlib.sha256(key.encode()).hexdigest()[:24]


def minutes_to_close(minute: datetime, session_close: datetime) -> int:
    """Whole minutes from the end of bar `minute` (its first possible fill) to the close."""
    return int((session_close - (minute + timedelta(minutes=1))) // timedelta(minutes=1))


# --- stop / target ---------------------------------------------------------------------------


def _round_tick(price: float, tick: float, direction: Literal["down", "up", "nearest"]) -> float:
    if tick <= 0 or not math.isfinite(price):
        return price
    steps = price / tick
    if direction == "down":
        n = math.floor(steps + 1e-9)
    elif direction == "up":
        n = math.ceil(steps - 1e-9)
    else:
        n = round(steps)
    return round(n * tick, 10)


def stop_distance(entry: float, atr: float | None, limits: RiskLimits) -> float:
    """max(atr_stop_multiple x ATR, min_stop_pct x entry): the less aggressive (wider) stop."""
    pct = limits.min_stop_pct * entry
    if atr is None or not math.isfinite(atr) or atr <= 0:
        return pct
    return max(limits.atr_stop_multiple * atr, pct)


def stop_and_target(
    side: str, entry: float, atr: float | None, limits: RiskLimits
) -> tuple[float, float]:
    """(stop, take_profit) for a long ("buy") or short ("sell") entry; see module docs."""
    side = side.lower()
    if side not in ("buy", "sell"):
        raise ValueError(f"side must be buy or sell, got {side!r}")
    if not math.isfinite(entry) or entry <= 0:
        return math.nan, math.nan
    dist = stop_distance(entry, atr, limits)
    tick = limits.price_tick
    if side == "buy":
        stop = _round_tick(entry - dist, tick, "down")
        target = _round_tick(entry + limits.reward_risk * (entry - stop), tick, "nearest")
    else:
        stop = _round_tick(entry + dist, tick, "up")
        target = _round_tick(entry - limits.reward_risk * (stop - entry), tick, "nearest")
    return stop, target


# --- validation ------------------------------------------------------------------------------


def _bad_number(x: float) -> bool:
    return isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x)


def _ticker_problems(ticker: str) -> list[str]:
    ok = isinstance(ticker, str) and TICKER_RE.match(ticker)
    return [] if ok else [f"ticker {ticker!r} does not match {TICKER_RE.pattern}"]


def _confidence_problems(confidence: float) -> list[str]:
    if _bad_number(confidence) or not 0.0 <= confidence <= 1.0:
        return [f"confidence must be in [0, 1], got {confidence}"]
    return []


def _price_problems(action: str, entry: float, stop: float, take_profit: float) -> list[str]:
    if _bad_number(entry) or entry <= 0:  # stop and target derive from it: one reason is enough
        return [f"entry must be a positive price, got {entry}"]
    named = {"stop": stop, "take-profit": take_profit}
    bad = [
        f"{n} must be a positive price, got {x}"
        for n, x in named.items()
        if _bad_number(x) or x <= 0
    ]
    if bad:
        return bad
    if action == "BUY" and not stop < entry < take_profit:
        return [
            f"a buy needs stop < entry < take-profit, got stop {stop:.4f}, "
            f"entry {entry:.4f}, take-profit {take_profit:.4f}"
        ]
    if action == "SELL" and not take_profit < entry < stop:
        return [
            f"a sell needs take-profit < entry < stop, got take-profit {take_profit:.4f}, "
            f"entry {entry:.4f}, stop {stop:.4f}"
        ]
    return []


def validate(signal: Signal) -> list[str]:
    """Every rule a BUY/SELL signal breaks (empty = valid): ticker format, quantity in
    1..10000, positive prices, stop < entry < take-profit for a buy (mirrored for a sell),
    confidence in [0, 1]. A HOLD orders nothing, so only its ticker and confidence count."""
    problems = _ticker_problems(signal.ticker)
    if signal.action != "HOLD":
        problems += _price_problems(signal.action, signal.entry, signal.stop, signal.take_profit)
        if isinstance(signal.qty, bool) or not MIN_QTY <= signal.qty <= MAX_QTY:
            problems.append(f"quantity must be in {MIN_QTY}..{MAX_QTY}, got {signal.qty}")
    return problems + _confidence_problems(signal.confidence)


# --- gates -----------------------------------------------------------------------------------


def _money(x: float) -> str:
    return f"{x:,.2f}"


def _pct(x: float) -> str:
    return f"{x * 100:.1f}%"


def circuit_breaker(state: PortfolioState, limits: RiskLimits, minute: datetime) -> str | None:
    """Why new entries are blocked by the breaker at `minute`, or None."""
    base = (
        state.day_start_equity
        if state.day_start_equity is not None
        else state.equity - state.realised_pnl_today
    )
    causes: list[str] = []
    pnl = state.realised_pnl_today
    if not math.isfinite(pnl) or (pnl < 0 and not math.isfinite(base)):
        # A P&L or base that is not a number cannot be held against the limit: fail closed.
        return (
            f"circuit breaker: realised P&L today {pnl} or day-start equity {base} is not a "
            "number, so the daily loss limit cannot be evaluated and it holds"
        )
    if pnl < 0 and base <= 0:
        return (
            f"circuit breaker: a realised loss today ({_money(-pnl)}) against a day-start equity "
            f"of {_money(base)}: the daily loss limit cannot be evaluated, so it holds"
        )
    if state.realised_pnl_today < 0 and base > 0:
        loss = -state.realised_pnl_today / base
        if loss >= limits.max_daily_loss_pct:
            causes.append(
                f"realised loss today {_money(-state.realised_pnl_today)} is {loss * 100:.2f}% "
                f"of day-start equity {_money(base)} (limit {_pct(limits.max_daily_loss_pct)})"
            )
    if state.consecutive_losses >= limits.max_consecutive_losses:
        causes.append(
            f"{state.consecutive_losses} consecutive losses (limit {limits.max_consecutive_losses})"
        )
    if not causes:
        return _cooling_down(state, limits, minute)
    if state.last_loss_at is None:
        return f"circuit breaker: {'; '.join(causes)}; time of the last loss unknown, so it holds"
    return _cool_down("; ".join(causes), "the loss", state.last_loss_at, limits, minute)


def _cooling_down(state: PortfolioState, limits: RiskLimits, minute: datetime) -> str | None:
    """A trip earlier today still blocks until its cool-down ends, even after a later win."""
    if state.breaker_tripped_at is None:
        return None
    what = f"tripped by {state.breaker_cause or 'the loss limits'}"
    return _cool_down(what, "the trip", state.breaker_tripped_at, limits, minute)


def _cool_down(
    what: str, event: str, since: datetime, limits: RiskLimits, minute: datetime
) -> str | None:
    start = naive_ny(since)
    until = start + timedelta(minutes=limits.cooldown_minutes)
    if naive_ny(minute) >= until:
        return None
    return (
        f"circuit breaker: {what}; {limits.cooldown_minutes}-minute cool-down after {event} at "
        f"{start.isoformat(timespec='minutes')} runs until {until.isoformat(timespec='minutes')}"
    )


def _gates(
    proposal: Proposal,
    state: PortfolioState,
    limits: RiskLimits,
    minute: datetime,
    minutes_left: int,
) -> list[str]:
    """Reasons that block any new entry, whatever its size."""
    reasons: list[str] = []
    if state.kill_switch:
        reasons.append("kill switch is on: no new entries")
    breaker = circuit_breaker(state, limits, minute)
    if breaker:
        reasons.append(breaker)
    cutoff = limits.no_entry_minutes_before_close
    if minutes_left <= cutoff:
        reasons.append(
            f"session cut-off: {minutes_left} minutes to the close, no new entries in the last "
            f"{cutoff}"
        )
    if state.trades_today >= limits.max_trades_per_day:
        reasons.append(
            f"max trades per day: {state.trades_today} of {limits.max_trades_per_day} used"
        )
    held = state.position(proposal.ticker)
    open_tickers = sorted({p.ticker for p in state.positions if p.qty != 0})
    if held is None and len(open_tickers) >= limits.max_open_positions:
        reasons.append(
            f"max open positions: {len(open_tickers)} of {limits.max_open_positions} open "
            f"({', '.join(open_tickers)}), {proposal.ticker} would be a new one"
        )
    if held is not None and (held.qty > 0) != (proposal.side == "buy"):
        reasons.append(
            f"opposite position: holding {held.qty:+d} {proposal.ticker}; a {proposal.side} "
            "entry would not close or flip it here (exits are the bracket's stop/take-profit)"
        )
    if not math.isfinite(state.equity) or state.equity <= 0:
        reasons.append(f"equity must be positive, got {state.equity}")
    if not math.isfinite(state.cash):
        reasons.append(f"cash must be a finite number, got {state.cash}")
    return reasons


# --- sizing ----------------------------------------------------------------------------------


def _sector(ticker: str, sector_of: Mapping[str, str], position: Position | None = None) -> str:
    if position is not None and position.sector:
        return position.sector
    return sector_of.get(ticker) or UNKNOWN_SECTOR


def size(
    proposal: Proposal,
    state: PortfolioState,
    limits: RiskLimits,
    sector_of: Mapping[str, str],
) -> tuple[int, list[str]]:
    """(qty, reasons it is below what was asked). Asked = the requested qty or the per-position
    cap floor(equity x max_position_pct / entry); each limit that cuts it adds a reason."""
    entry, ticker = proposal.entry, proposal.ticker
    equity = state.equity
    reasons: list[str] = []
    cap_value = equity * limits.max_position_pct
    cap = math.floor(cap_value / entry)
    asked = proposal.qty if proposal.qty is not None else cap
    qty = asked

    def cut(room: int, why: str) -> None:
        nonlocal qty
        room = max(room, 0)
        if qty > room:
            reasons.append(f"{why} -> {room} shares at {entry:.2f} (was {qty})")
            qty = room

    held = state.position(ticker)
    held_value = held.value if held is not None else 0.0
    room = math.floor(max(cap_value - held_value, 0.0) / entry)
    if held is not None:
        cut(
            room,
            f"per-position limit: {_pct(limits.max_position_pct)} of equity {_money(equity)} is "
            f"{_money(cap_value)}; already holding {held.qty:+d} {ticker} ({_money(held_value)})",
        )
    else:
        cut(
            room,
            f"per-position limit: {_pct(limits.max_position_pct)} of equity {_money(equity)} is "
            f"{_money(cap_value)}",
        )

    gross = sum(p.value for p in state.positions if p.qty != 0)
    total_cap = equity * limits.max_total_exposure_pct
    cut(
        math.floor(max(total_cap - gross, 0.0) / entry),
        f"total exposure limit: {_pct(limits.max_total_exposure_pct)} of equity is "
        f"{_money(total_cap)}; open {_money(gross)}, room {_money(max(total_cap - gross, 0.0))}",
    )

    sector = _sector(ticker, sector_of, held)
    in_sector = sum(
        p.value for p in state.positions if p.qty != 0 and _sector(p.ticker, sector_of, p) == sector
    )
    sector_cap = equity * limits.max_sector_exposure_pct
    cut(
        math.floor(max(sector_cap - in_sector, 0.0) / entry),
        f"sector limit ({sector}): {_pct(limits.max_sector_exposure_pct)} of equity is "
        f"{_money(sector_cap)}; open {_money(in_sector)}, "
        f"room {_money(max(sector_cap - in_sector, 0.0))}",
    )

    if proposal.side == "buy":
        cut(math.floor(max(state.cash, 0.0) / entry), f"cash: {_money(state.cash)} available")
    cut(MAX_QTY, f"max order quantity {MAX_QTY}")
    return qty, reasons


# --- review ----------------------------------------------------------------------------------


def review(
    proposal: Proposal,
    state: PortfolioState,
    limits: RiskLimits,
    sector_of: Mapping[str, str],
    minute: datetime,
    minutes_to_close: int,
) -> Signal:
    """Gate, validate and size one proposal against the portfolio at decision time `minute`
    (naive New York or tz-aware; normally the proposal's partition minute)."""
    stop, target = stop_and_target(proposal.side, proposal.entry, proposal.atr, limits)
    held = state.position(proposal.ticker)
    base = {
        "signal_id": signal_id(proposal.ticker, proposal.minute, proposal.side, proposal.model),
        "ticker": proposal.ticker,
        "minute": proposal.minute,
        "proposed_action": proposal.action,
        "entry": proposal.entry,
        "stop": stop,
        "take_profit": target,
        "confidence": proposal.confidence,
        "sector": _sector(proposal.ticker, sector_of, held),
        "horizon_minutes": proposal.horizon_minutes,
        "model": proposal.model,
        "rationale": proposal.rationale,
    }

    def rejected(reasons: list[str]) -> Signal:
        return Signal(**base, action="HOLD", qty=0, status="rejected", reasons=reasons)

    problems = [
        *_ticker_problems(proposal.ticker),
        *_price_problems(proposal.action, proposal.entry, stop, target),
        *_confidence_problems(proposal.confidence),
    ]
    if proposal.qty is not None and not MIN_QTY <= proposal.qty <= MAX_QTY:
        problems.append(f"requested quantity must be in {MIN_QTY}..{MAX_QTY}, got {proposal.qty}")
    gates = _gates(proposal, state, limits, minute, minutes_to_close)
    if problems or gates:
        return rejected(gates + problems)

    qty, reasons = size(proposal, state, limits, sector_of)
    if qty < MIN_QTY:
        return rejected([*reasons, f"size {qty} shares: nothing left to trade"])
    signal = Signal(
        **base,
        action=proposal.action,
        qty=qty,
        status="resized" if reasons else "approved",
        reasons=reasons,
    )
    problems = validate(signal)  # the safety net: sizing above should never break a rule
    return rejected(reasons + problems) if problems else signal


def apply_fill(
    state: PortfolioState, signal: Signal, sector_of: Mapping[str, str]
) -> PortfolioState:
    """A copy of `state` as if `signal` had filled at its entry (the batch's working state)."""
    if signal.action == "HOLD" or signal.qty <= 0:
        return state
    signed = signal.qty if signal.action == "BUY" else -signal.qty
    positions = [p.model_copy() for p in state.positions]
    held = next((p for p in positions if p.ticker == signal.ticker and p.qty != 0), None)
    if held is None:
        positions.append(
            Position(
                ticker=signal.ticker,
                qty=signed,
                avg_price=signal.entry,
                sector=_sector(signal.ticker, sector_of),
                mark=signal.entry,
            )
        )
    else:  # same direction (review rejects the opposite one)
        total = held.qty + signed
        held.avg_price = (held.avg_price * held.qty + signal.entry * signed) / total
        held.qty = total
        held.mark = signal.entry
    cash = state.cash - signal.qty * signal.entry if signal.action == "BUY" else state.cash
    return state.model_copy(
        update={"positions": positions, "cash": cash, "trades_today": state.trades_today + 1}
    )


def review_batch(
    proposals: Iterable[Proposal],
    state: PortfolioState,
    limits: RiskLimits,
    sector_of: Mapping[str, str],
    minute: datetime,
    minutes_to_close: int,
) -> list[Signal]:
    """Review one minute's proposals, highest confidence first (ties: ticker, side), against a
    working copy of the state that each approval updates, so approvals in the same minute
    cannot together break a limit. Returns the signals in that processing order. A second
    proposal with the same signal id is rejected as a duplicate."""
    ordered = sorted(proposals, key=lambda p: (-p.confidence, p.ticker, p.side, p.minute))
    working = state
    seen: set[str] = set()
    out: list[Signal] = []
    for proposal in ordered:
        signal = review(proposal, working, limits, sector_of, minute, minutes_to_close)
        if signal.signal_id in seen:
            signal = signal.model_copy(
                update={
                    "action": "HOLD",
                    "qty": 0,
                    "status": "rejected",
                    "reasons": [f"duplicate proposal: signal {signal.signal_id} already reviewed"],
                }
            )
        seen.add(signal.signal_id)
        working = apply_fill(working, signal, sector_of)
        out.append(signal)
    return out
