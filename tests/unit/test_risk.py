"""The risk manager on real closes and ATRs from the bundled bars."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from tests.real_bars import bundled_bars
from trading_assets.analysts.technical import technical_features
from trading_assets.decision.risk import (
    MAX_QTY,
    PortfolioState,
    Position,
    RiskLimits,
    Signal,
    apply_fill,
    circuit_breaker,
    minutes_to_close,
    review,
    review_batch,
    signal_id,
    size,
    stop_and_target,
    validate,
)
from trading_assets.decision.trader import Proposal

UNIVERSE_FILE = "trading_assets/data/replay/universe.csv"
MORNING = datetime(2026, 3, 17, 10, 30)  # quiet 1-minute ATRs: the 0.5 % stop wins
NVDA_SWING = datetime(2026, 3, 16, 15, 23)  # NVDA's 1.5 x ATR is wider than 0.5 % here
CLOSE = datetime(2026, 3, 17, 16, 0)
LIMITS = RiskLimits()
EQUITY = 100_000.0
LEFT = minutes_to_close(MORNING, CLOSE)


@pytest.fixture(scope="module")
def features() -> dict[tuple[str, datetime], dict]:
    bars = bundled_bars()
    bars = bars[(bars["minute"] >= "2026-03-13") & (bars["minute"] <= MORNING)]
    feats = technical_features(bars, pd.DatetimeIndex([NVDA_SWING, MORNING]))
    return {(r["ticker"], r["minute"].to_pydatetime()): r for r in feats.to_dict("records")}


@pytest.fixture(scope="module")
def sector_of() -> dict[str, str]:
    with open(UNIVERSE_FILE, newline="") as fh:
        return {row["ticker"]: row["sector"] for row in csv.DictReader(fh)}


@pytest.fixture
def px(features: dict) -> dict[str, float]:
    """Real closes at 10:30 on 2026-03-17."""
    return {t: f["close"] for (t, m), f in features.items() if m == MORNING}


def proposal(
    features: dict, name: str, side: str = "buy", minute: datetime = MORNING, **changes: object
) -> Proposal:
    """A proposal on `name`'s real close and ATR at `minute`; `changes` override any field."""
    f = features[(name, minute)]
    data = {
        "ticker": name,
        "minute": minute,
        "side": side,
        "entry": f["close"],
        "atr": f["atr_14"],
        "confidence": 0.6,
        "horizon_minutes": 30,
        "rationale": "test",
        "stance": "bullish" if side == "buy" else "bearish",
        "consensus": "moderate",
        "model": "rules-1",
    }
    data.update(changes)
    return Proposal(**data)


def flat(**changes: object) -> PortfolioState:
    return PortfolioState(equity=EQUITY, cash=EQUITY, **changes)


def held(ticker: str, value: float, price: float, sector: str | None = None) -> Position:
    """A long position worth about `value` at `price` (whole shares)."""
    return Position(ticker=ticker, qty=round(value / price), avg_price=price, sector=sector)


# --- stop and target -------------------------------------------------------------------------


def test_real_data_has_both_regimes(features: dict) -> None:
    """The fixtures really cover both branches of "the less aggressive" stop."""
    aapl, nvda = features[("AAPL", MORNING)], features[("NVDA", NVDA_SWING)]
    assert 1.5 * aapl["atr_14"] < 0.005 * aapl["close"]
    assert 1.5 * nvda["atr_14"] > 0.005 * nvda["close"]


def test_buy_stop_is_the_wider_of_atr_and_half_a_percent(features: dict) -> None:
    f = features[("AAPL", MORNING)]
    entry, atr = f["close"], f["atr_14"]
    stop, target = stop_and_target("buy", entry, atr, LIMITS)
    assert stop == math.floor(entry * 0.995 * 100) / 100  # 0.5 % wins, rounded away from entry
    assert entry - stop >= 0.005 * entry > 1.5 * atr  # never tighter than either rule
    assert stop < entry < target
    assert abs((target - entry) - 2 * (entry - stop)) <= 0.005 + 1e-9  # 2:1 within half a tick
    assert round(stop, 2) == stop and round(target, 2) == target


