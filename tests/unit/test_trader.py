"""The trading agent's proposals from debate rows and real technical features."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pandas as pd
import pytest

from tests.real_bars import bundled_bars
from trading_assets.analysts.report import RULES_MODEL
from trading_assets.analysts.technical import technical_features
from trading_assets.decision.risk import PortfolioState, RiskLimits, review
from trading_assets.decision.trader import Proposal, iso_minute, propose

MINUTE = pd.Timestamp("2026-03-17 10:30")


@pytest.fixture(scope="module")
def features() -> dict[str, dict]:
    """Real features at 10:30 on 2026-03-17, from that session and the one before."""
    bars = bundled_bars()
    bars = bars[(bars["minute"] >= "2026-03-16") & (bars["minute"] <= MINUTE)]
    feats = technical_features(bars, pd.DatetimeIndex([MINUTE]))
    return {row["ticker"]: row for row in feats.to_dict("records")}


def debate_row(ticker: str, action: str = "BUY", **changes: object) -> dict[str, object]:
    """A `debate` row (DEBATE_COLUMNS) as the rules judge writes it."""
    stance = {"BUY": "bullish", "SELL": "bearish"}.get(action, "neutral")
    row: dict[str, object] = {
        "minute": MINUTE,
        "ticker": ticker,
        "debated": True,
        "action": action,
        "stance": stance,
        "confidence": 0.62,
        "horizon_minutes": 30,
        "consensus": "moderate",
        "rationale": "net +0.31 > 0.20: technical and sentiment lean bullish",
        "hold_reason": "",
        "consistent": True,
        "model": RULES_MODEL,
    }
    row.update(changes)
    return row


def test_buy_is_a_long_entry_at_the_close(features: dict[str, dict]) -> None:
    f = features["AAPL"]
    p = propose(debate_row("AAPL"), f)
    assert isinstance(p, Proposal)
    assert (p.ticker, p.minute, p.side, p.action) == ("AAPL", "2026-03-17T10:30", "buy", "BUY")
    assert p.entry == f["close"] and p.atr == f["atr_14"]
    assert 200 < p.entry < 300 and 0 < p.atr < 1  # real AAPL close and 1-minute ATR
    assert (p.confidence, p.horizon_minutes, p.model) == (0.62, 30, RULES_MODEL)
    assert (p.stance, p.consensus, p.qty) == ("bullish", "moderate", None)
    assert "long entry" in p.rationale and "next bar's open" in p.rationale
    assert "technical and sentiment lean bullish" in p.rationale


def test_sell_is_a_short_entry(features: dict[str, dict]) -> None:
    p = propose(debate_row("TSLA", "SELL", confidence=0.4), features["TSLA"])
    assert p is not None
    assert (p.side, p.action, p.stance) == ("sell", "SELL", "bearish")
    assert p.entry == features["TSLA"]["close"]
    assert "short entry" in p.rationale


@pytest.mark.parametrize(
    "changes",
    [
        {"action": "HOLD"},
        {"debated": False, "action": "HOLD", "hold_reason": "no trigger"},
        {"debated": False},  # not debated: whatever the action column says
        {"consistent": False},  # a self-contradicting verdict is never acted on
    ],
)
def test_nothing_to_trade_proposes_nothing(features: dict[str, dict], changes: dict) -> None:
    assert propose(debate_row("MSFT", **{"action": "BUY", **changes}), features["MSFT"]) is None


def test_unknown_action_is_an_error(features: dict[str, dict]) -> None:
    with pytest.raises(ValueError, match="unknown debate action"):
        propose(debate_row("MSFT", action="SHORT"), features["MSFT"])


def test_features_of_another_ticker_or_minute_are_refused(features: dict[str, dict]) -> None:
    with pytest.raises(ValueError, match="features are for MSFT"):
        propose(debate_row("AAPL"), features["MSFT"])
    later = {**features["AAPL"], "minute": MINUTE + pd.Timedelta(minutes=1)}
    with pytest.raises(ValueError, match="features are at 2026-03-17T10:31"):
        propose(debate_row("AAPL"), later)


def test_missing_price_is_proposed_and_then_rejected_with_the_reason() -> None:
    p = propose(debate_row("AAPL"), None)
    assert p is not None and math.isnan(p.entry) and p.atr is None
    assert "no close this minute" in p.rationale
    state = PortfolioState(equity=100_000.0, cash=100_000.0)
    signal = review(p, state, RiskLimits(), {}, MINUTE.to_pydatetime(), 300)
    assert signal.status == "rejected" and signal.qty == 0 and signal.action == "HOLD"
    assert signal.reasons == ["entry must be a positive price, got nan"]


def test_missing_or_zero_atr_is_none(features: dict[str, dict]) -> None:
    for atr in (float("nan"), None, 0.0):
        p = propose(debate_row("AAPL"), {**features["AAPL"], "atr_14": atr})
        assert p is not None and p.atr is None


def test_pandas_series_row_and_minute_spellings(features: dict[str, dict]) -> None:
    """A DataFrame row works as well as a dict, and every spelling of a minute is one minute."""
    frame = pd.DataFrame([debate_row("NVDA")])
    from_series = propose(frame.iloc[0], pd.Series(features["NVDA"]))
    aware = datetime(2026, 3, 17, 14, 30, tzinfo=UTC)  # 10:30 New York (EDT)
    from_aware = propose(debate_row("NVDA", minute=aware), features["NVDA"])
    from_text = propose(debate_row("NVDA", minute="2026-03-17 10:30:00"), features["NVDA"])
    assert from_series == from_aware == from_text
    assert iso_minute(aware) == "2026-03-17T10:30"
