"""The risk manager never exceeds a limit, whatever the proposals, the book and the limits.

Property-based (hypothesis): proposals on real closes and real 1-minute ranges from the bundled
bars, mixed with broken numbers (NaN, 0, negative, infinite, huge), books that are flat, full,
over their limits or in a losing streak, and any valid `RiskLimits`. Every limit the module
docstring of `trading_assets.decision.risk` promises is re-computed here independently and
asserted for every signal that could become an order.
"""

import csv
import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pandas as pd
from hypothesis import given, settings, target
from hypothesis import strategies as st

from tests.real_bars import bundled_bars
from trading_assets.decision.risk import (
    MAX_QTY,
    MIN_QTY,
    TICKER_RE,
    UNKNOWN_SECTOR,
    PortfolioState,
    Position,
    RiskLimits,
    Signal,
    circuit_breaker,
    review,
    review_batch,
)
from trading_assets.decision.signals import minute_signals, signal_frame
from trading_assets.decision.trader import Proposal

MINUTE = datetime(2026, 3, 23, 11, 15)  # a real session minute of the bundled data
CLOSE = datetime(2026, 3, 23, 16, 0)
NAN, INF = math.nan, math.inf
EPS = 1e-9  # float slack on money comparisons (relative)


def _real_market() -> tuple[dict[str, float], dict[str, float]]:
    """Each ticker's real close at MINUTE and its mean high-low range over the 14 bars before."""
    bars = bundled_bars()
    window = bars[(bars["minute"] > MINUTE - timedelta(minutes=15)) & (bars["minute"] <= MINUTE)]
    last = window[window["minute"] == MINUTE].set_index("ticker")
    ranges = (window["high"] - window["low"]).groupby(window["ticker"]).mean()
    return last["close"].to_dict(), ranges.to_dict()


CLOSES, RANGES = _real_market()
TICKERS = sorted(CLOSES)
with open("trading_assets/data/replay/universe.csv", newline="") as fh:
    SECTOR_OF = {row["ticker"]: row["sector"] for row in csv.DictReader(fh)}

BAD_PRICES = [NAN, 0.0, -0.01, -150.0, INF, -INF, 1e-12, 1e15]


def mostly(good: st.SearchStrategy, bad: st.SearchStrategy) -> st.SearchStrategy:
    """`good` about three times in four: enough valid inputs that approvals (and so the limits)
    are exercised, enough broken ones that every rejection path is too."""
    return st.sampled_from([good, good, good, bad]).flatmap(lambda chosen: chosen)


bad_or_real_price = st.one_of(
    st.sampled_from(TICKERS).map(CLOSES.get),
    st.tuples(st.sampled_from(TICKERS), st.floats(0.5, 2.0)).map(lambda t: CLOSES[t[0]] * t[1]),
    st.sampled_from(BAD_PRICES),
)
money = st.one_of(
    st.floats(1_000, 50_000_000),
    st.sampled_from([0.0, -10_000.0, NAN, INF, -INF, 1e300]),
)


@st.composite
def proposals(draw: st.DrawFn) -> Proposal:
    ticker = draw(mostly(st.sampled_from(TICKERS), st.sampled_from(["", "aapl", "TOOLONG"])))
    real = CLOSES.get(ticker, CLOSES["AAPL"])
    entry = draw(mostly(st.just(real), bad_or_real_price))
    return Proposal(
        ticker=ticker,
        minute=MINUTE,
        side=draw(st.sampled_from(["buy", "sell"])),
        entry=entry,
        confidence=draw(mostly(st.floats(0, 1), st.sampled_from([NAN, -1.0, 7.0, INF]))),
        horizon_minutes=draw(st.integers(0, 390)),
        atr=draw(
            st.one_of(
                st.none(),
                st.just(RANGES.get(ticker, 0.1)),
                st.sampled_from([NAN, 0.0, -1.0, INF, 1e9]),
            )
        ),
        qty=draw(mostly(st.none(), st.one_of(st.integers(-10, 20_000), st.just(10**12)))),
        model=draw(st.sampled_from(["rules-1", "local-model"])),
    )