def test_sell_stop_and_target_are_mirrored(features: dict) -> None:
    f = features[("AAPL", MORNING)]
    entry = f["close"]
    stop, target = stop_and_target("sell", entry, f["atr_14"], LIMITS)
    assert stop == math.ceil(entry * 1.005 * 100) / 100
    assert target < entry < stop
    assert abs((entry - target) - 2 * (stop - entry)) <= 0.005 + 1e-9


def test_atr_wins_when_the_minute_is_volatile(features: dict) -> None:
    f = features[("NVDA", NVDA_SWING)]
    entry, atr = f["close"], f["atr_14"]
    exact = RiskLimits(price_tick=0)
    stop, target = stop_and_target("buy", entry, atr, exact)
    assert stop == pytest.approx(entry - 1.5 * atr)
    assert target == pytest.approx(entry + 3.0 * atr)
    s_stop, s_target = stop_and_target("sell", entry, atr, exact)
    assert (s_stop, s_target) == (pytest.approx(entry + 1.5 * atr), pytest.approx(entry - 3 * atr))
    rounded_stop, _ = stop_and_target("buy", entry, atr, LIMITS)
    assert rounded_stop <= entry - 1.5 * atr


def test_no_atr_uses_half_a_percent(px: dict[str, float]) -> None:
    exact = RiskLimits(price_tick=0)
    entry = px["MSFT"]
    assert stop_and_target("buy", entry, None, exact) == (
        pytest.approx(entry * 0.995),
        pytest.approx(entry * 1.01),
    )
    assert stop_and_target("sell", entry, float("nan"), exact) == (
        pytest.approx(entry * 1.005),
        pytest.approx(entry * 0.99),
    )


def test_configurable_stop_rules(px: dict[str, float]) -> None:
    limits = RiskLimits(min_stop_pct=0.01, reward_risk=3.0, price_tick=0)
    entry = px["SPY"]
    assert stop_and_target("buy", entry, 0.1, limits) == (
        pytest.approx(entry * 0.99),
        pytest.approx(entry * 1.03),
    )
    with pytest.raises(ValueError, match="side must be buy or sell"):
        stop_and_target("hold", entry, 0.1, limits)


# --- sizing ----------------------------------------------------------------------------------


def test_standard_size_is_two_percent_of_equity(features: dict, sector_of: dict) -> None:
    p = proposal(features, "AAPL")
    signal = review(p, flat(), LIMITS, sector_of, MORNING, LEFT)
    assert signal.status == "approved" and signal.reasons == []
    assert signal.qty == math.floor(EQUITY * 0.02 / p.entry) == 7  # AAPL at 254.495
    assert (signal.action, signal.proposed_action) == ("BUY", "BUY")
    assert signal.sector == "Information Technology"
    assert signal.stop < signal.entry < signal.take_profit
    assert validate(signal) == []


def test_requested_size_above_the_cap_is_resized(features: dict, sector_of: dict) -> None:
    signal = review(proposal(features, "AAPL", qty=50), flat(), LIMITS, sector_of, MORNING, LEFT)
    assert (signal.status, signal.qty) == ("resized", 7)
    assert signal.reasons == [
        "per-position limit: 2.0% of equity 100,000.00 is 2,000.00 -> 7 shares at 254.50 (was 50)"
    ]
    small = review(proposal(features, "AAPL", qty=3), flat(), LIMITS, sector_of, MORNING, LEFT)
    assert (small.status, small.qty, small.reasons) == ("approved", 3, [])


