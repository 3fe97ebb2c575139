"""Send-time checks: what stops a signal between the risk manager's decision and the broker.

Prices are real: the AAPL signal is the 10:30 bar's close of 2026-03-17 sized at 2 % of equity,
its quote sits one cent either side of the next bar's open, and held positions are marked at
their own real 10:30 closes. The broker's state (clock, account, positions, quote) is built
directly from the `resources.broker` dataclasses, and every threshold comes from the default
`TradingControls` (2-minute signal age, 120 s quote age, 1 % spread, 5 positions, 10 % gross).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
import pytest

from resources.broker import BrokerAccount, BrokerClock, BrokerPosition, Quote
from resources.trading_controls import TradingControls
from tests.real_bars import bundled_bars
from trading_assets.execution.send import (
    SendContext,
    quote_problems,
    send_time_problems,
    signal_age_problem,
)

NY = "America/New_York"
MINUTE = pd.Timestamp("2026-03-17 10:30")  # the signal's bar (naive New York)
NOW = pd.Timestamp("2026-03-17 10:31:05", tz=NY).tz_convert("UTC")  # 5 s after it closed
EQUITY = 100_000.0
CONTROLS = TradingControls()
OTHERS = ["MSFT", "NVDA", "AMZN", "GOOG", "META"]


@pytest.fixture(scope="module")
def closes() -> dict[str, float]:
    """Real 10:30 closes and AAPL's 10:31 open."""
    bars = bundled_bars()
    at = bars[bars["minute"] == MINUTE].set_index("ticker")["close"].to_dict()
    nxt = bars[(bars["minute"] == MINUTE + pd.Timedelta(minutes=1)) & (bars["ticker"] == "AAPL")]
    return at | {"AAPL_next_open": float(nxt["open"].iloc[0])}


@pytest.fixture(scope="module")
def signal(closes: dict[str, float]) -> dict:
    entry = closes["AAPL"]
    qty = math.floor(EQUITY * 0.02 / entry)
    return {
        "minute": MINUTE,
        "signal_id": "sig-aapl-test",
        "ticker": "AAPL",
        "action": "BUY",
        "qty": qty,
        "entry": entry,
        "stop": round(entry * 0.995, 2),
        "take_profit": round(entry * 1.01, 2),
    }


@pytest.fixture(scope="module")
def quote(closes: dict[str, float]) -> Quote:
    mid = closes["AAPL_next_open"]
    return Quote("AAPL", bid=round(mid - 0.01, 2), ask=round(mid + 0.01, 2), timestamp=NOW)


def clock(now: pd.Timestamp = NOW, is_open: bool = True) -> BrokerClock:
    return BrokerClock(
        now=now,
        is_open=is_open,
        next_open=pd.Timestamp("2026-03-18 13:30", tz="UTC"),
        next_close=pd.Timestamp("2026-03-17 20:00", tz="UTC"),
    )


ACCOUNT = BrokerAccount(
    equity=EQUITY,
    cash=EQUITY,
    buying_power=2 * EQUITY,  # a margin account
    last_equity=EQUITY,
    trading_blocked=False,
    status="ACTIVE",
)


def context(**changes: object) -> SendContext:
    base = {"clock": clock(), "account": ACCOUNT, "positions": []}
    return SendContext(**(base | changes))  # type: ignore[arg-type]


def held(closes: dict[str, float], tickers: list[str], qty: float = 1.0) -> list[BrokerPosition]:
    return [BrokerPosition(t, qty, closes[t], closes[t]) for t in tickers]


def test_a_clean_signal_has_nothing_against_it(signal: dict, quote: Quote) -> None:
    assert signal["qty"] * signal["entry"] <= 0.02 * EQUITY
    assert send_time_problems(signal, quote, context(), CONTROLS) == []


Case = Callable[[dict, Quote, dict[str, float]], tuple[dict, Quote | None, SendContext, object]]


def _future(s: dict, q: Quote, c: dict) -> tuple:
    early = pd.Timestamp("2026-03-17 10:30:40", tz=NY).tz_convert("UTC")
    return s, replace(q, timestamp=early), context(clock=clock(early)), CONTROLS


def _stale_signal(s: dict, q: Quote, c: dict) -> tuple:
    late = pd.Timestamp("2026-03-17 10:33:10", tz=NY).tz_convert("UTC")
    return s, replace(q, timestamp=late), context(clock=clock(late)), CONTROLS


def _closed(s: dict, q: Quote, c: dict) -> tuple:
    return s, q, context(clock=clock(is_open=False)), CONTROLS


def _blocked(s: dict, q: Quote, c: dict) -> tuple:
    account = replace(ACCOUNT, trading_blocked=True, status="ACCOUNT_UPDATED")
    return s, q, context(account=account), CONTROLS


