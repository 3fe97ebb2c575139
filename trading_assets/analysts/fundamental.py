"""The fundamental analyst: valuation, growth and balance-sheet quality from one fundamentals row.

Pure functions over one row of the `fundamentals` asset (a mapping of FUNDAMENTAL_COLUMNS
values, e.g. from `frame.to_dict("records")`), so the rules analyst and an LLM see the same
numbers and a backtest can swap one for the other. Plain Python per row (no pandas): an asset
scores ~3,000 rows a day.

The rules view (`fundamental_report`) is deliberately coarse and transparent:

* every input is mapped to a sub-score in [-1, 1] by linear interpolation between reference
  anchors (`BANDS`; flat beyond the ends). The anchors are set for US large-cap technology,
  the bundled universe: a P/E of 30 or a P/S of 8 is "fair" there, not in utilities or banks;
* a pillar is the mean of its known sub-scores; the score is the weighted mean of the known
  pillars (`WEIGHTS`: valuation 0.40, growth 0.35, balance sheet 0.25), clipped to [-1, 1];
* confidence = `MAX_CONFIDENCE` x (share of the 8 inputs known) x freshness, where freshness
  is 1 up to `FRESH_DAYS` since the latest filing became available and falls linearly to
  `STALE_FLOOR` at `STALE_DAYS` (a quarterly filer is never more than ~100 days old; older
  data means a missed filing or a dead feed).

Fundamentals change a few times a year, so this view is a slow prior for the intraday team,
not a timing signal.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime, timedelta
from itertools import pairwise
from typing import Any

import numpy as np

from trading_assets.analysts.report import AnalystReport, neutral_report, stance_of
from trading_assets.numbers import finite

# Reference anchors per input: (value, sub-score) pairs, values increasing. Why these numbers:
# the S&P 500 has traded at ~15-25x earnings for decades, large-cap tech at ~25-35x; P/S 3-8 is
# the large-cap tech middle; a 2.5% FCF yield is roughly the index's; growth of ~5% revenue and
# ~8% EPS is what a mature large cap delivers (zero sub-score), 30%/40% is exceptional.
BANDS: dict[str, tuple[tuple[float, float], ...]] = {
    "pe": ((12.0, 1.0), (20.0, 0.5), (30.0, 0.0), (45.0, -0.5), (70.0, -1.0)),
    "ps": ((1.5, 1.0), (4.0, 0.4), (8.0, 0.0), (15.0, -0.5), (25.0, -1.0)),
    "fcf_yield": ((0.0, -1.0), (0.01, -0.5), (0.025, 0.0), (0.04, 0.5), (0.06, 1.0)),
    "revenue_growth_yoy": ((-0.10, -1.0), (0.0, -0.4), (0.05, 0.0), (0.15, 0.5), (0.30, 1.0)),
    "eps_growth_yoy": ((-0.30, -1.0), (0.0, -0.3), (0.08, 0.0), (0.20, 0.5), (0.40, 1.0)),
    "debt_to_equity": ((0.3, 1.0), (1.0, 0.3), (2.0, -0.3), (4.0, -1.0)),
    "roe": ((0.0, -1.0), (0.08, -0.2), (0.15, 0.3), (0.25, 0.7), (0.40, 1.0)),
}
LOSS_PE_SCORE = -1.0  # loss-making (EPS <= 0): no P/E, and the worst valuation sub-score
NEGATIVE_EQUITY_SCORE = -0.5  # D/E undefined; often buybacks, not distress: a mild penalty
FCF_SIGN_SCORE = {True: 1.0, False: -1.0}  # free cash flow positive / not

WEIGHTS: dict[str, float] = {"valuation": 0.40, "growth": 0.35, "balance sheet": 0.25}
MAX_CONFIDENCE = 0.8  # a sector-agnostic rules view is never fully sure
FRESH_DAYS, STALE_DAYS, STALE_FLOOR = 100.0, 465.0, 0.25

# Plain words per pillar for a sub-score at or above each threshold (checked in order).
_WORDS: dict[str, tuple[tuple[float, str], ...]] = {
    "valuation": ((0.5, "cheap"), (0.15, "reasonable"), (-0.15, "fair"), (-0.5, "rich")),
    "growth": ((0.5, "strong"), (0.15, "solid"), (-0.15, "modest"), (-0.5, "weak")),
    "balance sheet": ((0.5, "strong"), (0.15, "sound"), (-0.15, "mixed"), (-0.5, "weak")),
}
_WORST = {"valuation": "expensive", "growth": "shrinking", "balance sheet": "poor"}

FUNDAMENTAL_INSTRUCTIONS = (
    "You are the fundamental analyst of an intraday trading team. Judge the stock from the "
    "point-in-time fundamentals given (valuation: P/E, P/S, FCF yield; year-over-year TTM growth "
    "of revenue, net income and EPS; balance sheet: debt/equity, ROE, free cash flow), using only "
    "these numbers: growth, yields and ROE are fractions (0.12 = 12%), amounts are US dollars, "
    "null means unknown. Fundamentals move slowly, so state a long-horizon stance, lower your "
    "confidence when inputs are missing or the latest filing is old, and quote the numbers you "
    "rely on in your key points."
)

# Columns passed to an LLM (and stored as the row's features), with their rounding: decimals,
# or a negative number to round big dollar amounts to millions (-6).
_FACT_DIGITS: dict[str, int] = {
    "price": 2,
    "market_cap": -6,
    "revenue_ttm": -6,
    "net_income_ttm": -6,
    "fcf_ttm": -6,
    "equity": -6,
    "debt": -6,
    "eps_ttm": 4,
    "pe": 2,
    "ps": 2,
    "fcf_yield": 4,
    "revenue_growth_yoy": 4,
    "net_income_growth_yoy": 4,
    "eps_growth_yoy": 4,
    "debt_to_equity": 3,
    "roe": 4,
}


# --- reading a row -----------------------------------------------------------------------------


def _num(row: Mapping[str, Any], key: str) -> float | None:
    return finite(row.get(key))


def _when(row: Mapping[str, Any], key: str) -> datetime | None:
    """A naive datetime from a Timestamp, datetime64, date or ISO string; None for NaT/missing."""
    value = row.get(key)
    if value is None:
        return None
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return None
        value = value.astype("datetime64[us]").item()
    elif isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    elif isinstance(value, date) and not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if not isinstance(value, datetime) or value != value:  # NaT != NaT
        return None
    return value.replace(tzinfo=None)


def _ticker(row: Mapping[str, Any]) -> str | None:
    """The symbol, or None when missing or a NaN placeholder (so "nan" never reaches a text)."""
    value = row.get("ticker")
    return value.strip() or None if isinstance(value, str) else None


def _as_of(row: Mapping[str, Any]) -> datetime | None:
    """The instant the row describes: `as_of`, else the end of its minute."""
    as_of = _when(row, "as_of")
    if as_of is None:
        minute = _when(row, "minute")
        as_of = minute + timedelta(minutes=1) if minute is not None else None
    return as_of


def _band(key: str, value: float) -> float:
    """Linear interpolation between the anchors of `BANDS[key]`, flat beyond the ends."""
    anchors = BANDS[key]
    if value <= anchors[0][0]:
        return anchors[0][1]
    for (x0, y0), (x1, y1) in pairwise(anchors):
        if value <= x1:
            return y0 + (y1 - y0) * (value - x0) / (x1 - x0)
    return anchors[-1][1]


def _word(pillar: str, score: float) -> str:
    for threshold, word in _WORDS[pillar]:
        if score >= threshold:
            return word
    return _WORST[pillar]


def _pct(value: float) -> str:
    return f"{value * 100:+.1f}%"


def _usd(value: float) -> str:
    sign = "-" if value < 0 else ""
    value = abs(value)
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M")):
        if value >= scale:
            return f"{sign}${value / scale:.1f}{suffix}"
    return f"{sign}${value:,.0f}"


# --- the rules analyst -------------------------------------------------------------------------


# Each input reads its sub-score and text fragment from a row, or None when it is unknown.
Reading = tuple[float, str] | None


def _banded(key: str, label: Callable[[float], str]) -> Callable[[Mapping[str, Any]], Reading]:
    """An input that is just `BANDS[key]` applied to the row's value."""

    def read(row: Mapping[str, Any]) -> Reading:
        value = _num(row, key)
        return None if value is None else (_band(key, value), label(value))

    return read


