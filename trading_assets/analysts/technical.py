"""The technical analyst: indicators on 1-minute bars and 5-minute resamples, and its rules view.

Point in time (DESIGN): the row for partition minute `m` uses bars with `minute <= m` only.
Every indicator here is causal (rolling windows, recursive EMAs, cumulative sums), so computing
it once over a ticker's whole bar sequence and picking the rows at `m` is the same as computing
it at `m` from the bars up to `m`, but vectorised: one pass per ticker, not one per minute.

Choices a reader should know:

* Indicators run over the bar sequence across sessions (yesterday's last bars warm up today's
  EMAs); the session VWAP, the session-open return and the breadth measures reset every session.
  A session is a New York calendar date (bars are regular-session minutes only).
* A minute without a bar carries the ticker's last bar of the same session forward: levels stay,
  while per-minute events (crosses, the 1-minute return, its z-score, volume) are 0, because
  nothing traded that we know of. `bar_age_min` says how stale the row is. Before a ticker's first
  bar of the session there is no row for it.
* 5-minute features use completed buckets only: the bucket [b, b+5min) becomes available at
  partition b+4min (its last bar closes at b+5min, the end of that partition); a forming bucket is
  never used. `bucket_5m` names the bucket a row's `_5m` features come from.
* Prices are rounded to 1e-6 first so float noise (258.22500000000002) cannot flip the sign of
  a price change (OBV, RSI, crosses).
* Session VWAP uses the typical price (h+l+c)/3 times volume, as every provider has those; a
  session whose volume so far is 0 has no VWAP (NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from ta.momentum import RSIIndicator, StochasticOscillator
from ta.trend import MACD, EMAIndicator, SMAIndicator
from ta.volatility import AverageTrueRange, BollingerBands

from trading_assets.analysts.report import AnalystReport, neutral_report, stance_of
from trading_assets.numbers import finite
from trading_assets.schemas import empty_frame

# A 1-minute |return z-score| at or above this is a price shock; volume at or above this
# multiple of its 20-bar average is a volume shock (both feed the debate gate).
PRICE_SHOCK_Z = 3.0
VOLUME_SHOCK_RATIO = 3.0
RSI_OVERBOUGHT = 70.0
RSI_OVERSOLD = 30.0
# Bars needed before every 1-minute indicator is defined (MACD: 26 + 9 - 1).
FULL_HISTORY_BARS = 34
RETURN_STD_WINDOW = 30
# 1-minute return std floor (0.5 bp): a flat stretch must not turn float noise into a "shock".
RETURN_STD_FLOOR = 5e-5
OBV_WINDOW = 10
VOLUME_AVG_WINDOW = 20

# The rules score is sum(weight * component); every component is in [-1, 1] (+ = bullish) and
# the weights add up to 1, so the score is in [-1, 1]. A component that cannot be computed yet
# (short history) counts as 0 and lowers the confidence instead.
SIGNAL_WEIGHTS: dict[str, float] = {
    "trend": 0.25,  # EMA12 - EMA26 in units of half an ATR (1-minute)
    "trend_5m": 0.20,  # the same on completed 5-minute bars: the higher time frame
    "macd": 0.15,  # MACD histogram in units of a tenth of an ATR
    "vwap": 0.15,  # close vs session VWAP, full at +-0.5 %
    "obv": 0.10,  # signed-volume share of the last 10 bars (OBV slope), already in [-1, 1]
    "rsi": 0.10,  # contrarian only at extremes: -1 at RSI 85+, +1 at RSI 15-, 0 in 30..70
    "bollinger": 0.05,  # close outside the 20-bar 2-sigma band: +1 above, -1 below
}

TECHNICAL_INSTRUCTIONS = (
    "You are the technical analyst of an intraday trading team; you see one ticker's indicators "
    "at one minute, computed only from bars up to that minute. Weigh trend (EMA 12/26 on 1- and "
    "5-minute bars, MACD histogram) and price versus session VWAP most, confirm with volume "
    "(OBV slope, volume ratio), and treat RSI/stochastic extremes and Bollinger breakouts as "
    "signs of stretch. Flag price or volume shocks (|return_z| >= 3, volume_ratio >= 3), lower "
    "your confidence when signals disagree or history is short (n_bars < 34 or missing values), "
    "and cite the numbers you rely on."
)

TECHNICAL_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",
    "ticker": "string",
    "data_as_of": "datetime64[ns]",  # the bar the row is built from (<= minute)
    "bar_age_min": "int64",  # minute - data_as_of, in minutes (0 = a bar this minute)
    "n_bars": "int64",  # bars of this ticker seen up to data_as_of (history depth)
    "close": "float64",
    "volume": "float64",
    "return_1m": "float64",  # close / previous close - 1 (session's first bar: close / open - 1)
    "return_z": "float64",  # return_1m / std of the previous 30 returns: the price-shock measure
    "volume_ratio": "float64",  # volume / mean volume of the previous 20 bars
    "sma_20": "float64",
    "ema_12": "float64",
    "ema_26": "float64",
    "rsi_14": "float64",
    "macd_hist": "float64",
    "stoch_k": "float64",
    "stoch_d": "float64",
    "bb_upper": "float64",
    "bb_lower": "float64",
    "bb_pct": "float64",  # 0 at the lower band, 1 at the upper band
    "atr_14": "float64",  # price units: stop sizing uses it
    "obv_slope": "float64",  # sum(sign(dclose) * volume) / sum(volume) over 10 bars, [-1, 1]
    "session_vwap": "float64",
    "vwap_gap_pct": "float64",  # (close / session_vwap - 1) * 100
    "bucket_5m": "datetime64[ns]",  # start of the completed 5-minute bucket behind the _5m columns
    "close_5m": "float64",
    "ema_12_5m": "float64",
    "ema_26_5m": "float64",
    "rsi_14_5m": "float64",
    "macd_hist_5m": "float64",
    "atr_14_5m": "float64",
    "ema_cross": "int64",  # +1 EMA12 crossed above EMA26 on this bar (golden), -1 below (death)
    "macd_cross": "int64",  # +1 MACD crossed above its signal line on this bar, -1 below
    "rsi_state": "string",  # overbought | oversold | neutral | unknown
    "bb_breakout": "int64",  # +1 close above the upper band, -1 below the lower band, else 0
    "above_vwap": "bool",  # close > session VWAP (False when there is no VWAP yet)
    "signal_score": "float64",  # the rules score in [-1, 1] (SIGNAL_WEIGHTS)
}

_PRICE_DECIMALS = 6


# --- indicators per ticker -------------------------------------------------------------------


def _sign_cross(diff: pd.Series, scale: pd.Series) -> pd.Series:
    """+1 where `diff` turns positive, -1 where it turns negative (ties within noise ignored)."""
    sign = np.sign(diff.where(diff.abs() > 1e-9 * scale.abs()))
    sign = sign.ffill()
    prev = sign.shift()
    return ((sign > 0) & (prev < 0)).astype("int64") - ((sign < 0) & (prev > 0)).astype("int64")


def _rsi(close: pd.Series, window: int = 14) -> pd.Series:
    """`ta` RSI, except a series that never moved is 50 (ta says 100: no losses)."""
    rsi = RSIIndicator(close, window=window).rsi()
    never_moved = close.diff().abs().fillna(0.0).cumsum() == 0
    return rsi.mask(never_moved & rsi.notna(), 50.0)


def _atr(high: pd.Series, low: pd.Series, close: pd.Series, window: int = 14) -> pd.Series:
    """`ta` ATR with its warm-up zeros as NaN (ta also fails on fewer bars than the window)."""
    if len(close) < window:
        return pd.Series(np.nan, index=close.index)
    atr = AverageTrueRange(high, low, close, window=window).average_true_range()
    atr.iloc[: window - 1] = np.nan
    return atr


def _ohlc_indicators(frame: pd.DataFrame) -> pd.DataFrame:
    """The indicators shared by 1-minute bars and 5-minute buckets (one ticker, time-ordered)."""
    close, high, low = frame["close"], frame["high"], frame["low"]
    macd = MACD(close, window_slow=26, window_fast=12, window_sign=9)
    return pd.DataFrame(
        {
            "ema_12": EMAIndicator(close, window=12).ema_indicator(),
            "ema_26": EMAIndicator(close, window=26).ema_indicator(),
            "rsi_14": _rsi(close),
            "macd_hist": macd.macd_diff(),
            "macd_line": macd.macd(),
            "atr_14": _atr(high, low, close),
        },
        index=frame.index,
    )


def session_vwap(frame: pd.DataFrame) -> pd.Series:
    """Cumulative typical-price-volume average that restarts at each session's first bar.

    `frame` has minute, high, low, close, volume for one or many tickers; a ticker column, if
    present, keeps tickers apart.
    """
    typical = (frame["high"] + frame["low"] + frame["close"]) / 3.0
    keys = [frame["minute"].dt.normalize()]
    if "ticker" in frame:
        keys.insert(0, frame["ticker"])
    pv = (typical * frame["volume"]).groupby(keys).cumsum()
    vol = frame["volume"].groupby(keys).cumsum()
    return (pv / vol.where(vol > 0)).rename("session_vwap")


def session_returns(frame: pd.DataFrame) -> pd.Series:
    """1-minute returns that never span the overnight gap (one ticker, time-ordered).

    A session's first bar uses close / open - 1: the opening gap is news for another analyst,
    not a 1-minute move, and counting it would make every 09:30 a "shock".
    """
    session = frame["minute"].dt.normalize()
    first = session.ne(session.shift())
    prev = frame["close"].shift().where(~first, frame["open"])
    return frame["close"] / prev - 1.0


def _bar_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Every 1-minute feature at every bar of one ticker (bars time-ordered, unique minutes)."""
    close, high, low, volume = bars["close"], bars["high"], bars["low"], bars["volume"]
    out = pd.DataFrame({"data_as_of": bars["minute"], "close": close, "volume": volume})
    out["n_bars"] = np.arange(1, len(bars) + 1, dtype="int64")

    ret = session_returns(bars)
    std = ret.shift().rolling(RETURN_STD_WINDOW, min_periods=10).std()
    out["return_1m"] = ret
    out["return_z"] = ret / std.clip(lower=RETURN_STD_FLOOR)
    avg_vol = volume.shift().rolling(VOLUME_AVG_WINDOW, min_periods=5).mean()
    out["volume_ratio"] = volume / avg_vol.where(avg_vol > 0)

    out["sma_20"] = SMAIndicator(close, window=20).sma_indicator()
    ind = _ohlc_indicators(bars)
    for col in ("ema_12", "ema_26", "rsi_14", "macd_hist", "atr_14"):
        out[col] = ind[col]

    stoch = StochasticOscillator(high, low, close, window=14, smooth_window=3)
    span = high.rolling(14).max() - low.rolling(14).min()
    stoch_k = stoch.stoch().mask(span <= 0, 50.0)  # a flat window is mid-range, not inf/NaN
    out["stoch_k"] = stoch_k
    out["stoch_d"] = stoch_k.rolling(3).mean()

    bb = BollingerBands(close, window=20, window_dev=2)
    upper, lower = bb.bollinger_hband(), bb.bollinger_lband()
    width = upper - lower
    out["bb_upper"], out["bb_lower"] = upper, lower
    out["bb_pct"] = ((close - lower) / width.where(width > 0)).mask(width <= 0, 0.5)

    # Standard OBV direction (an unchanged close adds nothing; ta's OBV adds it as a rise).
    signed = np.sign(close.diff()) * volume
    vol_sum = volume.rolling(OBV_WINDOW).sum()
    out["obv_slope"] = signed.rolling(OBV_WINDOW).sum() / vol_sum.where(vol_sum > 0)

    vwap = session_vwap(bars)
    out["session_vwap"] = vwap
    out["vwap_gap_pct"] = (close / vwap - 1.0) * 100.0

    out["ema_cross"] = _sign_cross(out["ema_12"] - out["ema_26"], close)
    out["macd_cross"] = _sign_cross(out["macd_hist"], close)
    return out


