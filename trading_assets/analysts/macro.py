"""The macro analyst: one market regime per minute from the index ETFs and the universe's breadth.

The regime is the same for every ticker at a minute (the asset broadcasts it), so it is computed
once per minute, vectorised over the partition range. Point in time as in `technical`: a row for
minute `m` uses each ticker's last bar at or before `m` in the same session, nothing later.

Rules (all thresholds here, nothing hidden):

* index trend, per index ETF, in [-1, 1]:
  0.5 * return since the session open (full at +-0.5 %) + 0.25 * close vs EMA20 (full at +-0.2 %)
  + 0.25 * EMA20 vs EMA50 (full at +-0.1 %); `trend_score` is the mean over the ETFs with data.
* breadth, in [-1, 1]: (share of stocks above session VWAP - 0.5) + (share up on the session - 0.5).
* volatility: annualised realised volatility of the primary ETF's 1-minute log returns over the
  last 30 bars (sqrt(252 * 390) scaling; the overnight gap is excluded). `vol_penalty` rises
  from 0 at 15 % to 1 at 25 %.
* regime_score = clip(0.5 * trend + 0.3 * breadth - 0.2 * vol_penalty, -1, 1);
  regime = volatile if RV >= 25 %, else risk_on if score >= 0.25, risk_off if score <= -0.25,
  else neutral.
* Without a bar of the primary ETF (SPY) in the session so far, the row is neutral, score 0,
  confidence at most 0.1, and `note` says why: the other ETF alone is not the market.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from ta.trend import EMAIndicator

from trading_assets.analysts.report import AnalystReport, Stance, stance_of
from trading_assets.analysts.technical import (
    as_of_rows,
    clean_bars,
    json_value,
    row_float,
    session_returns,
    session_vwap,
)
from trading_assets.numbers import finite

ANNUALISE = math.sqrt(252 * 390)
RV_WINDOW = 30
VOL_NORMAL = 0.15
VOL_HIGH = 0.25
REGIME_BAND = 0.25
EMA_FULL_HISTORY = 50
WEIGHTS = {"trend": 0.5, "breadth": 0.3, "vol_penalty": -0.2}

MACRO_INSTRUCTIONS = (
    "You are the macro analyst of an intraday trading team; you see the market regime at one "
    "minute, computed only from bars up to that minute: SPY and QQQ returns since the open and "
    "versus their EMA 20/50, their realised volatility, and breadth across the traded universe. "
    "Judge whether the tape is risk-on, risk-off, neutral or volatile for taking long risk in "
    "any single stock, weigh SPY above QQQ and breadth as confirmation, and lower your confidence "
    "when index data are missing, history is short or trend and breadth disagree."
)

_INDEX_FIELDS = ("close", "ret_open_pct", "vs_ema20_pct", "ema20_vs_ema50_pct", "rv_30m", "n_bars")


def _index_bar_features(bars: pd.DataFrame) -> pd.DataFrame:
    """Trend and volatility inputs at every bar of one index ETF (time-ordered)."""
    close = bars["close"]
    session = bars["minute"].dt.normalize()
    session_open = bars["open"].groupby(session).transform("first")
    ema20 = EMAIndicator(close, window=20).ema_indicator()
    ema50 = EMAIndicator(close, window=50).ema_indicator()
    log_ret = np.log1p(session_returns(bars))
    return pd.DataFrame(
        {
            "data_as_of": bars["minute"],
            "close": close,
            "ret_open_pct": (close / session_open - 1.0) * 100.0,
            "vs_ema20_pct": (close / ema20 - 1.0) * 100.0,
            "ema20_vs_ema50_pct": (ema20 / ema50 - 1.0) * 100.0,
            "rv_30m": log_ret.rolling(RV_WINDOW, min_periods=20).std() * ANNUALISE,
            "n_bars": np.arange(1, len(bars) + 1, dtype="float64"),
        }
    )


def _index_trend(rows: pd.DataFrame, prefix: str) -> pd.Series:
    """The trend rule for one ETF's columns in [-1, 1] (NaN when it has no bar yet)."""
    ret = (rows[f"{prefix}_ret_open_pct"] / 0.5).clip(-1, 1)
    vs20 = (rows[f"{prefix}_vs_ema20_pct"] / 0.2).clip(-1, 1).fillna(0.0)
    slope = (rows[f"{prefix}_ema20_vs_ema50_pct"] / 0.1).clip(-1, 1).fillna(0.0)
    return 0.5 * ret + 0.25 * vs20 + 0.25 * slope


