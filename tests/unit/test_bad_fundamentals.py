"""Missing, absurd or future-dated fundamentals never give an out-of-range or look-ahead view.

Property-based over the real bundled SEC company facts (AAPL, NVDA, GOOG) and real closes:
facts are corrupted (NaN, infinite, zero or negative shares, 1e30, a filing date far in the
future) before `fundamentals_frame` builds the snapshots, and stored snapshot rows are corrupted
before the fundamental analyst reads them. The snapshot must stay point in time, its ratios
finite or blank; the analyst's view must stay in range (or be the recorded neutral fallback);
the blocking `fundamentals_point_in_time` check must fail on any value filed after its minute.
"""

import json

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from resources.providers.replay import BUNDLED_REPLAY_DIR, ReplayProvider
from tests.real_bars import bundled_bars
from trading_assets.analysts.fundamental import fundamental_facts, fundamental_report
from trading_assets.checks.expectations import validate
from trading_assets.checks.ingest import FUNDAMENTAL_EXPECTATIONS
from trading_assets.ingest.fundamentals import fundamentals_frame
from trading_assets.schemas import FUNDAMENTAL_FIELDS

TICKERS = ["AAPL", "GOOG", "NVDA"]
FACTS = ReplayProvider(BUNDLED_REPLAY_DIR).fetch_facts(TICKERS)
_bars = bundled_bars()
PRICES = _bars[
    _bars["ticker"].isin(TICKERS)
    & _bars["minute"].isin(pd.to_datetime(["2026-03-12 09:30", "2026-03-23 10:00"]))
][["minute", "ticker", "close"]].reset_index(drop=True)
REAL = fundamentals_frame(FACTS, PRICES)
RATIOS = ["pe", "ps", "debt_to_equity", "roe", "fcf_yield"]
ABSURD = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e30, -1e30, 1e-30]


@st.composite
def corrupted_facts(draw: st.DrawFn) -> pd.DataFrame:
    facts = FACTS.copy()
    rows = draw(st.lists(st.integers(0, len(facts) - 1), min_size=1, max_size=12, unique=True))
    for row in rows:
        how = draw(st.sampled_from(["value", "shares", "future", "missing_field"]))
        if how == "value":
            facts.loc[row, "value"] = draw(st.sampled_from(ABSURD))
        elif how == "shares":
            shares = facts.index[facts["field"] == "shares"]
            facts.loc[shares[row % len(shares)], "value"] = draw(st.sampled_from([0.0, -5e9]))
        elif how == "future":
            years = draw(st.integers(0, 50))
            facts.loc[row, "filed"] = pd.Timestamp("2026-03-23") + pd.DateOffset(years=years)
        else:
            field = draw(st.sampled_from(FUNDAMENTAL_FIELDS))
            gone = (facts["ticker"] == facts.loc[row, "ticker"]) & (facts["field"] == field)
            facts = facts[~gone].reset_index(drop=True)
            break
    return facts


def _assert_in_range(row: dict) -> None:
    report = fundamental_report(row)
    assert -1.0 <= report.score <= 1.0 and 0.0 <= report.confidence <= 1.0
    assert 1 <= len(report.key_points) <= 6 and len(report.narrative) <= 1200
    json.dumps(fundamental_facts(row), allow_nan=False)  # what a model is shown is valid JSON


def test_real_fundamentals_pass_the_check_and_give_a_view() -> None:
    assert set(REAL["ticker"]) == set(TICKERS) and len(REAL) == 6
    frame = REAL.assign(partition_end=REAL["minute"] + pd.Timedelta(minutes=1))
    assert validate(frame, "fundamentals", FUNDAMENTAL_EXPECTATIONS).success
    assert all(fundamental_report(r).confidence > 0 for r in REAL.to_dict("records"))


@settings(max_examples=60)
@given(facts=corrupted_facts())
def test_absurd_facts_give_point_in_time_snapshots_and_in_range_views(facts: pd.DataFrame) -> None:
    """No exception; every snapshot value was filed before its minute's end (a fact filed in
    the future is simply not known yet); ratios are finite or blank; the view is in range."""
    frame = fundamentals_frame(facts, PRICES)
    assert (frame["filed_at"] < frame["as_of"]).all()
    for col in RATIOS:
        values = frame[col].dropna()
        assert np.isfinite(values).all(), (col, values)
    for row in frame.to_dict("records"):
        _assert_in_range(row)


@settings(max_examples=80)
@given(
    row=st.integers(0, len(REAL) - 1),
    changes=st.dictionaries(
        st.sampled_from([*RATIOS, "eps_ttm", "equity", "fcf_ttm", "shares", "price",
                         "revenue_growth_yoy", "eps_growth_yoy", "net_income_growth_yoy",
                         "market_cap", "ticker", "filed_at", "as_of", "minute"]),
        st.sampled_from([*ABSURD, None, "abc", pd.NA, pd.NaT, "2099-01-01", np.datetime64("NaT")]),
        max_size=6,
    ),
)  # fmt: skip
def test_the_analyst_reads_any_row_without_leaving_its_range(row: int, changes: dict) -> None:
    _assert_in_range({**REAL.iloc[row].to_dict(), **changes})


@settings(max_examples=30)
@given(row=st.integers(0, len(REAL) - 1), ahead=st.integers(0, 60 * 24 * 365 * 30))
def test_a_future_filing_is_the_recorded_fallback_not_a_view(row: int, ahead: int) -> None:
    """A snapshot stamped as filed at or after its minute's end is look-ahead: the analyst
    gives the neutral fallback and says why, whatever the numbers say."""
    real = REAL.iloc[row].to_dict()
    report = fundamental_report({**real, "filed_at": real["as_of"] + pd.Timedelta(minutes=ahead)})
    assert (report.score, report.confidence) == (0.0, 0.0)
    assert "look-ahead" in report.narrative


@settings(max_examples=15)
@given(
    rows=st.lists(st.integers(0, len(REAL) - 1), min_size=1, max_size=6, unique=True),
    ahead=st.integers(0, 60 * 24 * 365 * 30),
)
def test_the_blocking_check_fails_on_any_future_filing(rows: list[int], ahead: int) -> None:
    stored = REAL.copy()
    stored.loc[rows, "filed_at"] = stored.loc[rows, "as_of"] + pd.Timedelta(minutes=ahead)
    frame = stored.assign(partition_end=stored["minute"] + pd.Timedelta(minutes=1))
    outcome = validate(frame, "fundamentals", FUNDAMENTAL_EXPECTATIONS)
    assert not outcome.success
    assert f"every value filed before the partition end: {len(rows)} rows" in outcome.summary()