def _pe(row: Mapping[str, Any]) -> Reading:
    pe, eps = _num(row, "pe"), _num(row, "eps_ttm")
    if pe is not None:
        return _band("pe", pe), f"P/E {pe:.1f}"
    if eps is not None and eps <= 0:
        return LOSS_PE_SCORE, f"loss-making (TTM EPS {eps:.2f}, no P/E)"
    return None


def _earnings_growth(row: Mapping[str, Any]) -> Reading:
    """EPS growth, else net income growth, on the EPS bands."""
    for key, label in (("eps_growth_yoy", "EPS"), ("net_income_growth_yoy", "net income")):
        value = _num(row, key)
        if value is not None:
            return _band("eps_growth_yoy", value), f"{label} {_pct(value)}"
    return None


def _debt_to_equity(row: Mapping[str, Any]) -> Reading:
    debt_to_equity, equity = _num(row, "debt_to_equity"), _num(row, "equity")
    if debt_to_equity is not None:
        return _band("debt_to_equity", debt_to_equity), f"debt/equity {debt_to_equity:.2f}"
    if equity is not None and equity <= 0:
        return NEGATIVE_EQUITY_SCORE, f"negative equity ({_usd(equity)})"
    return None


def _fcf(row: Mapping[str, Any]) -> Reading:
    fcf = _num(row, "fcf_ttm")
    if fcf is None:
        return None
    sign = "positive" if fcf > 0 else "negative"
    return FCF_SIGN_SCORE[fcf > 0], f"free cash flow {sign} ({_usd(fcf)} TTM)"


