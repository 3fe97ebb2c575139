"""From debate verdicts to stored trade signals, and the checks that guard them.

The technical rows are the rules technical analyst's output on the bundled real bars of
2026-03-16/17 (its features JSON carries the real close and 1-minute ATR); the debate rows are
shaped like the judge's (DEBATE_COLUMNS). Expected prices are read back from those stored
features, and sizes from the documented limits (2 % per position, 10 % total, 5 % per sector),
never copied from a previous run. The hostile rows start from a valid frame the risk manager
wrote and break one rule each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pandas as pd
import pytest

from resources.broker import OrderState
from resources.market_data import MarketDataResource
from tests.real_bars import bundled_bars
from trading_assets.agents.runner import run_analyst
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.analysts.team import SPECS
from trading_assets.analysts.technical import technical_features
from trading_assets.checks.decision import ledger_problems, signal_problems
from trading_assets.decision.risk import PortfolioState, Position, RiskLimits
from trading_assets.decision.signals import (
    SIGNAL_COLUMNS,
    actionable,
    batch_id,
    minute_signals,
    proposals_by_minute,
    signal_frame,
)
from trading_assets.execution.ledger import ledger_frame, sent_row, unsent_row
from trading_assets.research.protocol import DEBATE_COLUMNS
from trading_assets.schemas import conform, empty_frame

M1 = pd.Timestamp("2026-03-17 10:30")
M2 = pd.Timestamp("2026-03-17 10:31")
LATE = pd.Timestamp("2026-03-17 15:50")  # 9 minutes to the close after its bar: no entries
CLOSE = pd.Timestamp("2026-03-17 16:00")
STOCKS = ["AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA", "TSLA"]
EQUITY = 100_000.0
LIMITS = RiskLimits()
CAP = LIMITS.max_total_exposure_pct  # 10 % of equity, the check's cap
FLAT = PortfolioState(equity=EQUITY, cash=EQUITY)


@pytest.fixture(scope="module")
def technical() -> pd.DataFrame:
    """technical_analysis rows (ANALYSIS_COLUMNS) for the stocks at M1, M2 and LATE."""
    bars = bundled_bars()
    bars = bars[(bars["minute"] >= "2026-03-16") & (bars["minute"] <= LATE)]
    feats = technical_features(bars, pd.DatetimeIndex([M1, M2, LATE]))
    feats = feats[feats["ticker"].isin(STOCKS)]
    return run_analyst(SPECS["technical"], feats.to_dict("records"))


@pytest.fixture(scope="module")
def sectors() -> dict[str, str]:
    return MarketDataResource().sectors()


def stored(technical: pd.DataFrame, ticker: str, minute: pd.Timestamp) -> dict:
    """The features JSON the technical analyst stored for one ticker-minute."""
    row = technical[(technical["ticker"] == ticker) & (technical["minute"] == minute)]
    assert len(row) == 1
    return json.loads(row["features"].iloc[0])


def verdict(ticker: str, action: str = "BUY", minute: pd.Timestamp = M1, **changes) -> dict:
    """One `debate` row as the rules judge writes it (DEBATE_COLUMNS)."""
    stance = {"BUY": "bullish", "SELL": "bearish"}.get(action, "neutral")
    row = {
        "minute": minute,
        "ticker": ticker,
        "debated": True,
        "action": action,
        "stance": stance,
        "confidence": 0.62,
        "horizon_minutes": 30,
        "consensus": "moderate",
        "rationale": f"the analysts lean {stance}",
        "hold_reason": "",
        "trigger_reasons": "[]",
        "rounds": 1,
        "transcript": "[]",
        "cited_events": "[]",
        "consistent": True,
        "model": RULES_MODEL,
        "prompt_hash": "",
        "input_tokens": 0,
        "output_tokens": 0,
        "cached": False,
        "fallback": False,
        "fallback_reason": "",
        "calls": 3,
        "data_as_of": minute,
    }
    return row | changes


def debate(*rows: dict) -> pd.DataFrame:
    if not rows:
        return empty_frame(DEBATE_COLUMNS)
    return conform(pd.DataFrame(list(rows)), DEBATE_COLUMNS)


def decide(
    technical: pd.DataFrame,
    sectors: dict[str, str],
    rows: list[dict],
    state: PortfolioState = FLAT,
    minute: pd.Timestamp = M1,
    source: str = "ledger",
) -> pd.DataFrame:
    """The trade_signals rows of one minute: proposals -> risk review -> SIGNAL_COLUMNS."""
    proposals = proposals_by_minute(debate(*rows), technical).get(minute, [])
    signals = minute_signals(proposals, state, LIMITS, sectors, minute, CLOSE)
    return signal_frame(signals, state, source)


# --- proposals ---------------------------------------------------------------------------------


def test_buy_and_sell_verdicts_are_priced_from_the_stored_features(technical: pd.DataFrame) -> None:
    rows = [verdict("NVDA", "BUY", M2), verdict("AAPL", "BUY"), verdict("TSLA", "SELL")]
    out = proposals_by_minute(debate(*rows), technical)
    assert list(out) == [M1, M2]  # in time order, whatever the row order
    got = {(p.ticker, pd.Timestamp(p.minute)): p for ps in out.values() for p in ps}
    assert set(got) == {("AAPL", M1), ("TSLA", M1), ("NVDA", M2)}
    for (ticker, minute), p in got.items():
        features = stored(technical, ticker, minute)
        assert p.entry == features["close"] and p.atr == features["atr_14"]
        assert p.entry > 0 and p.atr > 0  # real bars: a price and a volatility
    assert (got["AAPL", M1].side, got["TSLA", M1].side) == ("buy", "sell")


def test_each_minute_uses_its_own_close(technical: pd.DataFrame) -> None:
    out = proposals_by_minute(debate(verdict("AAPL"), verdict("AAPL", minute=M2)), technical)
    assert out[M1][0].entry == stored(technical, "AAPL", M1)["close"]
    assert out[M2][0].entry == stored(technical, "AAPL", M2)["close"]


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "HOLD"},
        {"debated": False},  # not debated: whatever its action column says
        {"debated": False, "action": "HOLD", "hold_reason": "no trigger"},
        {"consistent": False},  # the judge contradicted its own stance
    ],
    ids=["hold", "undebated", "undebated-hold", "inconsistent"],
)
def test_nothing_is_proposed_for_verdicts_without_a_trade(
    technical: pd.DataFrame, changes: dict
) -> None:
    rows = [verdict("AAPL"), verdict("MSFT", **changes)]
    out = proposals_by_minute(debate(*rows), technical)
    assert [p.ticker for p in out[M1]] == ["AAPL"]
    assert proposals_by_minute(debate(verdict("MSFT", **changes)), technical) == {}


def test_an_empty_debate_proposes_nothing(technical: pd.DataFrame) -> None:
    assert proposals_by_minute(debate(), technical) == {}


def test_a_verdict_without_a_price_is_rejected_not_lost(
    technical: pd.DataFrame, sectors: dict[str, str]
) -> None:
    no_aapl = technical[technical["ticker"] != "AAPL"]
    (p,) = proposals_by_minute(debate(verdict("AAPL")), no_aapl)[M1]
    assert math.isnan(p.entry)
    signals = minute_signals([p], FLAT, LIMITS, sectors, M1, CLOSE)
    frame = signal_frame(signals, FLAT, "ledger")
    row = frame.iloc[0]
    assert (row["status"], row["action"], row["qty"]) == ("rejected", "HOLD", 0)
    assert any("entry must be a positive price" in r for r in json.loads(row["reasons"]))
    assert actionable(frame).empty


# --- signals -----------------------------------------------------------------------------------


def test_signal_rows_follow_the_contract_and_the_limits(
    technical: pd.DataFrame, sectors: dict[str, str]
) -> None:
    frame = decide(technical, sectors, [verdict("AAPL"), verdict("TSLA", "SELL", confidence=0.5)])
    assert dict(frame.dtypes.astype(str)) == SIGNAL_COLUMNS
    assert list(frame["ticker"]) == ["AAPL", "TSLA"]  # highest confidence reviewed first
    for row in frame.to_dict("records"):
        close = stored(technical, row["ticker"], M1)["close"]
        assert row["status"] == "approved" and json.loads(row["reasons"]) == []
        assert row["action"] == row["proposed_action"]
        assert row["entry"] == close and row["minute"] == M1
        # the standard size: as many whole shares as 2 % of equity buys
        budget = EQUITY * LIMITS.max_position_pct
        assert row["qty"] * close <= budget < (row["qty"] + 1) * close
        if row["action"] == "BUY":
            assert row["stop"] < close < row["take_profit"]
        else:
            assert row["take_profit"] < close < row["stop"]
        risk, reward = abs(close - row["stop"]), abs(row["take_profit"] - close)
        assert reward == pytest.approx(2 * risk, abs=0.011)  # 2:1 within a tick
        assert row["sector"] == sectors[row["ticker"]]
        assert (row["portfolio_source"], row["equity"], row["open_positions"]) == (
            "ledger",
            EQUITY,
            0,
        )
        assert row["signal_id"].startswith("sig-")
    assert signal_problems(frame, CAP) == []  # the check passes what the risk manager wrote
    again = decide(technical, sectors, [verdict("TSLA", "SELL", confidence=0.5), verdict("AAPL")])
    assert list(again["signal_id"]) == list(frame["signal_id"])  # a re-decided minute: same ids


def test_a_crowded_minute_stays_within_total_and_sector_exposure(
    technical: pd.DataFrame, sectors: dict[str, str]
) -> None:
    frame = decide(technical, sectors, [verdict(t) for t in STOCKS])
    live = actionable(frame)
    assert len(live) < len(STOCKS)  # 7 x 2 % fits neither 10 % nor 5 positions
    assert (live["qty"] * live["entry"]).sum() <= EQUITY * CAP
    per_sector = (live["qty"] * live["entry"]).groupby(live["sector"]).sum()
    assert (per_sector <= EQUITY * LIMITS.max_sector_exposure_pct).all()
    cut = frame[frame["status"] != "approved"]
    assert len(cut) > 0
    for row in cut.itertuples():
        reasons = json.loads(row.reasons)
        limits = ("total exposure limit", "sector limit", "max open positions")
        assert any(name in r for r in reasons for name in limits), reasons
        if row.status == "rejected":
            assert (row.action, row.qty) == ("HOLD", 0)
    assert signal_problems(frame, CAP) == []


@pytest.mark.parametrize(
    ("state", "minute", "why"),
    [
        (FLAT.model_copy(update={"kill_switch": True}), M1, "kill switch is on"),
        (FLAT, LATE, "session cut-off"),
        (FLAT.model_copy(update={"trades_today": 10}), M1, "max trades per day"),
        (
            FLAT.model_copy(
                update={"consecutive_losses": 3, "last_loss_at": M1 - pd.Timedelta(minutes=20)}
            ),
            M1,
            "3 consecutive losses",
        ),
        (
            FLAT.model_copy(
                update={
                    "realised_pnl_today": -2_500.0,
                    "day_start_equity": EQUITY,
                    "last_loss_at": M1 - pd.Timedelta(minutes=5),
                }
            ),
            M1,
            "realised loss today",
        ),
        (
            FLAT.model_copy(
                update={"positions": [Position(ticker=t, qty=1, avg_price=100.0) for t in "VWXYZ"]}
            ),
            M1,
            "max open positions",
        ),
    ],
    ids=["kill-switch", "cut-off", "trades-per-day", "loss-streak", "daily-loss", "open-positions"],
)
def test_blocked_proposals_hold_with_qty_0_and_say_why(
    technical: pd.DataFrame,
    sectors: dict[str, str],
    state: PortfolioState,
    minute: pd.Timestamp,
    why: str,
) -> None:
    rows = [verdict("AAPL", minute=minute), verdict("TSLA", "SELL", minute=minute)]
    frame = decide(technical, sectors, rows, state, minute)
    assert dict(frame.dtypes.astype(str)) == SIGNAL_COLUMNS
    assert len(frame) == 2
    for row in frame.to_dict("records"):
        assert (row["status"], row["action"], row["qty"]) == ("rejected", "HOLD", 0)
        assert row["proposed_action"] in ("BUY", "SELL")  # what was asked is kept
        reasons = json.loads(row["reasons"])
        assert isinstance(reasons, list) and any(why in r for r in reasons), reasons
    assert actionable(frame).empty
    assert signal_problems(frame, CAP) == []


def test_open_positions_counts_only_non_flat_positions(
    technical: pd.DataFrame, sectors: dict[str, str]
) -> None:
    state = FLAT.model_copy(
        update={
            "positions": [
                Position(ticker="MSFT", qty=3, avg_price=390.0),
                Position(ticker="META", qty=0, avg_price=600.0),
            ]
        }
    )
    frame = decide(technical, sectors, [verdict("AAPL")], state, source="broker")
    assert (frame["open_positions"].iloc[0], frame["portfolio_source"].iloc[0]) == (1, "broker")


# --- batch id ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def batch(technical: pd.DataFrame, sectors: dict[str, str]) -> pd.DataFrame:
    """Two approved signals and one rejected (opposite to an open position) at M1."""
    state = FLAT.model_copy(
        update={"positions": [Position(ticker="NVDA", qty=-5, avg_price=180.0)]}
    )
    rows = [verdict("AAPL"), verdict("TSLA", "SELL", confidence=0.5), verdict("NVDA")]
    frame = decide(technical, sectors, rows, state)
    assert sorted(frame["status"]) == ["approved", "approved", "rejected"]
    return frame


def test_batch_id_does_not_depend_on_row_order(batch: pd.DataFrame) -> None:
    shuffled = batch.sample(frac=1.0, random_state=7).reset_index(drop=True)
    assert batch_id(shuffled) == batch_id(batch) == batch_id(batch.iloc[::-1])


def test_batch_id_changes_when_a_size_changes(batch: pd.DataFrame) -> None:
    smaller = batch.copy()
    buy = smaller.index[smaller["action"] == "BUY"][0]
    smaller.loc[buy, "qty"] -= 1
    assert batch_id(smaller) != batch_id(batch)


def test_batch_id_ignores_hold_rows(batch: pd.DataFrame) -> None:
    holds = batch["action"] == "HOLD"
    assert batch_id(batch[~holds]) == batch_id(batch)
    only_holds = batch[holds]
    assert batch_id(only_holds) == batch_id(signal_frame([], None, "ledger"))
    assert batch_id(only_holds) != batch_id(batch)


def test_batch_ids_differ_between_minutes(technical: pd.DataFrame, sectors: dict[str, str]) -> None:
    first = decide(technical, sectors, [verdict("AAPL")])
    second = decide(technical, sectors, [verdict("AAPL", minute=M2)], minute=M2)
    assert batch_id(first) != batch_id(second)


# --- the trade_signals check on hostile rows ---------------------------------------------------


def _set(column: str, value: object, action: str = "BUY") -> Callable[[pd.DataFrame], str]:
    """Break one row (the first with `action`): its signal id, for the message."""

    def change(frame: pd.DataFrame) -> str:
        i = frame.index[frame["action"] == action][0]
        frame[column] = frame[column].astype(object)
        frame.loc[i, column] = value
        return str(frame.loc[i, "signal_id"])

    return change


def _stop_above_entry(frame: pd.DataFrame) -> str:
    i = frame.index[frame["action"] == "BUY"][0]
    frame.loc[i, "stop"] = frame.loc[i, "entry"] + 0.5
    return str(frame.loc[i, "signal_id"])


def _target_above_entry_on_a_sell(frame: pd.DataFrame) -> str:
    i = frame.index[frame["action"] == "SELL"][0]
    frame.loc[i, "take_profit"] = frame.loc[i, "entry"] * 1.01
    return str(frame.loc[i, "signal_id"])


def _resized_without_reason(frame: pd.DataFrame) -> str:
    i = frame.index[frame["action"] == "BUY"][0]
    frame.loc[i, "status"] = "resized"
    return str(frame.loc[i, "signal_id"])


@pytest.mark.parametrize(
    ("breaks", "message"),
    [
        (_set("entry", math.nan), "entry must be a positive price, got nan"),
        (_set("stop", math.nan), "stop must be a positive price, got nan"),
        (_set("take_profit", math.nan, "SELL"), "take-profit must be a positive price, got nan"),
        (_set("entry", -1.0, "SELL"), "entry must be a positive price, got -1.0"),
        (_set("qty", 0), "quantity must be in 1..10000, got 0"),
        (_set("qty", 20_000, "SELL"), "quantity must be in 1..10000, got 20000"),
        (_stop_above_entry, "a buy needs stop < entry < take-profit"),
        (_target_above_entry_on_a_sell, "a sell needs take-profit < entry < stop"),
        (_set("confidence", 1.5), "confidence must be in [0, 1], got 1.5"),
        (_set("confidence", math.nan, "HOLD"), "confidence must be in [0, 1], got nan"),
        (_set("action", "BUY", "HOLD"), "rejected but action BUY qty 0"),
        (_set("qty", 3, "HOLD"), "rejected but action HOLD qty 3"),
        (_set("reasons", "[]", "HOLD"), "rejected without a reason"),
        (_resized_without_reason, "resized without a reason"),
        (_set("action", "SELL"), "action SELL differs from the proposal"),
        (_set("ticker", "aapl"), "ticker 'aapl' does not match"),
        (_set("reasons", "not json"), "reasons is not a JSON list"),
        (_set("action", "buy"), "not a valid signal row (action:"),
        (_set("status", None, "SELL"), "not a valid signal row (status:"),
        (_set("reasons", '{"cut": 1}'), "not a valid signal row (reasons:"),
    ],
    ids=[
        "nan-entry",
        "nan-stop",
        "nan-take-profit",
        "negative-entry",
        "qty-0-on-a-buy",
        "qty-above-max",
        "stop-above-entry-on-a-buy",
        "target-above-entry-on-a-sell",
        "confidence-1.5",
        "confidence-nan",
        "rejected-with-action-buy",
        "rejected-with-a-size",
        "rejected-without-reason",
        "resized-without-reason",
        "action-not-proposed",
        "lowercase-ticker",
        "reasons-not-json",
        "unknown-action",
        "null-status",
        "reasons-an-object",
    ],
)
def test_a_broken_signal_row_is_reported_by_its_id(
    batch: pd.DataFrame, breaks: Callable[[pd.DataFrame], str], message: str
) -> None:
    frame = batch.copy()
    sid = breaks(frame)
    problems = signal_problems(frame, CAP)
    assert any(sid in p and message in p for p in problems), problems
    others = set(batch["signal_id"]) - {sid}
    assert not [p for p in problems if any(o in p for o in others)]  # no one else is blamed


def test_duplicate_signal_ids_are_reported(batch: pd.DataFrame) -> None:
    frame = pd.concat([batch, batch.iloc[[0]]], ignore_index=True)
    sid = batch["signal_id"].iloc[0]
    assert signal_problems(frame, CAP) == [f"1 duplicate signal ids (e.g. {sid})"]


def test_new_exposure_above_the_cap_is_reported_for_its_minute(batch: pd.DataFrame) -> None:
    frame = batch.copy()
    buy = frame.index[frame["action"] == "BUY"][0]
    frame.loc[buy, "qty"] = math.ceil(EQUITY * CAP / frame.loc[buy, "entry"])  # alone > 10 %
    (problem,) = signal_problems(frame, CAP)
    assert str(M1) in problem and "above the cap 10,000.00" in problem
    # the same size is fine under a looser cap
    assert signal_problems(frame, 0.5) == []


def test_an_empty_frame_has_no_problems() -> None:
    empty = signal_frame([], None, "ledger")
    assert signal_problems(empty, CAP) == []
    assert ledger_problems(empty, ledger_frame([])) == []


# --- the broker_orders check -------------------------------------------------------------------

NOW = pd.Timestamp("2026-03-17 14:31:05", tz="UTC")  # 10:31:05 New York


def _order(signal: dict, qty: int) -> OrderState:
    """The broker's accepted bracket entry for `signal` (not filled yet)."""
    return OrderState(
        id=f"order-{signal['ticker']}",
        client_order_id=signal["signal_id"],
        symbol=signal["ticker"],
        side="buy" if signal["action"] == "BUY" else "sell",
        qty=float(qty),
        status="accepted",
        type="market",
        order_class="bracket",
        filled_qty=0.0,
        filled_avg_price=None,
        submitted_at=NOW,
        filled_at=None,
        limit_price=None,
        stop_price=None,
    )


