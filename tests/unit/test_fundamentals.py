"""Point-in-time fundamentals from the bundled (real) SEC companyfacts files and real 1-min closes.

Expected numbers are the ones a person finds in the SEC JSON; where a test needs a number it
looks it up in the document (`_sec`) and also spells it out, so a mapping change cannot silently
move both sides.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from trading_assets.ingest.fundamentals import (
    CONCEPT_COLUMN,
    CONCEPTS,
    POINT_IN_TIME_COLUMNS,
    SOURCE,
    available_at,
    facts_from_companyfacts,
    fundamentals_frame,
    point_in_time_values,
    reduce_companyfacts,
)
from trading_assets.schemas import (
    DURATION_FIELDS,
    FUNDAMENTAL_COLUMNS,
    FUNDAMENTAL_FIELDS,
    MARKET_TZ,
    PROVIDER_FACT_COLUMNS,
)

ROOT = Path(__file__).resolve().parents[2]
BUNDLED = ROOT / "trading_assets" / "data" / "replay" / "fundamentals"
SHARED = ROOT.parent / "shared" / "data"
BARS_CSV = SHARED / "bars" / "us_equities_1min_2026-03-12_2026-03-27.csv"
BARS_PARQUET = (
    ROOT
    / "trading_assets"
    / "data"
    / "replay"
    / "bars"
    / "us_equities_1min_2026-03-12_2026-03-27.parquet"
)
TICKER_BY_CIK = {320193: "AAPL", 1045810: "NVDA", 1652044: "GOOG"}
M = 1_000_000


@pytest.fixture(scope="module")
def docs() -> dict[str, dict[str, Any]]:
    out = {}
    for path in sorted(BUNDLED.glob("CIK*.json")):
        doc = json.loads(path.read_text())
        out[TICKER_BY_CIK[doc["cik"]]] = doc
    assert set(out) == set(TICKER_BY_CIK.values())
    return out


@pytest.fixture(scope="module")
def facts(docs: dict[str, dict[str, Any]]) -> pd.DataFrame:
    return pd.concat([facts_from_companyfacts(d, t) for t, d in docs.items()], ignore_index=True)


@pytest.fixture(scope="module")
def prices() -> pd.DataFrame:
    """Real closes, bar start converted from UTC to naive New York."""
    if BARS_CSV.exists():
        bars = pd.read_csv(BARS_CSV)
    elif BARS_PARQUET.exists():
        bars = pd.read_parquet(BARS_PARQUET)
    else:
        pytest.skip("no real 1-minute bars available")
    stamps = pd.to_datetime(bars["timestamp"], utc=True).dt.tz_convert(MARKET_TZ)
    return pd.DataFrame(
        {"minute": stamps.dt.tz_localize(None), "ticker": bars["symbol"], "close": bars["close"]}
    )


@pytest.fixture(scope="module")
def frame(facts: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    return fundamentals_frame(facts, prices)


def _sec(
    doc: dict[str, Any],
    concept: str,
    *,
    end: str,
    start: str | None = None,
    filed_before: str | None = None,
    form: str | None = None,
) -> float:
    """The value of `concept` for a period in the latest filing before `filed_before`."""
    namespace, name = concept.split(":") if ":" in concept else ("us-gaap", concept)
    units = doc["facts"][namespace][name]["units"]
    matches = [
        f
        for facts in units.values()
        for f in facts
        if f["end"] == end
        and f.get("start") == start
        and (filed_before is None or f["filed"] < filed_before)
        and (form is None or f["form"] == form)
    ]
    assert matches, f"{concept} {start}..{end} not in the document"
    return float(max(matches, key=lambda f: f["filed"])["val"])


def _at(facts: pd.DataFrame, ticker: str, *stamps: str) -> pd.DataFrame:
    as_of = pd.DataFrame({"ticker": ticker, "as_of": pd.to_datetime(list(stamps))})
    return point_in_time_values(facts, as_of)


# --- the long facts frame ---------------------------------------------------------------------


def test_facts_follow_the_provider_contract(facts: pd.DataFrame) -> None:
    assert list(facts.columns) == list(PROVIDER_FACT_COLUMNS)
    for column, dtype in PROVIDER_FACT_COLUMNS.items():
        assert str(facts[column].dtype) == dtype, column
    assert set(facts["field"]) == set(FUNDAMENTAL_FIELDS)
    assert set(facts["source"]) == {SOURCE}
    assert set(facts["form"]) <= {"10-K", "10-K/A", "10-Q", "8-K"}  # no DEF 14A / 424B rows
    for field, concepts in CONCEPTS.items():
        assert set(facts.loc[facts["field"] == field, CONCEPT_COLUMN]) <= set(concepts)
    is_duration = facts["field"].isin(DURATION_FIELDS)
    assert facts.loc[is_duration, "period_start"].notna().all()
    assert facts.loc[~is_duration, "period_start"].isna().all()


def test_every_filing_version_of_a_period_is_kept(facts: pd.DataFrame) -> None:
    """Apple equity at 2024-12-28 appears in three 10-Qs; each is a row with its own filed date."""
    rows = facts[
        (facts["ticker"] == "AAPL")
        & (facts["field"] == "equity")
        & (facts["period_end"] == "2024-12-28")
    ]
    assert list(rows["filed"].dt.strftime("%Y-%m-%d")) == ["2025-01-31", "2025-05-02", "2026-01-30"]
    assert set(rows["value"]) == {66_758 * M}


def test_one_filing_tagging_two_debt_concepts_keeps_the_balance_sheet_one(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """Apple's 10-Q tags LongTermDebt (88,500M, rounded) and the balance-sheet parts (88,512M)."""
    rows = facts[
        (facts["ticker"] == "AAPL")
        & (facts["field"] == "debt")
        & (facts["period_end"] == "2025-12-27")
    ]
    assert len(rows) == 1
    noncurrent = _sec(docs["AAPL"], "LongTermDebtNoncurrent", end="2025-12-27")
    current = _sec(docs["AAPL"], "LongTermDebtCurrent", end="2025-12-27")
    assert rows["value"].iloc[0] == noncurrent + current == (76_685 + 11_827) * M
    assert _sec(docs["AAPL"], "LongTermDebt", end="2025-12-27") == 88_500 * M