# (pillar, name when missing, reader), in the order the text quotes them.
_READERS: tuple[tuple[str, str, Callable[[Mapping[str, Any]], Reading]], ...] = (
    ("valuation", "P/E", _pe),
    ("valuation", "P/S", _banded("ps", lambda v: f"P/S {v:.1f}")),
    ("valuation", "FCF yield", _banded("fcf_yield", lambda v: f"FCF yield {v * 100:.1f}%")),
    ("growth", "revenue growth", _banded("revenue_growth_yoy", lambda v: f"revenue {_pct(v)}")),
    ("growth", "earnings growth", _earnings_growth),
    ("balance sheet", "debt/equity", _debt_to_equity),
    ("balance sheet", "ROE", _banded("roe", lambda v: f"ROE {v * 100:.0f}%")),
    ("balance sheet", "free cash flow", _fcf),
)
INPUTS = len(_READERS)


def _pillars(row: Mapping[str, Any]) -> tuple[dict[str, list[float]], list[str], list[str]]:
    """Sub-scores per pillar, the text fragments per pillar, and the names of missing inputs."""
    subs: dict[str, list[float]] = {p: [] for p in WEIGHTS}
    text: dict[str, list[str]] = {p: [] for p in WEIGHTS}
    missing: list[str] = []
    for pillar, name, read in _READERS:
        reading = read(row)
        if reading is None:
            missing.append(name)
        else:
            subs[pillar].append(reading[0])
            text[pillar].append(reading[1])
    if text["growth"]:
        text["growth"][-1] += " year over year (TTM)"
    fragments = [", ".join(text[p]) for p in WEIGHTS]
    return subs, fragments, missing