def _breadth(
    clean: pd.DataFrame, tickers: Sequence[str], minutes: pd.DatetimeIndex
) -> pd.DataFrame:
    """Per minute: share of stocks above session VWAP, share up on the session, stocks counted."""
    stocks = clean[clean["ticker"].isin(list(tickers))]
    parts: list[pd.DataFrame] = []
    for _, group in stocks.groupby("ticker", sort=True):
        group = group.reset_index(drop=True)
        vwap = session_vwap(group)
        session_open = group["open"].groupby(group["minute"].dt.normalize()).transform("first")
        per_bar = pd.DataFrame(
            {
                "data_as_of": group["minute"],
                "above": (group["close"] > vwap).astype("float64").where(vwap.notna()),
                "up": (group["close"] > session_open).astype("float64"),
            }
        )
        parts.append(as_of_rows(per_bar, minutes))
    frame = pd.DataFrame({"minute": minutes})
    if not parts:
        return frame.assign(breadth_above_vwap=np.nan, breadth_up=np.nan, breadth_n=0, as_of=pd.NaT)
    stacked = pd.concat(parts, ignore_index=True)
    agg = stacked.groupby("minute").agg(
        breadth_above_vwap=("above", "mean"),
        breadth_up=("up", "mean"),
        breadth_n=("up", "size"),
        as_of=("data_as_of", "max"),
    )
    out = frame.merge(agg, left_on="minute", right_index=True, how="left")
    out["breadth_n"] = out["breadth_n"].fillna(0).astype("int64")
    return out


def macro_features(
    bars: pd.DataFrame,
    minutes: pd.DatetimeIndex,
    stock_tickers: Sequence[str],
    index_tickers: Sequence[str] = ("SPY", "QQQ"),
) -> pd.DataFrame:
    """One regime row per partition minute (see the module docstring for every rule)."""
    minutes = pd.DatetimeIndex(minutes).unique().sort_values().astype("datetime64[ns]")
    index_tickers = list(index_tickers)
    out = pd.DataFrame({"minute": minutes})
    cols = ["minute", "ticker", "open", "high", "low", "close", "volume"]
    source = bars if not bars.empty else pd.DataFrame(columns=cols)
    clean = clean_bars(source, minutes.max()) if len(minutes) else source.iloc[:0]

    as_of_cols: list[str] = []
    trends: list[pd.Series] = []
    for ticker in index_tickers:
        prefix = ticker.lower()
        group = clean[clean["ticker"] == ticker].reset_index(drop=True)
        if group.empty:
            rows = pd.DataFrame({"minute": minutes, "data_as_of": pd.NaT})
            for field in _INDEX_FIELDS:
                rows[field] = np.nan
        else:
            rows = as_of_rows(_index_bar_features(group), minutes)
        rows = rows.rename(columns={f: f"{prefix}_{f}" for f in _INDEX_FIELDS})
        rows = rows.rename(columns={"data_as_of": f"{prefix}_as_of"})
        out = out.merge(rows, on="minute", how="left")
        as_of_cols.append(f"{prefix}_as_of")
        trends.append(_index_trend(out, prefix))

    breadth = _breadth(clean, stock_tickers, minutes)
    out = out.merge(breadth, on="minute", how="left")
    as_of_cols.append("as_of")
    out["data_as_of"] = out[as_of_cols].max(axis=1)
    out = out.drop(columns="as_of")

    primary = index_tickers[0].lower() if index_tickers else None
    has_primary = out[f"{primary}_close"].notna() if primary else pd.Series(False, index=out.index)
    trend_frame = pd.concat(trends, axis=1) if trends else pd.DataFrame(index=out.index)
    n_index = trend_frame.notna().sum(axis=1)
    out["index_available"] = has_primary.astype(bool)
    out["n_index"] = n_index.astype("int64")
    out["trend_score"] = trend_frame.mean(axis=1).fillna(0.0)
    breadth_score = (out["breadth_above_vwap"] - 0.5).fillna(0.0) + (out["breadth_up"] - 0.5)
    out["breadth_score"] = breadth_score.fillna(0.0).clip(-1, 1)
    rv = out[f"{primary}_rv_30m"] if primary else pd.Series(np.nan, index=out.index)
    out["realised_vol"] = rv
    out["vol_penalty"] = ((rv - VOL_NORMAL) / (VOL_HIGH - VOL_NORMAL)).clip(0, 1).fillna(0.0)

    score = (
        WEIGHTS["trend"] * out["trend_score"]
        + WEIGHTS["breadth"] * out["breadth_score"]
        + WEIGHTS["vol_penalty"] * out["vol_penalty"]
    ).clip(-1, 1)
    out["regime_score"] = score.where(has_primary, 0.0).round(4)
    out["regime"] = np.select(
        [~has_primary, rv >= VOL_HIGH, score >= REGIME_BAND, score <= -REGIME_BAND],
        ["neutral", "volatile", "risk_on", "risk_off"],
        "neutral",
    )

    coverage = 0.6 * n_index / max(len(index_tickers), 1) + 0.4 * out["breadth_n"] / max(
        len(stock_tickers), 1
    )
    primary_bars = out[f"{primary}_n_bars"] if primary else pd.Series(0.0, index=out.index)
    history = (primary_bars.fillna(0.0) / EMA_FULL_HISTORY).clip(0, 1)
    agreement = (1.0 - (out["trend_score"] - out["breadth_score"]).abs()).clip(0, 1)
    confidence = coverage * (0.5 + 0.5 * history) * (0.4 + 0.6 * agreement)
    anything = out["data_as_of"].notna()
    fallback = pd.Series(np.where(anything, 0.1, 0.0), index=out.index)
    out["confidence"] = confidence.where(has_primary, fallback).clip(0, 1).round(3)
    out["primary_index"] = index_tickers[0] if index_tickers else ""
    out["index_tickers"] = ",".join(index_tickers)
    out["note"] = np.where(
        has_primary,
        "",
        f"No {index_tickers[0] if index_tickers else 'index'} bar in this session up to the "
        "minute: regime set to neutral with low confidence",
    )
    return out.reset_index(drop=True)


