"""The macro analyst's regime features and rules view on the bundled real bars."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.analysts.macro import (
    MACRO_INSTRUCTIONS,
    macro_facts,
    macro_features,
    macro_report,
)
from trading_assets.analysts.report import AnalystReport, Stance, stance_of
from trading_assets.partitions import session_minutes

DAY = pd.Timestamp("2026-03-17")
STOCKS = ("AAPL", "AMZN", "GOOG", "META", "MSFT", "NVDA", "TSLA")


@pytest.fixture(scope="module")
def day_bars() -> pd.DataFrame:
    bars = bundled_bars()
    minutes = session(DAY)
    earlier = bars.loc[bars["minute"] < minutes[0], "minute"].drop_duplicates()
    start = earlier.nlargest(200).min()  # the asset reads 200 minutes of history
    return bars[(bars["minute"] >= start) & (bars["minute"] <= minutes[-1])].reset_index(drop=True)


def session(day: pd.Timestamp) -> pd.DatetimeIndex:
    day_text = day.strftime("%Y-%m-%d")
    return session_minutes(day_text, day_text)


@pytest.fixture(scope="module")
def day(day_bars: pd.DataFrame) -> pd.DataFrame:
    return macro_features(day_bars, session(DAY), STOCKS)


def test_one_row_per_minute_with_bounded_measures(day: pd.DataFrame) -> None:
    assert day["minute"].tolist() == session(DAY).tolist()
    assert day["breadth_above_vwap"].between(0, 1).all()
    assert day["breadth_up"].between(0, 1).all()
    assert (day["breadth_n"] == len(STOCKS)).all()
    # The regime follows the documented thresholds on score and realised volatility.
    score, rv = day["regime_score"], day["realised_vol"]
    expected = np.select(
        [rv >= 0.25, score >= 0.25, score <= -0.25], ["volatile", "risk_on", "risk_off"], "neutral"
    )
    assert (day["regime"] == expected).all()
    assert day["confidence"].gt(0).all()
    assert (day["data_as_of"] <= day["minute"]).all()
    assert day["index_available"].all() and (day["realised_vol"] > 0).all()


def test_index_trend_and_breadth_match_independent_computation(
    day_bars: pd.DataFrame, day: pd.DataFrame
) -> None:
    today = day_bars[day_bars["minute"].dt.normalize() == DAY]
    spy = today[today["ticker"] == "SPY"].set_index("minute")
    expected = (spy["close"] / spy["open"].iloc[0] - 1) * 100
    np.testing.assert_allclose(day["spy_ret_open_pct"], expected.to_numpy(), rtol=1e-9)

    m = DAY + pd.Timedelta("13h07min")
    above = up = 0
    for ticker in STOCKS:
        bars = today[(today["ticker"] == ticker) & (today["minute"] <= m)]
        typical = (bars["high"] + bars["low"] + bars["close"]) / 3
        vwap = (typical * bars["volume"]).sum() / bars["volume"].sum()
        above += bars["close"].iloc[-1] > vwap
        up += bars["close"].iloc[-1] > bars["open"].iloc[0]
    row = day.set_index("minute").loc[m]
    assert row["breadth_above_vwap"] == pytest.approx(above / len(STOCKS))
    assert row["breadth_up"] == pytest.approx(up / len(STOCKS))


def test_no_look_ahead(day_bars: pd.DataFrame, day: pd.DataFrame) -> None:
    cut = DAY + pd.Timedelta("12h15min")
    got = macro_features(scrambled_after(day_bars, cut, seed=11), session(DAY), STOCKS)
    before = day["minute"] <= cut
    pd.testing.assert_frame_equal(got[before], day[before])
    assert not got.loc[~before, "spy_close"].equals(day.loc[~before, "spy_close"])


def test_reports_are_valid_deterministic_and_never_nan(day: pd.DataFrame) -> None:
    for row in day.to_dict("records"):
        report = macro_report(row)
        assert isinstance(report, AnalystReport)
        assert math.isfinite(report.score) and math.isfinite(report.confidence)
        assert report.stance == stance_of(report.score)
        assert report.score == pytest.approx(row["regime_score"])
        assert "nan" not in report.narrative + "".join(report.key_points)
        assert macro_report(row) == report
        json.dumps(macro_facts(row), allow_nan=False)
    assert any(macro_report(r).stance != Stance.NEUTRAL for r in day.to_dict("records"))


def test_missing_spy_gives_neutral_low_confidence(day_bars: pd.DataFrame) -> None:
    feats = macro_features(day_bars[day_bars["ticker"] != "SPY"], session(DAY), STOCKS)
    assert (feats["regime"] == "neutral").all() and (feats["regime_score"] == 0).all()
    assert (feats["confidence"] <= 0.1).all() and not feats["index_available"].any()
    assert feats["qqq_close"].notna().all()  # QQQ is still there, shown for reference
    for row in feats.to_dict("records")[::30]:
        report = macro_report(row)
        assert report.stance == Stance.NEUTRAL and report.score == 0.0
        assert report.confidence <= 0.1
        assert "No SPY bar" in report.key_points[0]
        json.dumps(macro_facts(row), allow_nan=False)


def test_no_bars_at_all_gives_zero_confidence_rows() -> None:
    feats = macro_features(pd.DataFrame(columns=["minute", "ticker"]), session(DAY)[:5], STOCKS)
    assert len(feats) == 5 and (feats["confidence"] == 0).all()
    assert (feats["regime"] == "neutral").all() and feats["data_as_of"].isna().all()
    report = macro_report(feats.to_dict("records")[0])
    assert report.confidence == 0.0 and report.stance == Stance.NEUTRAL
    assert 2 <= MACRO_INSTRUCTIONS.count(". ") + 1 <= 4