def test_adding_to_a_position_fits_the_per_position_cap(
    features: dict, sector_of: dict, px: dict
) -> None:
    state = flat(positions=[Position(ticker="AAPL", qty=4, avg_price=250.0)])
    signal = review(proposal(features, "AAPL"), state, LIMITS, sector_of, MORNING, LEFT)
    assert (signal.status, signal.qty) == ("resized", 3)  # (2000 - 4 x 250) / 254.495
    assert "already holding +4 AAPL (1,000.00)" in signal.reasons[0]
    full = flat(positions=[Position(ticker="AAPL", qty=8, avg_price=250.0)])
    rejected = review(proposal(features, "AAPL"), full, LIMITS, sector_of, MORNING, LEFT)
    assert (rejected.status, rejected.qty, rejected.action) == ("rejected", 0, "HOLD")
    assert rejected.reasons[-1] == "size 0 shares: nothing left to trade"


def test_total_exposure_resizes_then_rejects(features: dict, sector_of: dict, px: dict) -> None:
    # 9,000 open across four sectors (each under its 5 %): 1,000 of room left = 3 AAPL.
    positions = [
        held("AMZN", 2000, px["AMZN"]),
        held("GOOG", 2000, px["GOOG"]),
        held("SPY", 2000, px["SPY"]),
        Position(ticker="TSLA", qty=7, avg_price=px["TSLA"], mark=px["TSLA"]),
    ]
    gross = sum(p.value for p in positions)
    assert 8_500 < gross < 9_800
    signal = review(
        proposal(features, "AAPL"), flat(positions=positions), LIMITS, sector_of, MORNING, LEFT
    )
    room = 10_000 - gross
    assert (signal.status, signal.qty) == ("resized", math.floor(room / px["AAPL"]))
    assert signal.reasons[0].startswith("total exposure limit: 10.0% of equity is 10,000.00")
    assert f"room {room:,.2f}" in signal.reasons[0]
    # The same book with a tighter total limit leaves no room at all.
    tight = RiskLimits(max_total_exposure_pct=0.09)
    none = review(
        proposal(features, "AAPL"), flat(positions=positions), tight, sector_of, MORNING, LEFT
    )
    assert none.status == "rejected" and none.reasons[0].startswith("total exposure limit: 9.0%")


def test_sector_exposure_resizes_and_rejects(features: dict, sector_of: dict, px: dict) -> None:
    # MSFT and NVDA (Information Technology) hold 4,500 of the 5,000 sector budget.
    positions = [held("MSFT", 2400, px["MSFT"]), held("NVDA", 2100, px["NVDA"])]
    in_sector = sum(p.value for p in positions)
    state = flat(positions=positions)
    signal = review(proposal(features, "AAPL"), state, LIMITS, sector_of, MORNING, LEFT)
    assert (signal.status, signal.qty) == ("resized", math.floor((5000 - in_sector) / px["AAPL"]))
    assert signal.reasons[0].startswith(
        f"sector limit (Information Technology): 5.0% of equity is 5,000.00; open {in_sector:,.2f}"
    )
    # Another sector is unaffected.
    assert review(proposal(features, "AMZN"), state, LIMITS, sector_of, MORNING, LEFT).status == (
        "approved"
    )
    full = flat(positions=[held("MSFT", 2600, px["MSFT"]), held("NVDA", 2600, px["NVDA"])])
    rejected = review(proposal(features, "AAPL"), full, LIMITS, sector_of, MORNING, LEFT)
    assert (
        rejected.status == "rejected"
        and "sector limit (Information Technology)" in (rejected.reasons[0])
    )


def test_unknown_sectors_share_one_bucket(features: dict, px: dict) -> None:
    state = flat(positions=[held("MSFT", 4800, px["MSFT"])])
    signal = review(proposal(features, "AAPL"), state, LIMITS, {}, MORNING, LEFT)
    assert signal.sector == "unknown" and signal.status == "rejected"
    assert "sector limit (unknown)" in signal.reasons[0]


