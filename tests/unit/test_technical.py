"""The technical analyst's features and rules view on the bundled real bars."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from ta.momentum import RSIIndicator

from tests.real_bars import bundled_bars, scrambled_after
from trading_assets.analysts.report import AnalystReport, stance_of
from trading_assets.analysts.technical import (
    PRICE_SHOCK_Z,
    TECHNICAL_COLUMNS,
    TECHNICAL_INSTRUCTIONS,
    technical_facts,
    technical_features,
    technical_records,
    technical_report,
)
from trading_assets.partitions import session_minutes

DAY = pd.Timestamp("2026-03-17")
HISTORY_MINUTES = 200


@pytest.fixture(scope="module")
def all_bars() -> pd.DataFrame:
    return bundled_bars()


def session(day: pd.Timestamp) -> pd.DatetimeIndex:
    day_text = day.strftime("%Y-%m-%d")
    return session_minutes(day_text, day_text)


def window(all_bars: pd.DataFrame, minutes: pd.DatetimeIndex) -> pd.DataFrame:
    """The run's bars: its minutes plus the 200 bar-minutes before (what the asset reads)."""
    earlier = all_bars.loc[all_bars["minute"] < minutes[0], "minute"].drop_duplicates()
    start = earlier.nlargest(HISTORY_MINUTES).min()
    mask = (all_bars["minute"] >= start) & (all_bars["minute"] <= minutes[-1])
    return all_bars.loc[mask].reset_index(drop=True)


@pytest.fixture(scope="module")
def day_bars(all_bars: pd.DataFrame) -> pd.DataFrame:
    return window(all_bars, session(DAY))


@pytest.fixture(scope="module")
def day(day_bars: pd.DataFrame) -> pd.DataFrame:
    return technical_features(day_bars, session(DAY))


def test_a_real_day_gives_a_row_per_ticker_per_minute(day: pd.DataFrame) -> None:
    assert list(day.columns) == list(TECHNICAL_COLUMNS)
    assert len(day) == 9 * 390
    assert not day.duplicated(["minute", "ticker"]).any()
    assert (day["data_as_of"] <= day["minute"]).all()
    assert (day["bar_age_min"] == 0).all()  # the bundled day has every bar
    # 200 minutes of history: every indicator is warm from the first minute on.
    assert day[["rsi_14", "macd_hist", "atr_14", "bb_pct", "ema_26_5m"]].notna().all().all()


def test_indicator_ranges(day: pd.DataFrame) -> None:
    for col in ("rsi_14", "rsi_14_5m", "stoch_k", "stoch_d"):
        assert day[col].between(0, 100).all(), col
    assert day["obv_slope"].between(-1, 1).all()
    assert (day["bb_upper"] >= day["bb_lower"]).all()
    # ATR is in price units: positive and a small fraction of the price for 1-minute bars.
    assert (day["atr_14"] > 0).all()
    assert (day["atr_14"] < 0.01 * day["close"]).all()
    # The labels follow their numbers (and a real day has some of each kind).
    state = np.where(
        day["rsi_14"] >= 70, "overbought", np.where(day["rsi_14"] <= 30, "oversold", "neutral")
    )
    assert (day["rsi_state"] == state).all() and set(state) == {"overbought", "oversold", "neutral"}
    breakout = np.sign(day["close"] - day["bb_upper"]).clip(0) - np.sign(
        day["bb_lower"] - day["close"]
    ).clip(0)
    assert (day["bb_breakout"] == breakout).all() and set(breakout) == {-1, 0, 1}
    assert (day["signal_score"] > 0.15).any() and (day["signal_score"] < -0.15).any()


def test_no_look_ahead(day_bars: pd.DataFrame, day: pd.DataFrame) -> None:
    cut = DAY + pd.Timedelta("11h37min")
    changed = scrambled_after(day_bars, cut, seed=7)
    later_aapl = (changed["minute"] > cut) & (changed["ticker"] == "AAPL")
    changed = changed.drop(changed.index[later_aapl][::3])
    got = technical_features(changed, session(DAY))
    before = day["minute"] <= cut
    pd.testing.assert_frame_equal(
        got.loc[got["minute"] <= cut].reset_index(drop=True), day.loc[before].reset_index(drop=True)
    )
    assert not got.loc[got["minute"] > cut, "close"].equals(day.loc[~before, "close"])


def test_session_vwap_is_cumulative_and_resets(all_bars: pd.DataFrame) -> None:
    day2 = pd.Timestamp("2026-03-18")
    minutes = session(DAY).append(session(day2))
    feats = technical_features(window(all_bars, minutes), minutes)
    for d in (DAY, day2):
        bars = all_bars[(all_bars["ticker"] == "MSFT") & (all_bars["minute"].dt.normalize() == d)]
        bars = bars.sort_values("minute")
        typical = (bars["high"] + bars["low"] + bars["close"]) / 3
        expected = (typical * bars["volume"]).cumsum() / bars["volume"].cumsum()
        got = feats[(feats["ticker"] == "MSFT") & (feats["minute"].dt.normalize() == d)]
        np.testing.assert_allclose(got["session_vwap"], expected, rtol=1e-9)
        first = bars.iloc[0]
        if first["volume"] > 0:  # reset: the first bar's VWAP is its own typical price
            assert got["session_vwap"].iloc[0] == pytest.approx(typical.iloc[0], rel=1e-9)