def resample_5m(bars: pd.DataFrame) -> pd.DataFrame:
    """Clock-aligned 5-minute OHLCV buckets of one ticker (empty buckets dropped).

    `available_at` is the bucket's last minute: the first partition at whose end it is complete.
    """
    buckets = (
        bars.set_index("minute")[["open", "high", "low", "close", "volume"]]
        .resample("5min", label="left", closed="left")
        .agg({"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
        .dropna(subset=["close"])
    )
    buckets.index.name = "bucket_5m"
    buckets = buckets.reset_index()
    buckets["available_at"] = buckets["bucket_5m"] + pd.Timedelta(minutes=4)
    return buckets


def _bucket_features(bars: pd.DataFrame) -> pd.DataFrame:
    buckets = resample_5m(bars)
    ind = _ohlc_indicators(buckets)
    return pd.DataFrame(
        {
            "available_at": buckets["available_at"],
            "bucket_5m": buckets["bucket_5m"],
            "close_5m": buckets["close"],
            "ema_12_5m": ind["ema_12"],
            "ema_26_5m": ind["ema_26"],
            "rsi_14_5m": ind["rsi_14"],
            "macd_hist_5m": ind["macd_hist"],
            "atr_14_5m": ind["atr_14"],
        }
    )


def clean_bars(bars: pd.DataFrame, last_minute: pd.Timestamp) -> pd.DataFrame:
    """Bars up to `last_minute`, one per ticker-minute, time-ordered, float noise rounded off."""
    cols = ["minute", "ticker", "open", "high", "low", "close", "volume"]
    out = bars.loc[bars["minute"] <= last_minute, cols].copy()
    out["minute"] = pd.to_datetime(out["minute"]).astype("datetime64[ns]")
    out["ticker"] = out["ticker"].astype(str)
    for col in ("open", "high", "low", "close"):
        out[col] = out[col].astype("float64").round(_PRICE_DECIMALS)
    out["volume"] = out["volume"].astype("float64").fillna(0.0)
    out = out.dropna(subset=["close"])
    out = out.sort_values(["ticker", "minute"], kind="stable")
    return out.drop_duplicates(["ticker", "minute"], keep="last").reset_index(drop=True)


def as_of_rows(per_bar: pd.DataFrame, minutes: pd.DatetimeIndex) -> pd.DataFrame:
    """For each partition minute, the last per-bar row at or before it in the same session."""
    target = pd.DataFrame({"minute": minutes.sort_values().astype("datetime64[ns]")})
    rows = pd.merge_asof(
        target, per_bar, left_on="minute", right_on="data_as_of", direction="backward"
    )
    same_session = rows["data_as_of"].dt.normalize() == rows["minute"].dt.normalize()
    return rows.loc[same_session].reset_index(drop=True)


# --- the public feature frame ----------------------------------------------------------------


def technical_features(bars: pd.DataFrame, minutes: pd.DatetimeIndex) -> pd.DataFrame:
    """One row per (ticker, partition minute) from bars up to that minute (see module docs)."""
    minutes = pd.DatetimeIndex(minutes).unique()
    if bars.empty or len(minutes) == 0:
        return empty_frame(TECHNICAL_COLUMNS)
    clean = clean_bars(bars, minutes.max())
    parts: list[pd.DataFrame] = []
    for ticker, group in clean.groupby("ticker", sort=True):
        group = group.reset_index(drop=True)
        rows = as_of_rows(_bar_features(group), minutes)
        if rows.empty:
            continue
        rows = pd.merge_asof(
            rows, _bucket_features(group), left_on="minute", right_on="available_at"
        ).drop(columns="available_at")
        rows["ticker"] = ticker
        parts.append(rows)
    if not parts:
        return empty_frame(TECHNICAL_COLUMNS)
    out = pd.concat(parts, ignore_index=True)

    out["bar_age_min"] = ((out["minute"] - out["data_as_of"]) // pd.Timedelta(minutes=1)).astype(
        "int64"
    )
    carried = out["bar_age_min"] > 0
    for col in ("return_1m", "return_z", "volume", "volume_ratio", "ema_cross", "macd_cross"):
        out.loc[carried, col] = 0

    rsi = out["rsi_14"]
    out["rsi_state"] = np.select(
        [rsi >= RSI_OVERBOUGHT, rsi <= RSI_OVERSOLD, rsi.notna()],
        ["overbought", "oversold", "neutral"],
        "unknown",
    )
    out["bb_breakout"] = (out["close"] > out["bb_upper"]).astype("int64") - (
        out["close"] < out["bb_lower"]
    ).astype("int64")
    out["above_vwap"] = (out["close"] > out["session_vwap"]).fillna(False).astype(bool)
    out["signal_score"] = _frame_scores(out)["score"]

    out = out.sort_values(["minute", "ticker"], kind="stable").reset_index(drop=True)
    return out.loc[:, list(TECHNICAL_COLUMNS)].astype(TECHNICAL_COLUMNS)


# --- the rules analyst -----------------------------------------------------------------------


def _score_arrays(col: Callable[[str], np.ndarray]) -> dict[str, np.ndarray]:
    """Signal components (NaN where not computable), score, agreement and confidence.

    `col(name)` gives a float array; `technical_features` passes whole columns and
    `technical_report` one-element arrays, so the frame's `signal_score` and the report agree.
    """
    close = col("close")
    scale = np.fmax(col("atr_14"), 1e-4 * close)  # NaN ATR -> the 1 bp floor, never 0
    scale_5m = np.fmax(col("atr_14_5m"), 1e-4 * col("close_5m"))
    rsi, upper, lower = col("rsi_14"), col("bb_upper"), col("bb_lower")
    with np.errstate(invalid="ignore", divide="ignore"):
        comps = {
            "trend": np.clip((col("ema_12") - col("ema_26")) / (0.5 * scale), -1, 1),
            "trend_5m": np.clip((col("ema_12_5m") - col("ema_26_5m")) / (0.5 * scale_5m), -1, 1),
            "macd": np.clip(col("macd_hist") / (0.1 * scale), -1, 1),
            "vwap": np.clip(col("vwap_gap_pct") / 0.5, -1, 1),
            "obv": np.clip(col("obv_slope"), -1, 1),
            "rsi": np.clip((RSI_OVERSOLD - rsi) / 15, 0, 1)
            - np.clip((rsi - RSI_OVERBOUGHT) / 15, 0, 1),
            "bollinger": np.where(
                np.isnan(upper) | np.isnan(lower) | np.isnan(close),
                np.nan,
                (close > upper).astype(float) - (close < lower).astype(float),
            ),
        }
    score = np.zeros_like(close)
    available = np.zeros_like(close)
    magnitude = np.zeros_like(close)
    for name, weight in SIGNAL_WEIGHTS.items():
        value = comps[name]
        known = ~np.isnan(value)
        score += weight * np.where(known, value, 0.0)
        magnitude += weight * np.where(known, np.abs(value), 0.0)
        available += weight * known
    score = np.round(np.clip(score, -1, 1), 4)
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(magnitude > 0, np.abs(score) / magnitude, 0.0).clip(0, 1)
    history = np.clip(np.nan_to_num(col("n_bars")) / FULL_HISTORY_BARS, 0, 1)
    stale = np.nan_to_num(col("bar_age_min")) > 5
    confidence = available * history * (0.3 + 0.7 * agreement) * np.where(stale, 0.5, 1.0)
    return {
        **comps,
        "score": score,
        "agreement": agreement,
        "confidence": np.round(np.clip(confidence, 0, 1), 3),
    }


def _frame_scores(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    def col(name: str) -> np.ndarray:
        return pd.to_numeric(frame[name], errors="coerce").to_numpy("float64", na_value=np.nan)

    return _score_arrays(col)


def _row_scores(row: Mapping[str, Any]) -> dict[str, float]:
    precomputed = row.get(SCORES_KEY)
    if isinstance(precomputed, dict):
        return precomputed
    scored = _score_arrays(lambda name: np.array([row_float(row, name)], dtype="float64"))
    return {name: float(values[0]) for name, values in scored.items()}


# `technical_records` stores each row's `_score_arrays` values under this key: the rules report
# then reads them instead of running the numpy scoring once per row on one-element arrays.
SCORES_KEY = "_signal_scores"


def _finite_column(frame: pd.DataFrame, name: str) -> np.ndarray:
    """A column as `row_float` reads each of its values: NaN where missing or not finite."""
    if name not in frame:
        return np.full(len(frame), np.nan)
    values = frame[name]
    if values.dtype.kind in "fiu":
        x = values.to_numpy("float64", na_value=np.nan)
        return np.where(np.isfinite(x), x, np.nan)
    return np.array([row_float({name: v}, name) for v in values.tolist()], dtype="float64")


def technical_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """`technical_features` rows as dicts for `run_analyst`, each with its signal scores.

    The scores are `_score_arrays` over whole columns (elementwise, so equal to scoring each
    row alone): one vectorised pass instead of ~50 numpy calls per row."""
    records: list[dict[str, Any]] = frame.to_dict("records")
    scored = _score_arrays(lambda name: _finite_column(frame, name))
    names = list(scored)
    columns = zip(*(scored[name].tolist() for name in names), strict=True)
    for row, values in zip(records, columns, strict=True):
        row[SCORES_KEY] = dict(zip(names, values, strict=True))
    return records


def row_float(row: Mapping[str, Any], key: str) -> float:
    """A row value as a finite float, NaN when missing, infinite or not a number."""
    value = finite(row.get(key))
    return math.nan if value is None else value


def _key_points(row: Mapping[str, Any]) -> list[str]:
    """The signals that fired, most decision-relevant first, with their numbers."""
    points: list[str] = []
    z, ret, vr = (
        row_float(row, "return_z"),
        row_float(row, "return_1m"),
        row_float(row, "volume_ratio"),
    )
    if abs(z) >= PRICE_SHOCK_Z:
        points.append(f"Price shock: 1-minute return {ret * 100:+.2f}% is {z:+.1f} sigma")
    if vr >= VOLUME_SHOCK_RATIO:
        points.append(f"Volume shock: {vr:.1f}x its {VOLUME_AVG_WINDOW}-bar average")
    e12, e26 = row_float(row, "ema_12"), row_float(row, "ema_26")
    cross = row_float(row, "ema_cross")
    if cross == 1:
        points.append(f"Golden cross: EMA12 {e12:.2f} crossed above EMA26 {e26:.2f}")
    elif cross == -1:
        points.append(f"Death cross: EMA12 {e12:.2f} crossed below EMA26 {e26:.2f}")
    elif not math.isnan(e12 - e26):
        side = "above" if e12 > e26 else "below"
        points.append(f"1-minute trend: EMA12 {e12:.2f} {side} EMA26 {e26:.2f}")
    mh, mcross = row_float(row, "macd_hist"), row_float(row, "macd_cross")
    if mcross in (1, -1):
        word = "above" if mcross == 1 else "below"
        points.append(f"MACD crossed {word} its signal line (histogram {mh:+.3f})")
    close, upper, lower = (
        row_float(row, "close"),
        row_float(row, "bb_upper"),
        row_float(row, "bb_lower"),
    )
    if close > upper:
        points.append(f"Close {close:.2f} broke above the upper Bollinger band {upper:.2f}")
    elif close < lower:
        points.append(f"Close {close:.2f} broke below the lower Bollinger band {lower:.2f}")
    rsi = row_float(row, "rsi_14")
    if rsi >= RSI_OVERBOUGHT:
        points.append(f"RSI(14) {rsi:.1f}: overbought")
    elif rsi <= RSI_OVERSOLD:
        points.append(f"RSI(14) {rsi:.1f}: oversold")
    gap, vwap = row_float(row, "vwap_gap_pct"), row_float(row, "session_vwap")
    if not math.isnan(gap):
        side = "above" if gap > 0 else "below"
        points.append(f"Close {abs(gap):.2f}% {side} session VWAP {vwap:.2f}")
    e12_5, e26_5 = row_float(row, "ema_12_5m"), row_float(row, "ema_26_5m")
    if not math.isnan(e12_5 - e26_5):
        side = "up" if e12_5 > e26_5 else "down"
        points.append(f"5-minute trend {side}: EMA12 {e12_5:.2f} vs EMA26 {e26_5:.2f}")
    return points[:6]


def technical_report(row: Mapping[str, Any]) -> AnalystReport:
    """The deterministic rules view of one `technical_features` row (weights: SIGNAL_WEIGHTS)."""
    ticker = str(row.get("ticker", "?"))
    if math.isnan(row_float(row, "close")):
        return neutral_report(f"{ticker}: no bar yet this session: no technical view")
    scored = _row_scores(row)
    score, confidence = scored["score"], scored["confidence"]
    stance = stance_of(score)
    points = _key_points(row) or [f"No technical signal fired for {ticker}"]
    n_bars = int(finite(row.get("n_bars")) or 0)
    drivers = sorted(
        ((SIGNAL_WEIGHTS[k] * scored[k], k) for k in SIGNAL_WEIGHTS if not math.isnan(scored[k])),
        key=lambda item: -abs(item[0]),
    )
    top = ", ".join(f"{name} {value:+.2f}" for value, name in drivers[:3] if value != 0)
    narrative = (
        f"{ticker} technical score {score:+.2f} ({stance.value}) from weighted 1- and 5-minute "
        f"signals{': ' + top if top else ''}. Confidence {confidence:.2f}: signals agree "
        f"{scored['agreement'] * 100:.0f}%, {n_bars} bars of history."
    )
    if n_bars < FULL_HISTORY_BARS:
        narrative += f" History is short (< {FULL_HISTORY_BARS} bars): some indicators are missing."
    return AnalystReport(
        stance=stance,
        score=score,
        confidence=confidence,
        key_points=points,
        narrative=narrative,
    )


_FACT_KEYS: tuple[str, ...] = (
    "close",
    "return_1m",
    "return_z",
    "volume_ratio",
    "sma_20",
    "ema_12",
    "ema_26",
    "rsi_14",
    "macd_hist",
    "stoch_k",
    "stoch_d",
    "bb_upper",
    "bb_lower",
    "bb_pct",
    "atr_14",
    "obv_slope",
    "session_vwap",
    "vwap_gap_pct",
    "close_5m",
    "ema_12_5m",
    "ema_26_5m",
    "rsi_14_5m",
    "macd_hist_5m",
    "atr_14_5m",
    "ema_cross",
    "macd_cross",
    "rsi_state",
    "bb_breakout",
    "above_vwap",
    "signal_score",
    "n_bars",
    "bar_age_min",
)


def json_value(value: Any, digits: int = 4) -> Any:
    """A JSON-safe scalar: NaN/NaT/None -> None, numpy -> python, floats rounded, times ISO."""
    kind = type(value)
    if kind is float:  # the common cases first (facts call this ~35 times a row)
        if not math.isfinite(value):
            return None
        return round(value, digits) if abs(value) >= 1 else float(f"{value:.{digits}g}")
    if kind is str:
        return value
    if kind is int:
        return value
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp | np.datetime64 | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        if not math.isfinite(value):
            return None
        return round(value, digits) if abs(value) >= 1 else float(f"{value:.{digits}g}")
    return str(value)


def technical_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    """What an LLM technical analyst is shown: the row's numbers, rounded, no NaN."""
    return {
        key: json_value(row.get(key)) for key in ("ticker", "minute", "data_as_of", *_FACT_KEYS)
    }
