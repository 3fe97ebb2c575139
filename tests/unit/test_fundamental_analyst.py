"""The rules fundamental analyst on real rows: bundled SEC facts joined to real 1-minute closes."""

from __future__ import annotations

import json
import math
import re
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading_assets.analysts.fundamental import (
    FUNDAMENTAL_INSTRUCTIONS,
    MAX_CONFIDENCE,
    fundamental_facts,
    fundamental_report,
)
from trading_assets.analysts.report import AnalystReport, Stance, stance_of
from trading_assets.ingest.fundamentals import facts_from_companyfacts, fundamentals_frame
from trading_assets.schemas import FUNDAMENTAL_COLUMNS, MARKET_TZ

ROOT = Path(__file__).resolve().parents[2]
REPLAY = ROOT / "trading_assets" / "data" / "replay"
BARS = REPLAY / "bars" / "us_equities_1min_2026-03-12_2026-03-27.parquet"
TICKER_BY_CIK = {320193: "AAPL", 1045810: "NVDA", 1652044: "GOOG"}
GROWTH = ("revenue_growth_yoy", "net_income_growth_yoy", "eps_growth_yoy")
NOT_A_NUMBER = re.compile(r"\b(nan|inf|NaN|NaT|None)\b")


@pytest.fixture(scope="module")
def facts() -> pd.DataFrame:
    frames = []
    for path in sorted((REPLAY / "fundamentals").glob("CIK*.json")):
        doc = json.loads(path.read_text())
        frames.append(facts_from_companyfacts(doc, TICKER_BY_CIK[doc["cik"]]))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    bars = pd.read_parquet(BARS, columns=["symbol", "timestamp", "close"])
    minute = pd.to_datetime(bars["timestamp"], utc=True).dt.tz_convert(MARKET_TZ)
    return pd.DataFrame(
        {"minute": minute.dt.tz_localize(None), "ticker": bars["symbol"], "close": bars["close"]}
    )