def _no_quote(s: dict, q: Quote, c: dict) -> tuple:
    return s, None, context(), CONTROLS


def _crossed(s: dict, q: Quote, c: dict) -> tuple:
    return s, replace(q, bid=q.ask + 0.05), context(), CONTROLS


def _stale_quote(s: dict, q: Quote, c: dict) -> tuple:
    return s, replace(q, timestamp=NOW - pd.Timedelta(seconds=121)), context(), CONTROLS


def _wide(s: dict, q: Quote, c: dict) -> tuple:
    mid = q.mid
    return s, replace(q, bid=round(mid * 0.994, 2), ask=round(mid * 1.006, 2)), context(), CONTROLS


def _buying_power(s: dict, q: Quote, c: dict) -> tuple:
    short = replace(ACCOUNT, buying_power=1_000.0)
    return s, q, context(account=short), CONTROLS


def _max_positions(s: dict, q: Quote, c: dict) -> tuple:
    return s, q, context(positions=held(c, OTHERS)), CONTROLS


def _exposure(s: dict, q: Quote, c: dict) -> tuple:
    qty = math.ceil(9_000 / c["MSFT"])  # ~9 % of equity already in MSFT
    return s, q, context(positions=held(c, ["MSFT"], qty)), CONTROLS


def _kill_switch(s: dict, q: Quote, c: dict) -> tuple:
    return s, q, context(), TradingControls(kill_switch=True)


@pytest.mark.parametrize(
    ("case", "reason"),
    [
        (_future, "signal from the future: its minute closes at 2026-03-17T10:31:00-04:00"),
        (_stale_signal, "stale signal: its minute closed 2.2 min ago (limit 2 min)"),
        (_closed, "market closed (next open 2026-03-18T13:30:00+00:00)"),
        (_blocked, "account trading blocked (status ACCOUNT_UPDATED)"),
        (_no_quote, "no quote (halted or unknown symbol)"),
        (_crossed, "invalid quote: bid"),
        (_stale_quote, "stale quote: last at"),
        (_wide, "spread 1.20% is wider than 1.00%"),
        (_buying_power, "buying power 1,000.00 < order value"),
        (_max_positions, "max open positions at send time: 5 of 5"),
        (_exposure, "total exposure at send time"),
        (_kill_switch, "kill switch is on: no new entries"),
    ],
    ids=[
        "future",
        "stale-signal",
        "market-closed",
        "trading-blocked",
        "no-quote",
        "crossed-quote",
        "stale-quote",
        "wide-spread",
        "buying-power",
        "max-open-positions",
        "total-exposure",
        "kill-switch",
    ],
)
def test_each_failed_check_alone_gives_exactly_its_reason(
    signal: dict, quote: Quote, closes: dict[str, float], case: Case, reason: str
) -> None:
    s, q, ctx, controls = case(signal, quote, closes)
    (problem,) = send_time_problems(s, q, ctx, controls)  # type: ignore[arg-type]
    assert problem.startswith(reason), problem


def test_reasons_carry_the_numbers_an_operator_needs(
    signal: dict, quote: Quote, closes: dict[str, float]
) -> None:
    value = signal["qty"] * quote.ask
    poor = context(account=replace(ACCOUNT, buying_power=1_000.0))
    (power,) = send_time_problems(signal, quote, poor, CONTROLS)
    assert power == f"buying power 1,000.00 < order value {value:,.2f}"
    old = replace(quote, timestamp=NOW - pd.Timedelta(seconds=121))
    (stale,) = quote_problems(old, NOW, CONTROLS)
    assert "121 s old (limit 120 s; halted?)" in stale
    _, _, ctx, _ = _exposure(signal, quote, closes)
    (over,) = send_time_problems(signal, quote, ctx, CONTROLS)
    gross = ctx.positions[0].qty * closes["MSFT"]
    assert over == (
        f"total exposure at send time: open {gross:,.2f} + order {value:,.2f} > 10% of equity "
        "(10,000.00)"
    )


def test_all_failures_are_listed_together(signal: dict, quote: Quote) -> None:
    late = pd.Timestamp("2026-03-17 16:05", tz=NY).tz_convert("UTC")
    ctx = context(clock=clock(late, is_open=False))
    problems = send_time_problems(signal, None, ctx, TradingControls(kill_switch=True))
    assert [p.split(":")[0].split(" (")[0] for p in problems] == [
        "kill switch is on",
        "stale signal",
        "market closed",
        "no quote",
    ]


# --- the limits are inclusive where an operator expects them to be -----------------------------