def test_five_minute_features_equal_an_independent_resample(
    day_bars: pd.DataFrame, day: pd.DataFrame
) -> None:
    bars = day_bars[day_bars["ticker"] == "NVDA"].sort_values("minute")
    grouped = bars.groupby(bars["minute"].dt.floor("5min"))
    buckets = pd.DataFrame({"close": grouped["close"].last(), "high": grouped["high"].max()})
    ema12 = buckets["close"].ewm(span=12, adjust=False, min_periods=12).mean()
    rsi = RSIIndicator(buckets["close"], window=14).rsi()
    rows = day[day["ticker"] == "NVDA"].set_index("minute")
    ends = rows.index[rows.index.minute % 5 == 4]  # the minute whose bar completes a bucket
    starts = ends - pd.Timedelta(minutes=4)
    np.testing.assert_allclose(rows.loc[ends, "close_5m"], buckets.loc[starts, "close"])
    np.testing.assert_allclose(rows.loc[ends, "ema_12_5m"], ema12.loc[starts], rtol=1e-9)
    np.testing.assert_allclose(rows.loc[ends, "rsi_14_5m"], rsi.loc[starts], rtol=1e-9)
    # In between, the last *completed* bucket is used: never the one still forming.
    age = rows.index - rows["bucket_5m"]
    assert age.min() == pd.Timedelta(minutes=4)
    assert age[rows.index >= DAY + pd.Timedelta("9h34min")].max() == pd.Timedelta(minutes=8)
    # Before today's first bucket completes (09:30-09:33), yesterday's last bucket is used.
    assert (
        rows["bucket_5m"].iloc[:4] == DAY - pd.Timedelta(days=1) + pd.Timedelta("15h55min")
    ).all()


def test_large_real_move_is_a_price_shock(day: pd.DataFrame) -> None:
    nvda = day[day["ticker"] == "NVDA"].set_index("minute")
    moves = nvda["close"].pct_change().iloc[1:].abs()  # independent, inside the session
    biggest = moves.idxmax()
    assert abs(nvda.loc[biggest, "return_z"]) >= PRICE_SHOCK_Z
    typical = moves.sub(moves.median()).abs().idxmin()
    assert abs(nvda.loc[typical, "return_z"]) < 1.5


def test_reports_are_valid_deterministic_and_never_nan(
    day_bars: pd.DataFrame, day: pd.DataFrame
) -> None:
    pd.testing.assert_frame_equal(technical_features(day_bars, session(DAY)), day)
    rows = day.to_dict("records")
    for row in rows[::7]:
        report = technical_report(row)
        assert isinstance(report, AnalystReport)
        assert math.isfinite(report.score) and math.isfinite(report.confidence)
        assert report.score == pytest.approx(row["signal_score"])
        assert report.stance == stance_of(report.score)
        assert report.key_points and "nan" not in (report.narrative + "".join(report.key_points))
        assert technical_report(row) == report
        json.dumps(technical_facts(row), allow_nan=False)


def test_short_history_and_missing_bars_give_low_confidence_rows(
    all_bars: pd.DataFrame,
) -> None:
    minutes = session(DAY)[:10]
    bars = all_bars[all_bars["minute"].isin(minutes)]  # no earlier history at all
    # META misses 09:30-09:32 and 09:35; its 09:33 volume is zero.
    meta = bars["ticker"] == "META"
    gone = meta & bars["minute"].isin(minutes[[0, 1, 2, 5]])
    bars = bars.loc[~gone].copy()
    bars.loc[meta & (bars["minute"] == minutes[3]), "volume"] = 0.0
    feats = technical_features(bars, minutes)
    meta_rows = feats[feats["ticker"] == "META"].set_index("minute")
    assert meta_rows.index[0] == minutes[3]  # no row before its first bar of the session
    assert math.isnan(meta_rows.loc[minutes[3], "session_vwap"])  # zero volume so far
    carried = meta_rows.loc[minutes[5]]
    assert carried["bar_age_min"] == 1 and carried["data_as_of"] == minutes[4]
    assert carried["return_z"] == 0 and carried["ema_cross"] == 0
    for row in feats.to_dict("records"):
        report = technical_report(row)
        assert report.confidence <= 0.3  # at most 10 bars: most indicators are still missing
        assert math.isfinite(report.score)
        assert "History is short" in report.narrative
        json.dumps(technical_facts(row), allow_nan=False)


def test_empty_input_and_instructions() -> None:
    empty = technical_features(pd.DataFrame(columns=["minute", "ticker"]), session(DAY))
    assert empty.empty and list(empty.columns) == list(TECHNICAL_COLUMNS)
    assert technical_report({"ticker": "AAPL"}).confidence == 0.0
    assert 2 <= TECHNICAL_INSTRUCTIONS.count(". ") + 1 <= 4


def test_vectorised_scores_give_the_same_reports_as_scoring_each_row(day: pd.DataFrame) -> None:
    """`technical_records` scores whole columns once; every report must be the per-row one."""
    frame = day.copy()
    frame.loc[frame.index[::5], "atr_14"] = np.inf  # non-finite values read as missing either way
    frame.loc[frame.index[::11], "ema_12_5m"] = np.nan
    records = technical_records(frame)
    plain = frame.to_dict("records")
    assert len(records) == len(plain)
    for fast, slow in zip(records, plain, strict=True):
        assert technical_report(fast) == technical_report(slow)
        assert technical_facts(fast) == technical_facts(slow)