def fundamental_report(row: Mapping[str, Any]) -> AnalystReport:
    """A deterministic rules view of one fundamentals row (module docstring: bands, weights).

    A row with nothing known (an ETF, a company without filings, or no filing before the
    minute), or one whose filing is stamped at or after the minute's end (look-ahead), gives the
    neutral fallback with confidence 0 and the reason, never a guess.
    """
    ticker = _ticker(row) or "this ticker"
    subs, fragments, missing = _pillars(row)
    known = {p: sum(v) / len(v) for p, v in subs.items() if v}
    filed_at = _when(row, "filed_at")
    if not known or filed_at is None:
        return neutral_report(
            f"No fundamentals for {ticker} filed before this minute (ETF or not covered): "
            "no fundamental view."
        )

    as_of = _as_of(row)
    if as_of is not None and filed_at >= as_of:  # the blocking check's rule, held here too
        return neutral_report(
            f"Fundamentals for {ticker} say they were filed at {filed_at.isoformat()}, not before "
            f"this minute's end {as_of.isoformat()}: not used (look-ahead), no fundamental view."
        )

    total_weight = sum(WEIGHTS[p] for p in known)
    raw = sum(WEIGHTS[p] * s for p, s in known.items()) / total_weight
    score = round(min(1.0, max(-1.0, raw)), 4)

    days = (as_of - filed_at).total_seconds() / 86400 if as_of is not None else None
    if days is None:
        freshness = STALE_FLOOR
    elif days <= FRESH_DAYS:
        freshness = 1.0
    else:
        slope = (1.0 - STALE_FLOOR) / (STALE_DAYS - FRESH_DAYS)
        freshness = max(STALE_FLOOR, 1.0 - (days - FRESH_DAYS) * slope)
    coverage = (INPUTS - len(missing)) / INPUTS
    confidence = round(MAX_CONFIDENCE * coverage * freshness, 3)

    # Pillars by the size of their pull on the score: the most important point first.
    ordered = sorted(
        (p for p in WEIGHTS if p in known), key=lambda p: -abs(WEIGHTS[p] * known[p] / total_weight)
    )
    index = {p: i for i, p in enumerate(WEIGHTS)}
    points = [
        f"{p.capitalize()} {_word(p, known[p])} ({known[p]:+.2f}): {fragments[index[p]]}."
        for p in ordered
    ]
    age = f"{days:.0f} days old" if days is not None else "age unknown"
    points.append(f"Latest filing available since {filed_at.date().isoformat()} ({age}).")
    if missing:
        points.append("Not known: " + ", ".join(missing) + ".")

    phrases = [f"{_word(p, known[p])} {p}" for p in ordered]
    summary = phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " and " + phrases[-1]
    stance = stance_of(score)
    narrative = (
        f"{ticker} fundamentals read {stance.value} (score {score:+.2f}): {summary}. "
        f"Confidence {confidence:.2f} from {INPUTS - len(missing)} of {INPUTS} inputs and "
        f"filings {age}."
    )
    # A new event's precedents are cited, not scored (see sentiment_report).
    events = row.get("event_summary")
    if isinstance(events, str) and events:
        points = [*points[:5], events]
    return AnalystReport(
        stance=stance,
        score=score,
        confidence=confidence,
        key_points=points[:6],
        narrative=narrative,
    )


# --- what an LLM is shown ----------------------------------------------------------------------


def fundamental_facts(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row's inputs as JSON-able values: rounded, NaN -> None, dates as ISO strings.

    Dollar amounts are rounded to the million, ratios to a few decimals: enough for a judgement,
    and a stable prompt (and so a stable cache key) across float noise.
    """
    facts: dict[str, Any] = {"ticker": _ticker(row)}
    as_of, filed_at = _as_of(row), _when(row, "filed_at")
    period_end = _when(row, "period_end")
    facts["as_of"] = as_of.isoformat() if as_of is not None else None
    facts["filed_at"] = filed_at.isoformat() if filed_at is not None else None
    facts["period_end"] = period_end.date().isoformat() if period_end is not None else None
    facts["days_since_filing"] = (
        round((as_of - filed_at).total_seconds() / 86400, 1)
        if as_of is not None and filed_at is not None
        else None
    )
    for key, digits in _FACT_DIGITS.items():
        value = _num(row, key)
        if value is None:
            facts[key] = None
        elif digits < 0:
            facts[key] = int(round(value, digits))
        else:
            facts[key] = round(value, digits)
    return facts