def ledger_for(signals: pd.DataFrame) -> pd.DataFrame:
    """What the execution op records: actionable signals sent, the rest not sent."""
    rows = []
    for s in signals.to_dict("records"):
        if s["action"] == "HOLD":
            rows.append(unsent_row(s, "not_sent", "risk manager: " + s["reasons"], "test", NOW))
        else:
            rows.append(sent_row(s, _order(s, s["qty"]), "test", NOW, attempts=1))
    return ledger_frame(rows)


def test_a_faithful_ledger_has_no_problems(batch: pd.DataFrame) -> None:
    ledger = ledger_for(batch)
    assert sorted(ledger["state"]) == ["not_sent", "submitted", "submitted"]
    assert ledger_problems(batch, ledger) == []


def test_an_order_sent_for_a_holding_signal_is_reported(batch: pd.DataFrame) -> None:
    ledger = ledger_for(batch)
    hold = batch[batch["action"] == "HOLD"].iloc[0]
    i = ledger.index[ledger["signal_id"] == hold["signal_id"]][0]
    ledger.loc[i, ["state", "broker_order_id"]] = ["submitted", "order-x"]
    assert ledger_problems(batch, ledger) == [
        f"{hold['signal_id']}: an order was sent for a signal that holds"
    ]


def test_a_signal_without_a_ledger_row_is_reported(batch: pd.DataFrame) -> None:
    ledger = ledger_for(batch)
    lost = ledger["signal_id"].iloc[0]
    (problem,) = ledger_problems(batch, ledger.iloc[1:])
    assert problem == f"1 signals without a ledger row (e.g. {lost})"


def test_a_size_different_from_the_signal_is_reported(batch: pd.DataFrame) -> None:
    ledger = ledger_for(batch)
    sid = batch[batch["action"] == "SELL"]["signal_id"].iloc[0]
    asked = int(batch[batch["signal_id"] == sid]["qty"].iloc[0])
    i = ledger.index[ledger["signal_id"] == sid][0]
    ledger.loc[i, "qty"] = asked + 4
    assert ledger_problems(batch, ledger) == [
        f"{sid}: sent {asked + 4} shares, the signal asked {asked}"
    ]


def test_a_signal_recorded_twice_is_reported(batch: pd.DataFrame) -> None:
    ledger = ledger_for(batch)
    twice = pd.concat([ledger, ledger.iloc[[1]]], ignore_index=True)
    sid = ledger["signal_id"].iloc[1]
    assert ledger_problems(batch, twice) == [f"1 signals recorded twice (e.g. {sid})"]