def test_cash_limits_buys_not_shorts(features: dict, sector_of: dict, px: dict) -> None:
    poor = PortfolioState(equity=EQUITY, cash=600.0)
    buy = review(proposal(features, "AAPL"), poor, LIMITS, sector_of, MORNING, LEFT)
    assert (buy.status, buy.qty) == ("resized", 2)
    assert buy.reasons == ["cash: 600.00 available -> 2 shares at 254.50 (was 7)"]
    sell = review(proposal(features, "AAPL", "sell"), poor, LIMITS, sector_of, MORNING, LEFT)
    assert (sell.status, sell.qty, sell.action) == ("approved", 7, "SELL")
    assert sell.take_profit < sell.entry < sell.stop


def test_order_quantity_is_capped(features: dict, sector_of: dict) -> None:
    rich = PortfolioState(equity=100_000_000.0, cash=100_000_000.0)
    p = proposal(features, "NVDA")
    assert math.floor(rich.equity * 0.02 / p.entry) > MAX_QTY
    signal = review(p, rich, LIMITS, sector_of, MORNING, LEFT)
    assert (signal.status, signal.qty) == ("resized", MAX_QTY)
    assert signal.reasons[0].startswith("max order quantity 10000 -> 10000 shares")


def test_size_function_directly(features: dict, sector_of: dict) -> None:
    assert size(proposal(features, "META"), flat(), LIMITS, sector_of) == (3, [])  # 628.865


# --- gates -----------------------------------------------------------------------------------


def test_kill_switch(features: dict, sector_of: dict) -> None:
    p = proposal(features, "AAPL")
    signal = review(p, flat(kill_switch=True), LIMITS, sector_of, MORNING, LEFT)
    assert (signal.status, signal.action, signal.qty) == ("rejected", "HOLD", 0)
    assert signal.proposed_action == "BUY" and signal.reasons == [
        "kill switch is on: no new entries"
    ]
    assert signal.signal_id == signal_id("AAPL", MORNING, "buy", "rules-1")
    assert validate(signal) == []  # a HOLD orders nothing


def test_circuit_breaker_on_daily_loss_and_its_cool_down(features: dict, sector_of: dict) -> None:
    loss_at = datetime(2026, 3, 17, 10, 5)
    # Down 2,000 today from 100,000: exactly the 2 % limit.
    state = PortfolioState(
        equity=98_000.0, cash=98_000.0, realised_pnl_today=-2_000.0, last_loss_at=loss_at
    )
    p = proposal(features, "AAPL")
    blocked = review(p, state, LIMITS, sector_of, MORNING, LEFT)
    assert blocked.status == "rejected"
    assert blocked.reasons == [
        "circuit breaker: realised loss today 2,000.00 is 2.00% of day-start equity 100,000.00 "
        "(limit 2.0%); 60-minute cool-down after the loss at 2026-03-17T10:05 runs until "
        "2026-03-17T11:05"
    ]
    last_blocked = datetime(2026, 3, 17, 11, 4)
    assert review(p, state, LIMITS, sector_of, last_blocked, LEFT).status == "rejected"
    expired = datetime(2026, 3, 17, 11, 5)
    after = review(p, state, LIMITS, sector_of, expired, minutes_to_close(expired, CLOSE))
    assert after.status == "approved" and after.qty == math.floor(98_000 * 0.02 / p.entry)
    # Just under the limit: no breaker at all.
    ok = state.model_copy(update={"realised_pnl_today": -1_990.0, "equity": 98_010.0})
    assert circuit_breaker(ok, LIMITS, MORNING) is None
    # An explicit day-start equity is the base when given.
    based = state.model_copy(update={"day_start_equity": 120_000.0})
    assert circuit_breaker(based, LIMITS, MORNING) is None