@st.composite
def positions(draw: st.DrawFn) -> list[Position]:
    held = draw(st.lists(st.sampled_from(TICKERS), unique=True, max_size=6))
    out = []
    for ticker in held:
        avg = CLOSES[ticker] * draw(st.floats(0.5, 1.5))
        out.append(
            Position(
                ticker=ticker,
                qty=draw(mostly(st.integers(-20, 20), st.integers(-3_000, 3_000)).filter(bool)),
                avg_price=draw(mostly(st.just(avg), st.just(1e12))),
                sector=draw(st.one_of(st.none(), st.sampled_from(["ETF", "Energy"]))),
                mark=draw(st.one_of(st.none(), st.just(CLOSES[ticker]))),
            )
        )
    return out


def _past(minutes: int | None) -> datetime | None:
    return None if minutes is None else MINUTE - timedelta(minutes=minutes)


@st.composite
def states(draw: st.DrawFn) -> PortfolioState:
    """Half calm books (entries possible), half stressed ones (losses, trips, broken numbers)."""
    if draw(st.booleans()):
        equity = draw(st.floats(10_000, 5_000_000))
        return PortfolioState(
            equity=equity,
            cash=draw(st.floats(0, equity)),
            positions=draw(positions()),
            trades_today=draw(st.integers(0, 4)),
            realised_pnl_today=draw(st.floats(-0.005 * equity, 0.01 * equity)),
            consecutive_losses=draw(st.integers(0, 1)),
        )
    equity = draw(money)
    return PortfolioState(
        equity=equity,
        cash=draw(st.one_of(st.just(equity), money)),
        positions=draw(positions()),
        trades_today=draw(st.integers(0, 15)),
        realised_pnl_today=draw(
            st.one_of(st.floats(-50_000, 50_000), st.sampled_from([0.0, NAN, -INF]))
        ),
        consecutive_losses=draw(st.integers(0, 6)),
        last_loss_at=_past(draw(st.one_of(st.none(), st.integers(0, 200)))),
        kill_switch=draw(st.booleans()),
        day_start_equity=draw(st.one_of(st.none(), money)),
        breaker_tripped_at=_past(draw(st.one_of(st.none(), st.integers(0, 200)))),
    )


limits = st.builds(
    RiskLimits,
    max_position_pct=st.floats(0.001, 1.0),
    max_total_exposure_pct=st.floats(0.001, 3.0),
    max_sector_exposure_pct=st.floats(0.001, 3.0),
    atr_stop_multiple=st.floats(0.1, 5.0),
    min_stop_pct=st.floats(0.0001, 0.2),
    reward_risk=st.floats(0.5, 5.0),
    max_trades_per_day=mostly(st.integers(3, 12), st.integers(0, 2)),
    max_open_positions=mostly(st.integers(3, 9), st.integers(0, 2)),
    max_daily_loss_pct=st.floats(0.001, 0.5),
    max_consecutive_losses=st.integers(1, 5),
    cooldown_minutes=st.integers(0, 120),
    no_entry_minutes_before_close=mostly(st.integers(0, 20), st.integers(20, 60)),
    price_tick=st.sampled_from([0.0, 0.01, 0.05]),
)


def _value(p: Position) -> float:
    return abs(p.qty) * (p.mark if p.mark is not None else p.avg_price)


@dataclass
class Book:
    """An independent running book: what the state holds plus what this batch approved, valued
    as the module promises (gross, at mark or average price; new shares at their entry)."""

    qty: dict[str, int] = field(default_factory=dict)
    price: dict[str, float] = field(default_factory=dict)
    sector: dict[str, str] = field(default_factory=dict)
    cash: float = 0.0
    trades: int = 0

    @classmethod
    def of(cls, state: PortfolioState) -> "Book":
        book = cls(cash=state.cash, trades=state.trades_today)
        for p in state.positions:
            if p.qty != 0:
                book.qty[p.ticker] = p.qty
                book.price[p.ticker] = _value(p) / abs(p.qty)
                book.sector[p.ticker] = p.sector or SECTOR_OF.get(p.ticker) or UNKNOWN_SECTOR
        return book

    def value(self, ticker: str) -> float:
        return abs(self.qty.get(ticker, 0)) * self.price.get(ticker, 0.0)

    def gross(self) -> float:
        return sum(self.value(t) for t in self.qty)

    def in_sector(self, sector: str) -> float:
        return sum(self.value(t) for t in self.qty if self.sector[t] == sector)

    def fill(self, s: Signal) -> None:
        signed = s.qty if s.action == "BUY" else -s.qty
        self.sector.setdefault(s.ticker, s.sector)
        self.qty[s.ticker] = self.qty.get(s.ticker, 0) + signed
        self.price[s.ticker] = s.entry  # the batch re-marks a touched position at its entry
        self.cash -= s.qty * s.entry if s.action == "BUY" else 0.0
        self.trades += 1