def test_only_the_mapped_unit_is_read(docs: dict[str, dict[str, Any]]) -> None:
    doc = json.loads(json.dumps(docs["GOOG"]))
    units = doc["facts"]["us-gaap"]["StockholdersEquity"]["units"]
    units["EUR"] = units.pop("USD")
    facts = facts_from_companyfacts(doc, "GOOG")
    assert "equity" not in set(facts["field"])
    assert "revenue" in set(facts["field"])


@pytest.mark.skipif(not (SHARED / "fundamentals").exists(), reason="shared SEC files absent")
def test_bundled_files_are_reductions_of_the_full_sec_files(
    docs: dict[str, dict[str, Any]],
) -> None:
    for path in sorted((SHARED / "fundamentals").glob("CIK*.json")):
        full = json.loads(path.read_text())
        ticker = TICKER_BY_CIK[full["cik"]]
        assert reduce_companyfacts(full) == docs[ticker]
        pd.testing.assert_frame_equal(
            facts_from_companyfacts(full, ticker), facts_from_companyfacts(docs[ticker], ticker)
        )


# --- availability -----------------------------------------------------------------------------


def test_a_filing_date_becomes_known_at_the_next_new_york_midnight() -> None:
    assert available_at("2026-01-30") == pd.Timestamp("2026-01-31 00:00")
    series = available_at(pd.Series(pd.to_datetime(["2026-02-25", "2025-12-31"])))
    assert list(series) == [pd.Timestamp("2026-02-26"), pd.Timestamp("2026-01-01")]
    # 21:00 New York on the 30th is already the 31st in UTC: the NY date decides
    assert available_at(pd.Timestamp("2026-01-31 02:00", tz="UTC")) == pd.Timestamp("2026-01-31")


# --- values a person can look up --------------------------------------------------------------