@pytest.mark.parametrize(
    ("now", "problem"),
    [
        ("10:30:59", "signal from the future"),
        ("10:31:00", None),  # the bar just closed
        ("10:33:00", None),  # exactly 2 minutes: still allowed
        ("10:33:01", "stale signal"),
    ],
)
def test_signal_age_limits(now: str, problem: str | None) -> None:
    stamp = pd.Timestamp(f"2026-03-17 {now}", tz=NY).tz_convert("UTC")
    got = signal_age_problem(MINUTE, stamp, CONTROLS.max_signal_age_minutes)
    assert got is None if problem is None else got.startswith(problem)


@pytest.mark.parametrize(
    ("minute", "utc_close"),
    [
        ("2026-03-06 10:30", "2026-03-06 15:31"),  # EST: New York = UTC-5
        ("2026-03-17 10:30", "2026-03-17 14:31"),  # EDT: New York = UTC-4
    ],
)
def test_signal_age_reads_the_minute_as_new_york_time(minute: str, utc_close: str) -> None:
    closed = pd.Timestamp(utc_close, tz="UTC")
    assert signal_age_problem(pd.Timestamp(minute), closed, 2) is None
    an_hour_off = closed - pd.Timedelta(hours=1)
    assert signal_age_problem(pd.Timestamp(minute), an_hour_off, 2).startswith(
        "signal from the future"
    )


def test_a_quote_exactly_at_the_limits_is_accepted(quote: Quote) -> None:
    old = replace(quote, timestamp=NOW - pd.Timedelta(seconds=120))
    assert quote_problems(old, NOW, CONTROLS) == []
    mid = quote.mid
    at_limit = replace(quote, bid=mid * (1 - 0.004), ask=mid * (1 + 0.004))  # 0.8 %
    assert quote_problems(at_limit, NOW, CONTROLS) == []
    locked = replace(quote, bid=quote.ask)  # bid == ask: not crossed
    assert quote_problems(locked, NOW, CONTROLS) == []


@pytest.mark.parametrize(("bid", "ask"), [(0.0, 254.5), (254.5, 0.0), (-1.0, 254.5)])
def test_a_one_sided_book_is_an_invalid_quote(quote: Quote, bid: float, ask: float) -> None:
    assert quote_problems(replace(quote, bid=bid, ask=ask), NOW, CONTROLS) == [
        f"invalid quote: bid {bid}, ask {ask}"
    ]


def test_a_stale_wide_quote_gives_both_reasons(quote: Quote) -> None:
    mid = quote.mid
    bad = Quote("AAPL", mid * 0.99, mid * 1.01, NOW - pd.Timedelta(minutes=5))
    problems = quote_problems(bad, NOW, CONTROLS)
    assert [p.split(":")[0].split(" ")[0] for p in problems] == ["stale", "spread"]


# --- what counts against the limits at send time -----------------------------------------------


def test_a_short_is_valued_at_the_bid_a_buy_at_the_ask(signal: dict, quote: Quote) -> None:
    qty = signal["qty"]
    room = qty * (quote.bid + quote.ask) / 2  # between the two order values
    ctx = context(account=replace(ACCOUNT, buying_power=room))
    sell = signal | {"action": "SELL"}
    assert send_time_problems(sell, quote, ctx, CONTROLS) == []
    (problem,) = send_time_problems(signal, quote, ctx, CONTROLS)
    assert problem.startswith("buying power")


def test_adding_to_a_held_ticker_is_not_a_new_position(
    signal: dict, quote: Quote, closes: dict[str, float]
) -> None:
    positions = held(closes, ["AAPL", *OTHERS[:4]])  # five open, AAPL among them
    assert send_time_problems(signal, quote, context(positions=positions), CONTROLS) == []


def test_orders_already_sent_this_run_count(
    signal: dict, quote: Quote, closes: dict[str, float]
) -> None:
    """A run sending several signals must not overrun the limits between broker reads."""
    opened = context(positions=held(closes, OTHERS[:3]), opened={"TSLA", "SPY"})
    (problem,) = send_time_problems(signal, quote, opened, CONTROLS)
    assert problem == "max open positions at send time: 5 of 5"
    committed = context(committed=9_000.0)
    (problem,) = send_time_problems(signal, quote, committed, CONTROLS)
    assert problem.startswith("total exposure at send time: open 9,000.00 + order")
    spent = context(account=replace(ACCOUNT, buying_power=10_000.0), committed=9_000.0)
    problems = send_time_problems(signal, quote, spent, CONTROLS)
    assert problems[0].startswith("buying power 1,000.00 < order value")


def test_short_positions_count_as_gross_exposure(
    signal: dict, quote: Quote, closes: dict[str, float]
) -> None:
    qty = math.ceil(9_000 / closes["MSFT"])
    short = context(positions=held(closes, ["MSFT"], -qty))
    (problem,) = send_time_problems(signal, quote, short, CONTROLS)
    assert problem.startswith("total exposure at send time")