def _breaker_blocks(state: PortfolioState, lim: RiskLimits) -> bool:
    """The circuit breaker as documented, re-computed: loss limits or a recorded trip, within
    the cool-down (an unknown loss time holds); a P&L that is not a number, or a loss against a
    day-start equity that is not a positive number, fails closed."""
    base = (
        state.day_start_equity
        if state.day_start_equity is not None
        else state.equity - state.realised_pnl_today
    )
    pnl = state.realised_pnl_today
    if not math.isfinite(pnl) or (pnl < 0 and (not math.isfinite(base) or base <= 0)):
        return True
    cooldown = timedelta(minutes=lim.cooldown_minutes)
    daily = state.realised_pnl_today < 0 and base > 0
    daily = daily and -state.realised_pnl_today / base >= lim.max_daily_loss_pct
    streak = state.consecutive_losses >= lim.max_consecutive_losses
    loss_at = state.last_loss_at
    if (daily or streak) and (loss_at is None or loss_at + cooldown > MINUTE):
        return True
    tripped = state.breaker_tripped_at
    return tripped is not None and tripped + cooldown > MINUTE


def _assert_signal_is_safe(s: Signal) -> None:
    """What any signal row promises, whatever its status."""
    assert isinstance(s.qty, int) and not isinstance(s.qty, bool) and s.qty >= 0
    if s.status == "rejected":
        assert s.action == "HOLD" and s.qty == 0 and s.reasons, s
        return
    assert s.action == s.proposed_action and MIN_QTY <= s.qty <= MAX_QTY
    assert TICKER_RE.match(s.ticker)
    assert math.isfinite(s.entry) and s.entry > 0, "an order from a bad price"
    if s.action == "BUY":
        assert s.stop < s.entry < s.take_profit
    else:
        assert s.take_profit < s.entry < s.stop
    assert 0.0 <= s.confidence <= 1.0
    assert (s.status == "resized") == bool(s.reasons)


def _assert_no_limit_broken(
    batch: list[Proposal], state: PortfolioState, lim: RiskLimits, left: int
) -> int:
    """Review `batch` and check every approved or resized signal against every limit, given the
    book plus the approvals before it in the batch; returns how many could become orders."""
    signals = review_batch(batch, state, lim, SECTOR_OF, MINUTE, left)
    assert len(signals) == len(batch)
    book = Book.of(state)
    opened_before = len(book.qty)
    ids: set[str] = set()
    for s in signals:
        _assert_signal_is_safe(s)
        if s.action == "HOLD":
            continue
        assert s.signal_id not in ids, "two orders from one signal id"
        ids.add(s.signal_id)
        new_value = s.qty * s.entry
        cap = state.equity * (1 + EPS)
        assert math.isfinite(state.equity) and state.equity > 0
        assert math.isfinite(state.cash)
        assert not state.kill_switch
        assert left > lim.no_entry_minutes_before_close
        assert not _breaker_blocks(state, lim)
        assert book.trades < lim.max_trades_per_day
        held = book.qty.get(s.ticker, 0)
        if held == 0:
            assert sum(1 for q in book.qty.values() if q) < lim.max_open_positions
        else:
            assert (held > 0) == (s.action == "BUY"), "an entry against an open position"
        assert book.value(s.ticker) + new_value <= cap * lim.max_position_pct
        assert book.gross() + new_value <= cap * lim.max_total_exposure_pct
        sector = book.sector.get(s.ticker, s.sector)
        assert book.in_sector(sector) + new_value <= cap * lim.max_sector_exposure_pct
        if s.action == "BUY":
            assert new_value <= book.cash * (1 + EPS)
        book.fill(s)
    if ids:
        assert book.trades <= lim.max_trades_per_day
        assert sum(1 for q in book.qty.values() if q) <= max(lim.max_open_positions, opened_before)
    return len(ids)