@pytest.fixture(scope="module")
def frame(facts: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    return fundamentals_frame(facts, prices)


@pytest.fixture(scope="module")
def rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return frame.to_dict("records")


def _first(rows: list[dict[str, Any]], ticker: str) -> dict[str, Any]:
    return next(dict(r) for r in rows if r["ticker"] == ticker)


def _assert_clean(report: AnalystReport) -> None:
    """Valid against the contract, finite, and no NaN/None spelled out in the text."""
    AnalystReport.model_validate(report.model_dump())
    assert math.isfinite(report.score) and math.isfinite(report.confidence)
    assert report.stance == stance_of(report.score)
    assert 1 <= len(report.key_points) <= 6
    for text in (*report.key_points, report.narrative):
        assert text and not NOT_A_NUMBER.search(text), text
    sentences = [s for s in re.split(r"(?<=\.)\s+", report.narrative) if s]
    assert 1 <= len(sentences) <= 3, report.narrative


def test_every_bundled_row_gives_a_valid_report(rows: list[dict[str, Any]]) -> None:
    assert {r["ticker"] for r in rows} == {"AAPL", "NVDA", "GOOG"}
    for row in rows:
        report = fundamental_report(row)
        _assert_clean(report)
        # every input is known in March 2026 and the filings are weeks old
        assert report.confidence == MAX_CONFIDENCE
        assert report.stance != Stance.NEUTRAL or abs(report.score) <= 0.15


def test_reports_quote_the_numbers(rows: list[dict[str, Any]]) -> None:
    row = _first(rows, "NVDA")
    report = fundamental_report(row)
    text = " ".join(report.key_points)
    assert f"P/E {row['pe']:.1f}" in text
    assert f"revenue {row['revenue_growth_yoy'] * 100:+.1f}%" in text  # +65.5%
    assert f"debt/equity {row['debt_to_equity']:.2f}" in text
    assert "2026-02-26" in text  # when the FY2026 10-K became available
    assert report.narrative.startswith("NVDA fundamentals read")


def test_reports_are_deterministic(rows: list[dict[str, Any]], frame: pd.DataFrame) -> None:
    # the same row as numpy scalars (np.datetime64, np.float64) reads the same
    i = len(frame) // 2
    as_numpy = {c: frame[c].to_numpy()[i] for c in frame.columns}
    assert isinstance(as_numpy["filed_at"], np.datetime64)
    assert fundamental_report(as_numpy) == fundamental_report(rows[i])


def test_higher_pe_at_the_same_growth_scores_lower(rows: list[dict[str, Any]]) -> None:
    for ticker in ("AAPL", "NVDA", "GOOG"):
        row = _first(rows, ticker)
        scores = [fundamental_report({**row, "pe": pe}).score for pe in range(5, 101, 5)]
        assert all(a >= b for a, b in pairwise(scores)), (ticker, scores)
        assert scores[3] > scores[7] > scores[-1]  # P/E 20 > P/E 40 > P/E 100
        # the other valuation inputs point the same way
        cheap, dear = ({**row, "ps": ps} for ps in (3.0, 20.0))
        assert fundamental_report(cheap).score > fundamental_report(dear).score
        high, low = ({**row, "fcf_yield": y} for y in (0.05, 0.01))
        assert fundamental_report(high).score > fundamental_report(low).score


def test_faster_growth_at_the_same_price_scores_higher(rows: list[dict[str, Any]]) -> None:
    row = _first(rows, "AAPL")
    growths = [-0.2, -0.05, 0.0, 0.05, 0.1, 0.2, 0.4]
    scores = [
        fundamental_report({**row, "revenue_growth_yoy": g, "eps_growth_yoy": g}).score
        for g in growths
    ]
    assert scores == sorted(scores) and scores[0] < scores[-1]


def test_no_fundamentals_is_neutral_with_zero_confidence(frame: pd.DataFrame) -> None:
    empty_row: dict[str, Any] = {
        c: (pd.NaT if t.startswith("datetime") else np.nan) for c, t in FUNDAMENTAL_COLUMNS.items()
    }
    empty_row.update(ticker="SPY", minute=pd.Timestamp("2026-03-13 10:00"))
    for row in ({"ticker": "SPY"}, {}, {"ticker": np.nan}, empty_row):
        report = fundamental_report(row)
        _assert_clean(report)
        assert report.stance == Stance.NEUTRAL
        assert report.score == 0.0 and report.confidence == 0.0
        assert "No fundamentals" in report.key_points[0]
    # a known ticker before anything is filed is also no view
    before = {**frame.iloc[0].to_dict(), "filed_at": pd.NaT}
    assert fundamental_report(before).confidence == 0.0


def test_missing_inputs_and_stale_filings_lower_confidence(rows: list[dict[str, Any]]) -> None:
    row = _first(rows, "GOOG")
    full = fundamental_report(row)
    no_growth = fundamental_report({**row, **dict.fromkeys(GROWTH, np.nan)})
    _assert_clean(no_growth)
    assert no_growth.confidence == pytest.approx(full.confidence * 6 / 8)
    assert "Not known: revenue growth, earnings growth." in no_growth.key_points
    assert not any(p.startswith("Growth") for p in no_growth.key_points)

    stale = fundamental_report({**row, "filed_at": row["filed_at"] - pd.Timedelta(days=300)})
    assert stale.score == full.score  # age changes how sure, not what
    assert 0 < stale.confidence < full.confidence


def test_a_loss_making_year_is_judged_without_nan(
    facts: pd.DataFrame, prices: pd.DataFrame
) -> None:
    """NVIDIA as known in March 2010 (FY2010 loss: EPS -0.12), priced at real 2026 closes."""
    old = facts[(facts["ticker"] == "NVDA") & (facts["filed"] <= "2010-03-18")]
    rows = fundamentals_frame(old, prices[prices["ticker"] == "NVDA"].head(3))
    row = rows.to_dict("records")[0]
    assert math.isnan(row["pe"]) and math.isnan(row["eps_growth_yoy"])  # from a loss: no growth
    assert row["revenue_growth_yoy"] == pytest.approx(-0.0287, abs=1e-4)
    report = fundamental_report(row)
    _assert_clean(report)
    assert any("loss-making (TTM EPS -0.12" in p for p in report.key_points)
    assert any("earnings growth" in p for p in report.key_points)  # listed as not known
    assert report.stance == Stance.BEARISH  # a loss, P/S 31 and shrinking revenue
    assert report.confidence < MAX_CONFIDENCE
    facts_json = fundamental_facts(row)
    assert facts_json["pe"] is None and facts_json["eps_ttm"] == -0.12


def test_facts_are_json_without_nan(rows: list[dict[str, Any]], facts: pd.DataFrame) -> None:
    row = _first(rows, "AAPL")
    out = fundamental_facts(row)
    json.dumps(out, allow_nan=False)
    assert out["ticker"] == "AAPL"
    assert out["filed_at"] == "2026-01-31T00:00:00"
    assert out["as_of"] == (row["minute"] + pd.Timedelta(minutes=1)).isoformat()
    assert out["period_end"] == "2026-01-16"
    assert out["revenue_ttm"] == 435_617_000_000  # rounded to the million (already whole)
    assert out["revenue_growth_yoy"] == round(row["revenue_growth_yoy"], 4)
    assert set(out) - {"days_since_filing"} <= set(FUNDAMENTAL_COLUMNS)
    blank = fundamental_facts(
        {**row, "ticker": np.nan, "pe": np.nan, "roe": float("inf"), "filed_at": pd.NaT}
    )
    json.dumps(blank, allow_nan=False)
    assert blank["ticker"] is None and blank["pe"] is None and blank["roe"] is None
    assert blank["filed_at"] is None and blank["days_since_filing"] is None


def test_instructions_are_a_few_sentences() -> None:
    sentences = [s for s in re.split(r"(?<=\.)\s+", FUNDAMENTAL_INSTRUCTIONS.strip()) if s]
    assert 2 <= len(sentences) <= 4
    assert "fundamental analyst" in FUNDAMENTAL_INSTRUCTIONS