def test_circuit_breaker_on_consecutive_losses(features: dict, sector_of: dict) -> None:
    loss_at = datetime(2026, 3, 17, 10, 0)
    p = proposal(features, "AAPL")
    two = flat(consecutive_losses=2, realised_pnl_today=-150.0, last_loss_at=loss_at)
    assert review(p, two, LIMITS, sector_of, MORNING, LEFT).status == "approved"
    three = two.model_copy(update={"consecutive_losses": 3})
    signal = review(p, three, LIMITS, sector_of, MORNING, LEFT)
    assert signal.status == "rejected"
    assert signal.reasons[0].startswith("circuit breaker: 3 consecutive losses (limit 3); ")
    assert "runs until 2026-03-17T11:00" in signal.reasons[0]
    # Aware timestamps work: 15:00 UTC is 11:00 New York, when the cool-down ends.
    aware = three.model_copy(update={"last_loss_at": datetime(2026, 3, 17, 14, 0, tzinfo=UTC)})
    assert circuit_breaker(aware, LIMITS, datetime(2026, 3, 17, 10, 59)) is not None
    assert circuit_breaker(aware, LIMITS, datetime(2026, 3, 17, 15, 0, tzinfo=UTC)) is None
    # Tripped but the loss time is unknown: fail closed.
    unknown = three.model_copy(update={"last_loss_at": None})
    reason = circuit_breaker(unknown, LIMITS, MORNING + timedelta(hours=5))
    assert reason is not None and "time of the last loss unknown" in reason


def test_no_entries_in_the_last_minutes(features: dict, sector_of: dict) -> None:
    assert minutes_to_close(datetime(2026, 3, 17, 15, 44), CLOSE) == 15
    assert minutes_to_close(datetime(2026, 3, 17, 15, 59), CLOSE) == 0
    assert minutes_to_close(datetime(2026, 11, 27, 12, 44), datetime(2026, 11, 27, 13, 0)) == 15
    p = proposal(features, "AAPL")
    last_ok = review(p, flat(), LIMITS, sector_of, MORNING, minutes_to_close(MORNING, CLOSE))
    assert last_ok.status == "approved"
    for minutes_left in (15, 16):
        signal = review(p, flat(), LIMITS, sector_of, MORNING, minutes_left)
        assert signal.status == ("rejected" if minutes_left == 15 else "approved")
    late = review(p, flat(), LIMITS, sector_of, MORNING, 15)
    assert late.reasons == [
        "session cut-off: 15 minutes to the close, no new entries in the last 15"
    ]
    custom = RiskLimits(no_entry_minutes_before_close=30)
    assert review(p, flat(), custom, sector_of, MORNING, 25).status == "rejected"


def test_max_trades_per_day(features: dict, sector_of: dict) -> None:
    p = proposal(features, "AAPL")
    assert review(p, flat(trades_today=9), LIMITS, sector_of, MORNING, LEFT).status == "approved"
    signal = review(p, flat(trades_today=10), LIMITS, sector_of, MORNING, LEFT)
    assert signal.reasons == ["max trades per day: 10 of 10 used"]


def test_max_open_positions(features: dict, sector_of: dict, px: dict) -> None:
    positions = [
        held(t, 1000, px[t]) for t in ("AAPL", "AMZN", "GOOG", "SPY", "MSFT")
    ]  # 5 open, 5,000 gross, IT 2,000
    state = flat(positions=positions)
    signal = review(proposal(features, "NVDA"), state, LIMITS, sector_of, MORNING, LEFT)
    assert signal.reasons == [
        "max open positions: 5 of 5 open (AAPL, AMZN, GOOG, MSFT, SPY), NVDA would be a new one"
    ]
    # Adding to one of them is not a new position (only its per-position room applies).
    more = review(proposal(features, "AAPL"), state, LIMITS, sector_of, MORNING, LEFT)
    assert more.status == "resized" and more.reasons[0].startswith("per-position limit")


def test_entry_against_an_open_position_is_rejected(
    features: dict, sector_of: dict, px: dict
) -> None:
    state = flat(positions=[held("AAPL", 1000, px["AAPL"])])
    signal = review(proposal(features, "AAPL", "sell"), state, LIMITS, sector_of, MORNING, LEFT)
    assert signal.status == "rejected" and signal.proposed_action == "SELL"
    assert signal.reasons[0].startswith("opposite position: holding +4 AAPL; a sell entry")