def test_apple_values_as_of_2026_03_13(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    row = _at(facts, "AAPL", "2026-03-13 09:31").iloc[0]
    aapl = docs["AAPL"]
    # equity: the latest 10-Q filed before 2026-03-13 (Q1 FY2026, filed 2026-01-30)
    equity = _sec(aapl, "StockholdersEquity", end="2025-12-27", filed_before="2026-03-13")
    assert row["equity"] == equity == 88_190 * M
    # revenue TTM = FY2025 10-K + Q1 FY2026 - Q1 FY2025
    revenue = "RevenueFromContractWithCustomerExcludingAssessedTax"
    fy2025 = _sec(aapl, revenue, start="2024-09-29", end="2025-09-27", form="10-K")
    q1_2026 = _sec(aapl, revenue, start="2025-09-28", end="2025-12-27")
    q1_2025 = _sec(aapl, revenue, start="2024-09-29", end="2024-12-28", filed_before="2026-03-13")
    assert row["revenue_ttm"] == fy2025 + q1_2026 - q1_2025 == (416_161 + 143_756 - 124_300) * M
    assert row["eps_ttm"] == pytest.approx(7.46 + 2.84 - 2.40)
    assert row["net_income_ttm"] == (112_010 + 42_097 - 36_330) * M
    assert row["capex_ttm"] == (12_715 + 2_373 - 2_940) * M
    # shares: the cover page of that 10-Q (dated 2026-01-16) is more recent than the balance sheet
    shares = _sec(aapl, "dei:EntityCommonStockSharesOutstanding", end="2026-01-16")
    assert row["shares"] == shares == 14_681_140_000
    assert row["debt"] == (76_685 + 11_827) * M
    assert row["period_end"] == pd.Timestamp("2026-01-16")
    assert row["filed_at"] == pd.Timestamp("2026-01-31")


def test_nvidia_and_alphabet_values_as_of_2026_03_13(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    nvda = _at(facts, "NVDA", "2026-03-13 09:31").iloc[0]
    # fiscal year 2026 (10-K filed 2026-02-25) is the latest period: used as is
    assert (
        nvda["revenue_ttm"]
        == _sec(docs["NVDA"], "Revenues", start="2025-01-27", end="2026-01-25", form="10-K")
        == 215_938 * M
    )
    # capex moved to PaymentsToAcquireProductiveAssets; the stale PPE concept stops in 2020
    assert (
        nvda["capex_ttm"]
        == _sec(
            docs["NVDA"], "PaymentsToAcquireProductiveAssets", start="2025-01-27", end="2026-01-25"
        )
        == 6_042 * M
    )
    assert nvda["debt"] == (7_469 + 999) * M

    goog = _at(facts, "GOOG", "2026-03-13 09:31").iloc[0]
    assert (
        goog["revenue_ttm"]
        == _sec(docs["GOOG"], "Revenues", start="2025-01-01", end="2025-12-31", form="10-K")
        == 402_836 * M
    )
    assert goog["debt"] == (46_547 + 1_996) * M  # carrying amount, not the 49,085M face value
    # no dei cover count for a multi-class issuer: the balance-sheet total of all classes
    assert (
        goog["shares"]
        == _sec(docs["GOOG"], "CommonStockSharesOutstanding", end="2025-12-31", form="10-K")
        == 12_088 * M
    )


def test_a_concept_switch_borrows_the_annual_from_the_old_concept(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """Apple's first ASC 606 10-Q (filed 2019-01-30) has no FY2018 under the new concept."""
    aapl = docs["AAPL"]
    row = _at(facts, "AAPL", "2019-03-01 10:00").iloc[0]
    fy2018 = _sec(aapl, "Revenues", start="2017-10-01", end="2018-09-29")
    new = "RevenueFromContractWithCustomerExcludingAssessedTax"
    q1_2019 = _sec(aapl, new, start="2018-09-30", end="2018-12-29", filed_before="2019-03-01")
    q1_2018 = _sec(aapl, new, start="2017-10-01", end="2017-12-30", filed_before="2019-03-01")
    assert row["revenue_ttm"] == fy2018 + q1_2019 - q1_2018 == (265_595 + 84_310 - 88_293) * M


def test_eps_across_a_split_uses_one_share_basis(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """NVIDIA's 4:1 split (2021): the 10-Q restates the prior-year YTD, not last year's 10-K."""
    nvda = docs["NVDA"]
    row = _at(facts, "NVDA", "2021-08-23 10:00").iloc[0]
    fy2021 = _sec(
        nvda,
        "EarningsPerShareDiluted",
        start="2020-01-27",
        end="2021-01-31",
        filed_before="2021-08-23",
    )  # 6.90 per pre-split share
    h1 = _sec(nvda, "EarningsPerShareDiluted", start="2021-02-01", end="2021-08-01")
    h1_prior = _sec(
        nvda,
        "EarningsPerShareDiluted",
        start="2020-01-27",
        end="2020-07-26",
        filed_before="2021-08-23",
    )  # restated: 0.62
    before = _sec(nvda, "dei:EntityCommonStockSharesOutstanding", end="2021-02-19")
    after = _sec(nvda, "dei:EntityCommonStockSharesOutstanding", end="2021-08-13")
    assert row["eps_ttm"] == pytest.approx(fy2021 * before / after + h1 - h1_prior)
    # the figure NVIDIA later restated for the year is 1.73: within buyback drift of ours
    assert row["eps_ttm"] == pytest.approx(1.73 + h1 - h1_prior, rel=0.01)


# --- point in time ----------------------------------------------------------------------------


def test_a_filing_is_seen_from_the_day_after(facts: pd.DataFrame) -> None:
    """NVIDIA's FY2026 10-K was filed 2026-02-25."""
    rows = _at(
        facts,
        "NVDA",
        "2026-02-25 15:59",
        "2026-02-26 00:00",
        "2026-02-26 00:01",
        "2026-02-26 09:31",
    )
    before = (130_497 + 147_811 - 91_166) * M  # FY2025 + 9M FY2026 - 9M FY2025
    assert list(rows["revenue_ttm"]) == [before, before, 215_938 * M, 215_938 * M]
    assert (
        list(rows["filed_at"])
        == [pd.Timestamp("2025-11-20")] * 2 + [pd.Timestamp("2026-02-26")] * 2
    )


def test_filings_after_the_bars_do_not_leak(facts: pd.DataFrame, frame: pd.DataFrame) -> None:
    """The bundled files hold 10-Qs filed in April/May 2026; March rows must not see them."""
    nvda = frame[frame["ticker"] == "NVDA"]
    assert (nvda["period_end"] < pd.Timestamp("2026-04-26")).all()
    assert (nvda["equity"] == 157_293 * M).all()  # FY2026 10-K, not the 2026-05-20 10-Q
    goog = frame[frame["ticker"] == "GOOG"]
    assert (goog["equity"] == 415_265 * M).all()  # not the 2026-04-30 10-Q's 478,746M


def test_a_future_filing_never_changes_a_row(
    facts: pd.DataFrame, prices: pd.DataFrame, frame: pd.DataFrame
) -> None:
    filed = pd.Timestamp("2026-03-20")  # a Friday inside the bars; known from 03-21 00:00
    absurd = []
    for field in FUNDAMENTAL_FIELDS:
        start = pd.Timestamp("2025-12-28") if field in DURATION_FIELDS else pd.NaT
        absurd.append(
            {
                "ticker": "AAPL",
                "field": field,
                "value": 1e18,
                "period_start": start,
                "period_end": pd.Timestamp("2026-03-28"),
                "filed": filed,
                "form": "10-Q",
                "source": SOURCE,
                CONCEPT_COLUMN: CONCEPTS[field][0],
            }
        )
    poisoned = pd.concat([facts, pd.DataFrame(absurd)], ignore_index=True)
    after = fundamentals_frame(poisoned, prices)
    known = after["as_of"] > available_at(filed)
    pd.testing.assert_frame_equal(after[~known], frame[~known.to_numpy()])
    changed = after[known & (after["ticker"] == "AAPL")]
    assert not changed.empty and (changed["equity"] == 1e18).all()  # the test does bite


def test_filed_at_precedes_as_of_on_every_row(frame: pd.DataFrame) -> None:
    assert len(frame) > 0
    assert (frame["filed_at"] < frame["as_of"]).all()
    assert (frame["as_of"] == frame["minute"] + pd.Timedelta(minutes=1)).all()
    assert (frame["period_end"] < frame["filed_at"]).all()


def test_vectorised_rows_equal_one_by_one(facts: pd.DataFrame) -> None:
    stamps = ["2026-02-25 15:59", "2019-03-01 10:00", "2026-03-27 16:00", "2021-08-23 10:00"]
    as_of = pd.DataFrame(
        {"ticker": ["NVDA", "AAPL", "GOOG", "NVDA"], "as_of": pd.to_datetime(stamps)}
    )
    together = point_in_time_values(facts, as_of)
    assert list(together.columns) == list(POINT_IN_TIME_COLUMNS)
    for i in range(len(as_of)):
        alone = point_in_time_values(facts, as_of.iloc[[i]])
        pd.testing.assert_frame_equal(together.iloc[[i]].reset_index(drop=True), alone)


def test_tz_aware_as_of_is_refused(facts: pd.DataFrame) -> None:
    as_of = pd.DataFrame({"ticker": ["AAPL"], "as_of": [pd.Timestamp("2026-03-13", tz="UTC")]})
    with pytest.raises(ValueError, match="naive"):
        point_in_time_values(facts, as_of)


# --- the asset frame --------------------------------------------------------------------------


def test_frame_contract_and_tickers(frame: pd.DataFrame, prices: pd.DataFrame) -> None:
    assert list(frame.columns) == list(FUNDAMENTAL_COLUMNS)
    assert {str(c): str(t) for c, t in frame.dtypes.items()} == FUNDAMENTAL_COLUMNS
    assert set(frame["ticker"]) == {"AAPL", "NVDA", "GOOG"}  # SPY, QQQ, MSFT... have no facts
    for ticker in ("AAPL", "NVDA", "GOOG"):
        assert (frame["ticker"] == ticker).sum() == (prices["ticker"] == ticker).sum()


def test_price_is_the_bar_close(frame: pd.DataFrame, prices: pd.DataFrame) -> None:
    joined = frame.merge(prices, on=["minute", "ticker"], validate="one_to_one")
    assert len(joined) == len(frame)
    assert (joined["price"] == joined["close"]).all()


def test_ratios_come_from_the_row_itself(frame: pd.DataFrame) -> None:
    f = frame
    np.testing.assert_allclose(f["market_cap"], f["price"] * f["shares"])
    positive = f["eps_ttm"] > 0
    np.testing.assert_allclose(
        f.loc[positive, "pe"], f.loc[positive, "price"] / f.loc[positive, "eps_ttm"]
    )
    np.testing.assert_allclose(f["ps"], f["market_cap"] / f["revenue_ttm"])
    np.testing.assert_allclose(f["debt_to_equity"], f["debt"] / f["equity"])
    np.testing.assert_allclose(f["roe"], f["net_income_ttm"] / f["equity"])
    np.testing.assert_allclose(f["fcf_yield"], f["fcf_ttm"] / f["market_cap"])
    numbers = f.select_dtypes("number").to_numpy()
    assert not np.isinf(numbers).any()
    first = f[(f["ticker"] == "AAPL")].iloc[0]
    assert first["fcf_ttm"] == (135_472 - 12_148) * M  # OCF TTM - capex TTM
    assert first["pe"] == pytest.approx(first["price"] / 7.90)


def test_loss_making_eps_gives_nan_pe_not_inf(facts: pd.DataFrame, prices: pd.DataFrame) -> None:
    """NVIDIA's filings up to its FY2010 10-K give a TTM EPS of -0.12: no meaningful P/E."""
    old = facts[(facts["ticker"] == "NVDA") & (facts["filed"] <= "2010-03-18")]
    rows = fundamentals_frame(old, prices[prices["ticker"] == "NVDA"].head(5))
    assert (rows["eps_ttm"] == -0.12).all()
    assert rows["pe"].isna().all()
    assert rows["market_cap"].notna().all() and rows["ps"].notna().all()


# --- year-over-year growth --------------------------------------------------------------------


def test_growth_columns_are_part_of_the_point_in_time_values() -> None:
    growth = ("revenue_growth_yoy", "net_income_growth_yoy", "eps_growth_yoy")
    assert set(growth) <= set(POINT_IN_TIME_COLUMNS)
    assert set(growth) <= set(FUNDAMENTAL_COLUMNS)


def test_apple_growth_as_of_2026_03_13_from_the_filings(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """TTM to Q1 FY2026 (Dec 2025) vs TTM to Q1 FY2025 (Dec 2024), each FY + Q1 - prior Q1."""
    row = _at(facts, "AAPL", "2026-03-13 09:31").iloc[0]
    aapl = docs["AAPL"]

    def ttm(concept: str, fy: tuple[str, str], q1: tuple[str, str], q1_prior: tuple[str, str]):
        return sum(
            sign * _sec(aapl, concept, start=start, end=end, filed_before="2026-03-13")
            for sign, (start, end) in ((1, fy), (1, q1), (-1, q1_prior))
        )

    periods_now = (("2024-09-29", "2025-09-27"), ("2025-09-28", "2025-12-27"))
    periods_then = (("2023-10-01", "2024-09-28"), ("2024-09-29", "2024-12-28"))
    q1_2024 = ("2023-10-01", "2023-12-30")
    for concept, column, now_then in (
        (
            "RevenueFromContractWithCustomerExcludingAssessedTax",
            "revenue_growth_yoy",
            ((416_161 + 143_756 - 124_300), (391_035 + 124_300 - 119_575)),
        ),
        ("NetIncomeLoss", "net_income_growth_yoy", ((112_010 + 42_097 - 36_330), 96_150)),
        ("EarningsPerShareDiluted", "eps_growth_yoy", ((7.46 + 2.84 - 2.40), (6.08 + 2.40 - 2.18))),
    ):
        now = ttm(concept, *periods_now, periods_then[1])
        then = ttm(concept, *periods_then, q1_2024)
        scale = 1 if column == "eps_growth_yoy" else M
        assert now == pytest.approx(now_then[0] * scale)
        assert then == pytest.approx(now_then[1] * scale)
        assert row[column] == pytest.approx(now / then - 1, rel=1e-12), column
    assert row["revenue_growth_yoy"] == pytest.approx(0.1007, abs=1e-4)


def test_nvidia_and_alphabet_growth_as_of_2026_03_13_are_fiscal_year_ratios(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    nvda = _at(facts, "NVDA", "2026-03-13 09:31").iloc[0]
    fy2026 = _sec(docs["NVDA"], "Revenues", start="2025-01-27", end="2026-01-25", form="10-K")
    fy2025 = _sec(
        docs["NVDA"], "Revenues", start="2024-01-29", end="2025-01-26", filed_before="2026-03-13"
    )
    assert (fy2026, fy2025) == (215_938 * M, 130_497 * M)
    assert nvda["revenue_growth_yoy"] == pytest.approx(fy2026 / fy2025 - 1, rel=1e-12)
    eps = [
        _sec(docs["NVDA"], "EarningsPerShareDiluted", start=s, end=e, filed_before="2026-03-13")
        for s, e in (("2025-01-27", "2026-01-25"), ("2024-01-29", "2025-01-26"))
    ]
    assert eps == [4.90, 2.94]
    assert nvda["eps_growth_yoy"] == pytest.approx(4.90 / 2.94 - 1, rel=1e-12)

    goog = _at(facts, "GOOG", "2026-03-13 09:31").iloc[0]
    fy2025, fy2024 = (
        _sec(docs["GOOG"], "Revenues", start=s, end=e, filed_before="2026-03-13")
        for s, e in (("2025-01-01", "2025-12-31"), ("2024-01-01", "2024-12-31"))
    )
    assert goog["revenue_growth_yoy"] == pytest.approx(fy2025 / fy2024 - 1, rel=1e-12)


def test_growth_moves_only_when_its_filing_is_available(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """NVIDIA's FY2026 10-K (filed 2026-02-25): before it, growth is TTM-to-Oct-2025 based."""
    nvda = docs["NVDA"]

    def revenue(start: str, end: str) -> float:
        return _sec(nvda, "Revenues", start=start, end=end, filed_before="2026-02-25")

    now = revenue("2024-01-29", "2025-01-26") + revenue("2025-01-27", "2025-10-26")
    now -= revenue("2024-01-29", "2024-10-27")
    then = revenue("2023-01-30", "2024-01-28") + revenue("2024-01-29", "2024-10-27")
    then -= revenue("2023-01-30", "2023-10-29")
    rows = _at(facts, "NVDA", "2026-02-25 15:59", "2026-02-26 00:00", "2026-02-26 00:01")
    assert list(rows["revenue_growth_yoy"]) == pytest.approx(
        [now / then - 1, now / then - 1, 215_938 / 130_497 - 1], rel=1e-12
    )


def test_a_restated_prior_year_counts_from_its_filing(facts: pd.DataFrame) -> None:
    """A (made-up) 10-K/A cutting NVIDIA's FY2025 revenue, filed 2026-03-20: growth changes from
    03-21 00:00 and not a minute before; the current TTM does not move."""
    restated = {
        "ticker": "NVDA",
        "field": "revenue",
        "value": 100_000 * M,
        "period_start": pd.Timestamp("2024-01-29"),
        "period_end": pd.Timestamp("2025-01-26"),
        "filed": pd.Timestamp("2026-03-20"),
        "form": "10-K/A",
        "source": SOURCE,
        CONCEPT_COLUMN: "us-gaap:Revenues",
    }
    amended = pd.concat([facts, pd.DataFrame([restated])], ignore_index=True)
    rows = _at(amended, "NVDA", "2026-03-20 15:59", "2026-03-21 00:00", "2026-03-21 00:01")
    assert list(rows["revenue_ttm"]) == [215_938 * M] * 3
    assert list(rows["revenue_growth_yoy"]) == pytest.approx(
        [215_938 / 130_497 - 1] * 2 + [215_938 / 100_000 - 1], rel=1e-12
    )
    assert rows["filed_at"].iloc[2] == pd.Timestamp("2026-03-21")  # the restatement was used


def test_growth_from_a_loss_is_nan(facts: pd.DataFrame) -> None:
    """NVIDIA's FY2010 was a loss (EPS -0.12); FY2011 (10-K filed 2011-03) earned 0.43."""
    row = _at(facts, "NVDA", "2011-04-01 10:00").iloc[0]
    prior = _at(facts, "NVDA", "2010-04-01 10:00").iloc[0]
    assert prior["eps_ttm"] == -0.12 and prior["net_income_ttm"] < 0
    assert row["eps_ttm"] == 0.43
    assert np.isnan(row["eps_growth_yoy"]) and np.isnan(row["net_income_growth_yoy"])
    assert np.isfinite(row["revenue_growth_yoy"])  # revenue was positive both years


def test_eps_growth_across_a_split_uses_one_share_basis(
    facts: pd.DataFrame, docs: dict[str, dict[str, Any]]
) -> None:
    """NVIDIA's 10:1 split (June 2024). On 2024-09-01 the prior-year TTM mixes the FY2023 10-K and
    the H1 FY2023 10-Q (pre-split) with the H1 FY2024 comparative restated in the Aug 2024 10-Q."""
    nvda = docs["NVDA"]

    def eps(start: str, end: str) -> float:
        return _sec(
            nvda, "EarningsPerShareDiluted", start=start, end=end, filed_before="2024-09-01"
        )

    now = eps("2023-01-30", "2024-01-28") / 10 + eps("2024-01-29", "2024-07-28")
    now -= eps("2023-01-30", "2023-07-30")
    then = eps("2022-01-31", "2023-01-29") / 10 + eps("2023-01-30", "2023-07-30")
    then -= eps("2022-01-31", "2022-07-31") / 10
    assert eps("2023-01-30", "2023-07-30") == 0.33  # restated per post-split share
    row = _at(facts, "NVDA", "2024-09-01 10:00").iloc[0]
    # share counts give the factor, so it carries a few percent of buyback drift
    assert row["eps_growth_yoy"] == pytest.approx(now / then - 1, rel=0.05)
    assert row["eps_growth_yoy"] == pytest.approx(row["net_income_growth_yoy"], rel=0.05)


def test_eps_growth_tracks_net_income_growth_through_every_split(facts: pd.DataFrame) -> None:
    """Apple 7:1 (2014) and 4:1 (2020), NVIDIA 4:1 (2021) and 10:1 (2024), Alphabet 20:1 (2022):
    a split mis-based would show as a -75%..-95% gap; buybacks and dilution explain < 15%."""
    stamps = pd.date_range("2012-01-01", "2026-03-27", freq="W")
    for ticker in ("AAPL", "NVDA", "GOOG"):
        rows = _at(facts, ticker, *stamps.astype(str))
        both = rows.dropna(subset=["eps_growth_yoy", "net_income_growth_yoy"])
        assert len(both) > 100, ticker
        ratio = (1 + both["eps_growth_yoy"]) / (1 + both["net_income_growth_yoy"])
        assert ratio.between(0.85, 1.15).all(), (ticker, ratio.min(), ratio.max())


def test_growth_on_the_bundled_session_frame(frame: pd.DataFrame) -> None:
    for ticker in ("AAPL", "NVDA", "GOOG"):
        rows = frame[frame["ticker"] == ticker]
        for column in ("revenue_growth_yoy", "net_income_growth_yoy", "eps_growth_yoy"):
            assert np.isfinite(rows[column]).all(), (ticker, column)
    nvda = frame[frame["ticker"] == "NVDA"]
    np.testing.assert_allclose(nvda["revenue_growth_yoy"], 215_938 / 130_497 - 1, rtol=1e-12)