@given(
    batch=st.lists(proposals(), max_size=8),
    state=states(),
    lim=limits,
    left=mostly(st.integers(60, 390), st.integers(-5, 60)),
)
def test_no_signal_ever_breaks_a_limit(
    batch: list[Proposal], state: PortfolioState, lim: RiskLimits, left: int
) -> None:
    """Any batch, any book (calm, stressed or broken), any limits: no exception, and no order
    that breaks a limit, a gate or the circuit breaker."""
    target(float(_assert_no_limit_broken(batch, state, lim, left)), label="orders")


@settings(max_examples=150)
@given(
    batch=st.lists(proposals(), min_size=1, max_size=8),
    positions=positions(),
    equity=st.floats(10_000, 5_000_000),
    cash_share=st.floats(0, 1),
    sizing=limits,
)
def test_sizing_never_breaks_an_exposure_limit_on_open_books(
    batch: list[Proposal],
    positions: list[Position],
    equity: float,
    cash_share: float,
    sizing: RiskLimits,
) -> None:
    """Books where every gate is open (no losses, no trades yet, mid-session), so most valid
    proposals are sized: the per-position, total, sector and cash limits hold for each."""
    state = PortfolioState(equity=equity, cash=equity * cash_share, positions=positions)
    lim = sizing.model_copy(
        update={
            "max_trades_per_day": 10,
            "max_open_positions": 9,
            "no_entry_minutes_before_close": 15,
        }
    )
    target(float(_assert_no_limit_broken(batch, state, lim, 200)), label="orders")


@given(entry=st.sampled_from(BAD_PRICES[:6]), side=st.sampled_from(["buy", "sell"]))
def test_a_bad_price_is_never_actionable_and_says_why(entry: float, side: str) -> None:
    """NaN, zero, negative or infinite prices become a rejected HOLD naming the price, and the
    stored row has no quantity that an execution could pick up."""
    proposal = Proposal(
        ticker="AAPL", minute=MINUTE, side=side, entry=entry, confidence=0.8, horizon_minutes=30
    )
    state = PortfolioState(equity=100_000.0, cash=100_000.0)
    (signal,) = minute_signals([proposal], state, RiskLimits(), SECTOR_OF, MINUTE, CLOSE)
    assert (signal.action, signal.qty, signal.status) == ("HOLD", 0, "rejected")
    assert any("entry must be a positive price" in r for r in signal.reasons), signal.reasons
    frame = signal_frame([signal], state, "ledger")
    assert frame["qty"].tolist() == [0] and frame["action"].tolist() == ["HOLD"]


@given(
    pnl=st.sampled_from([NAN, -INF, INF]),
    base=st.sampled_from([None, 100_000.0, NAN]),
)
def test_an_unknown_day_pnl_holds_the_breaker(pnl: float, base: float | None) -> None:
    """A realised P&L (or day-start equity) that is not a number means the loss limits cannot
    be evaluated: the breaker holds, with a reason, instead of letting entries through."""
    state = PortfolioState(
        equity=100_000.0, cash=100_000.0, realised_pnl_today=pnl, day_start_equity=base
    )
    why = circuit_breaker(state, RiskLimits(), MINUTE)
    assert why is not None and "not a number" in why


def test_a_cash_balance_that_is_not_a_number_is_a_rejection_not_a_crash() -> None:
    """The book's cash came back NaN (a broken ledger read): the buy is rejected with the reason
    rather than the batch raising, and nothing can be ordered from it."""
    proposal = Proposal(
        ticker="AAPL",
        minute=MINUTE,
        side="buy",
        entry=CLOSES["AAPL"],
        confidence=0.8,
        horizon_minutes=30,
    )
    state = PortfolioState(equity=100_000.0, cash=NAN)
    signal = review(proposal, state, RiskLimits(), SECTOR_OF, MINUTE, 200)
    assert (signal.action, signal.qty) == ("HOLD", 0)
    assert any("cash must be a finite number" in r for r in signal.reasons), signal.reasons


def test_the_real_closes_cover_the_universe() -> None:
    """The base of every generated proposal is real: nine tickers with positive closes."""
    assert len(TICKERS) == 9 and all(c > 0 for c in CLOSES.values())
    assert pd.Series(RANGES).gt(0).all()