def test_every_blocking_reason_is_listed(features: dict, sector_of: dict) -> None:
    state = flat(kill_switch=True, trades_today=12)
    p = proposal(features, "AAPL", ticker="aapl", confidence=1.3)
    signal = review(p, state, LIMITS, sector_of, MORNING, 5)
    assert signal.reasons == [
        "kill switch is on: no new entries",
        "session cut-off: 5 minutes to the close, no new entries in the last 15",
        "max trades per day: 12 of 10 used",
        "ticker 'aapl' does not match ^[A-Z]{1,5}(\\.[A-Z])?$",
        "confidence must be in [0, 1], got 1.3",
    ]


# --- validation ------------------------------------------------------------------------------


def good_signal(**changes: object) -> Signal:
    data = {
        "signal_id": "sig-x",
        "ticker": "AAPL",
        "minute": "2026-03-17T10:30",
        "action": "BUY",
        "proposed_action": "BUY",
        "qty": 7,
        "entry": 254.495,
        "stop": 253.22,
        "take_profit": 257.04,
        "confidence": 0.6,
        "status": "approved",
    }
    data.update(changes)
    return Signal(**data)


def test_validate_accepts_good_signals() -> None:
    assert validate(good_signal()) == []
    assert validate(good_signal(ticker="BRK.B", qty=1)) == []
    assert validate(good_signal(qty=MAX_QTY, confidence=0.0)) == []
    assert validate(good_signal(action="SELL", stop=255.77, take_profit=251.95)) == []


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"ticker": "aapl"}, "ticker 'aapl' does not match"),
        ({"ticker": "GOOGLE"}, "ticker 'GOOGLE' does not match"),
        ({"ticker": "BRK.BB"}, "ticker 'BRK.BB' does not match"),
        ({"ticker": ""}, "ticker '' does not match"),
        ({"qty": 0}, "quantity must be in 1..10000, got 0"),
        ({"qty": 10_001}, "quantity must be in 1..10000, got 10001"),
        ({"qty": -7}, "quantity must be in 1..10000, got -7"),
        ({"entry": 0.0}, "entry must be a positive price, got 0.0"),
        ({"entry": float("inf")}, "entry must be a positive price, got inf"),
        ({"stop": -1.0}, "stop must be a positive price, got -1.0"),
        ({"take_profit": float("nan")}, "take-profit must be a positive price, got nan"),
        ({"stop": 255.0}, "a buy needs stop < entry < take-profit, got stop 255.0000"),
        ({"take_profit": 254.0}, "a buy needs stop < entry < take-profit"),
        ({"stop": 254.495}, "a buy needs stop < entry < take-profit"),
        ({"action": "SELL"}, "a sell needs take-profit < entry < stop"),
        ({"confidence": 1.01}, "confidence must be in [0, 1], got 1.01"),
        ({"confidence": -0.1}, "confidence must be in [0, 1], got -0.1"),
        ({"confidence": float("nan")}, "confidence must be in [0, 1], got nan"),
    ],
)
def test_validate_rejects(changes: dict, problem: str) -> None:
    problems = validate(good_signal(**changes))
    assert len(problems) == 1 and problems[0].startswith(problem)


def test_validate_hold_checks_only_ticker_and_confidence() -> None:
    hold = good_signal(action="HOLD", qty=0, stop=math.nan, take_profit=math.nan)
    assert validate(hold) == []
    assert len(validate(hold.model_copy(update={"ticker": "x", "confidence": 2.0}))) == 2