# --- the rules analyst -----------------------------------------------------------------------


def _index_tickers(row: Mapping[str, Any]) -> list[str]:
    return [t for t in str(row.get("index_tickers") or "").split(",") if t]


def _or_zero(row: Mapping[str, Any], key: str) -> float:
    """A row value as a finite float, 0.0 when missing or not a number."""
    return finite(row.get(key)) or 0.0


def macro_report(row: Mapping[str, Any]) -> AnalystReport:
    """The rules view of one `macro_features` row, worded for a reader (never NaN)."""
    regime = str(row.get("regime") or "neutral")
    points: list[str] = []
    for ticker in _index_tickers(row):
        p = ticker.lower()
        ret, vs20 = row_float(row, f"{p}_ret_open_pct"), row_float(row, f"{p}_vs_ema20_pct")
        if math.isnan(ret):
            points.append(f"{ticker}: no bar yet this session")
            continue
        text = f"{ticker} {ret:+.2f}% since the open"
        if not math.isnan(vs20):
            text += f", {abs(vs20):.2f}% {'above' if vs20 >= 0 else 'below'} its EMA20"
        slope = row_float(row, f"{p}_ema20_vs_ema50_pct")
        if not math.isnan(slope):
            text += f", EMA20 {'above' if slope >= 0 else 'below'} EMA50"
        points.append(text)
    rv = row_float(row, "realised_vol")
    if not math.isnan(rv):
        level = "high" if rv >= VOL_HIGH else "elevated" if rv >= VOL_NORMAL else "calm"
        points.append(f"Realised volatility {rv * 100:.1f}% annualised over 30 minutes ({level})")
    above, up = row_float(row, "breadth_above_vwap"), row_float(row, "breadth_up")
    if not math.isnan(up):
        above_text = "n/a" if math.isnan(above) else f"{above * 100:.0f}%"
        n = int(_or_zero(row, "breadth_n"))
        points.append(
            f"Breadth: {above_text} of {n} stocks above session VWAP, "
            f"{up * 100:.0f}% up on the session"
        )

    if not bool(row.get("index_available")):
        reason = str(row.get("note") or "No index data: regime set to neutral with low confidence")
        return AnalystReport(
            stance=Stance.NEUTRAL,
            score=0.0,
            confidence=max(0.0, min(_or_zero(row, "confidence"), 0.1)),
            key_points=[reason, *points][:6],
            narrative=f"{reason}; the other figures are shown for reference only.",
        )
    score = max(-1.0, min(1.0, _or_zero(row, "regime_score")))
    confidence = max(0.0, min(1.0, _or_zero(row, "confidence")))
    stance = stance_of(score)  # the contract: the stance follows the score
    narrative = (
        f"Market regime {regime.replace('_', '-')} (score {score:+.2f}): index trend "
        f"{_or_zero(row, 'trend_score'):+.2f}, breadth {_or_zero(row, 'breadth_score'):+.2f}, "
        f"volatility penalty {_or_zero(row, 'vol_penalty'):.2f}. "
        f"Confidence {confidence:.2f} from data coverage, history and trend/breadth agreement."
    )
    return AnalystReport(
        stance=stance,
        score=score,
        confidence=confidence,
        key_points=points[:6] or ["No macro signal"],
        narrative=narrative,
    )


def macro_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    """What an LLM macro analyst is shown: the row's numbers, rounded, no NaN."""
    keys = [
        "minute",
        "data_as_of",
        "regime",
        "regime_score",
        "trend_score",
        "breadth_score",
        "vol_penalty",
        "realised_vol",
        "breadth_above_vwap",
        "breadth_up",
        "breadth_n",
        "index_available",
        "note",
    ]
    for ticker in _index_tickers(row):
        keys += [f"{ticker.lower()}_{field}" for field in _INDEX_FIELDS[:-1]]
    return {key: json_value(row.get(key)) for key in keys}