def test_bad_proposals_become_rejected_signals(features: dict, sector_of: dict) -> None:
    cases = {
        "requested quantity must be in 1..10000, got 0": {"qty": 0},
        "requested quantity must be in 1..10000, got 10001": {"qty": 10_001},
        "entry must be a positive price, got -5.0": {"entry": -5.0},
        "ticker 'TOOLONG' does not match": {"ticker": "TOOLONG"},
        "confidence must be in [0, 1], got -0.2": {"confidence": -0.2},
    }
    for problem, changes in cases.items():
        signal = review(
            proposal(features, "AAPL", **changes), flat(), LIMITS, sector_of, MORNING, LEFT
        )
        assert signal.status == "rejected" and signal.qty == 0, problem
        assert len(signal.reasons) == 1 and signal.reasons[0].startswith(problem)
    # A take-profit at or below zero (a short with a huge stop) is a bad price, not a crash.
    wild = proposal(features, "AAPL", "sell", atr=100.0)
    signal = review(wild, flat(), LIMITS, sector_of, MORNING, LEFT)
    assert signal.reasons[0].startswith("take-profit must be a positive price")


# --- ids and determinism ---------------------------------------------------------------------


def test_signal_ids_are_stable() -> None:
    a = signal_id("AAPL", MORNING, "buy", "rules-1")
    assert a == signal_id("AAPL", "2026-03-17T10:30", "BUY", "rules-1")
    assert a == signal_id("AAPL", datetime(2026, 3, 17, 14, 30, tzinfo=UTC), "buy", "rules-1")
    assert a == "sig-" + a[4:] and len(a) == 28
    others = {
        signal_id("AAPL", MORNING, "sell", "rules-1"),
        signal_id("MSFT", MORNING, "buy", "rules-1"),
        signal_id("AAPL", MORNING + timedelta(minutes=1), "buy", "rules-1"),
        signal_id("AAPL", MORNING, "buy", "gpt-4o-mini"),
    }
    assert a not in others and len(others) == 4


def test_rerun_gives_identical_signals(features: dict, sector_of: dict) -> None:
    proposals = [proposal(features, t, confidence=0.5) for t in ("AAPL", "MSFT", "TSLA")]
    first = review_batch(proposals, flat(), LIMITS, sector_of, MORNING, LEFT)
    again = review_batch(list(reversed(proposals)), flat(), LIMITS, sector_of, MORNING, LEFT)
    assert first == again
    assert [s.signal_id for s in first] == [
        signal_id(t, MORNING, "buy", "rules-1") for t in ("AAPL", "MSFT", "TSLA")
    ]


# --- batches ---------------------------------------------------------------------------------


def exposure(signals: list[Signal]) -> tuple[float, dict[str, float]]:
    sectors: dict[str, float] = {}
    for s in signals:
        sectors[s.sector] = sectors.get(s.sector, 0.0) + s.qty * s.entry
    return sum(sectors.values()), sectors


def test_batch_cannot_break_limits_together(features: dict, sector_of: dict) -> None:
    """Nine real tickers at 10:30, all BUY: alone each would be approved at 2 %."""
    confidence = {
        "NVDA": 0.9, "MSFT": 0.85, "AAPL": 0.8, "META": 0.75, "AMZN": 0.7,
        "TSLA": 0.65, "GOOG": 0.6, "SPY": 0.55, "QQQ": 0.5,
    }  # fmt: skip
    proposals = [proposal(features, t, confidence=c) for t, c in confidence.items()]
    for p in proposals:
        assert review(p, flat(), LIMITS, sector_of, MORNING, LEFT).status == "approved"
    state = flat()
    signals = review_batch(reversed(proposals), state, LIMITS, sector_of, MORNING, LEFT)
    assert [s.ticker for s in signals] == list(confidence)  # highest confidence first
    traded = [s for s in signals if s.status != "rejected"]
    total, sectors = exposure(traded)
    assert total <= 0.10 * EQUITY and all(v <= 0.05 * EQUITY for v in sectors.values())
    assert len(traded) <= LIMITS.max_open_positions
    by = {s.ticker: s for s in signals}
    # Two IT names at 2 % leave 1 % of the 5 % IT budget for AAPL: resized with the sector reason.
    assert by["NVDA"].status == by["MSFT"].status == "approved"
    assert (
        by["AAPL"].status == "resized"
        and "sector limit (Information Technology)" in (by["AAPL"].reasons[0])
    )
    # Five positions are open after AMZN: everything after it is rejected for that.
    assert [s.ticker for s in traded] == ["NVDA", "MSFT", "AAPL", "META", "AMZN"]
    for t in ("TSLA", "GOOG", "SPY", "QQQ"):
        assert by[t].status == "rejected"
        assert by[t].reasons[0].startswith("max open positions: 5 of 5 open")
    assert state == flat()  # the caller's state is not modified


def test_batch_counts_trades_per_day(features: dict, sector_of: dict) -> None:
    proposals = [proposal(features, t, confidence=0.5) for t in ("AMZN", "GOOG", "SPY")]
    signals = review_batch(proposals, flat(trades_today=8), LIMITS, sector_of, MORNING, LEFT)
    assert [s.status for s in signals] == ["approved", "approved", "rejected"]
    assert signals[2].reasons == ["max trades per day: 10 of 10 used"]


def test_batch_total_exposure_resize(features: dict, sector_of: dict, px: dict) -> None:
    limits = RiskLimits(max_total_exposure_pct=0.05, max_sector_exposure_pct=0.05)
    proposals = [
        proposal(features, "AMZN", confidence=0.9),
        proposal(features, "GOOG", confidence=0.8),
        proposal(features, "SPY", confidence=0.7),
    ]
    signals = review_batch(proposals, flat(), limits, sector_of, MORNING, LEFT)
    assert [s.status for s in signals] == ["approved", "approved", "resized"]
    used = sum(s.qty * s.entry for s in signals[:2])
    assert signals[2].qty == math.floor((5000 - used) / px["SPY"])
    assert signals[2].reasons[0].startswith("total exposure limit: 5.0% of equity is 5,000.00")


def test_batch_duplicates_and_opposite_sides(features: dict, sector_of: dict) -> None:
    buy = proposal(features, "AAPL", confidence=0.7)
    sell = proposal(features, "AAPL", "sell", confidence=0.6)
    signals = review_batch([buy, buy, sell], flat(), LIMITS, sector_of, MORNING, LEFT)
    assert [s.status for s in signals] == ["approved", "rejected", "rejected"]
    assert signals[1].reasons == [
        f"duplicate proposal: signal {signals[0].signal_id} already reviewed"
    ]
    assert signals[2].reasons[0].startswith("opposite position: holding +7 AAPL")


def test_batch_short_entries_and_cash(features: dict, sector_of: dict) -> None:
    """Shorts use exposure but their proceeds are not spendable cash for later buys."""
    state = PortfolioState(equity=EQUITY, cash=2_500.0)
    proposals = [
        proposal(features, "TSLA", "sell", confidence=0.9),
        proposal(features, "AMZN", confidence=0.8),
        proposal(features, "GOOG", confidence=0.7),
    ]
    signals = review_batch(proposals, state, LIMITS, sector_of, MORNING, LEFT)
    tsla, amzn, goog = signals
    assert (tsla.action, tsla.status) == ("SELL", "approved")
    assert amzn.status == "approved" and amzn.qty * amzn.entry <= 2_000
    assert goog.status == "resized" and goog.reasons[0].startswith("cash: ")
    assert goog.qty * goog.entry <= 2_500 - amzn.qty * amzn.entry


def test_apply_fill_averages_a_same_side_add(sector_of: dict) -> None:
    state = flat(positions=[Position(ticker="AAPL", qty=4, avg_price=250.0)])
    sig = good_signal(qty=3, entry=254.0)
    after = apply_fill(state, sig, sector_of)
    pos = after.position("AAPL")
    assert (
        pos is not None and pos.qty == 7 and pos.avg_price == pytest.approx((4 * 250 + 3 * 254) / 7)
    )
    assert after.cash == pytest.approx(EQUITY - 762.0) and after.trades_today == 1
    assert state.position("AAPL").qty == 4  # type: ignore[union-attr]
    rejected = good_signal(action="HOLD", qty=0, status="rejected")
    assert apply_fill(state, rejected, sector_of) is state
