"""SEC XBRL company facts -> point-in-time fundamentals per (ticker, minute).

Three steps, each a plain function over DataFrames:

1. `facts_from_companyfacts`: the SEC JSON to a long frame of every reported value, keeping every
   (period, filing) version, because a restated number must not leak back before its filing.
2. `point_in_time_values`: for each (ticker, as_of) the values known strictly before `as_of`
   (TTM for flows, latest balance for stocks), choosing per as-of which XBRL concept to trust.
3. `fundamentals_frame`: joins those values to minute closes and derives valuation ratios.

Year-over-year growth (`revenue_growth_yoy`, `net_income_growth_yoy`, `eps_growth_yoy`) compares
the TTM ending at the latest known period with the TTM ending about a year (52-53 weeks or 365
days, +-7 days) earlier, both built by the same TTM rule from the facts known at the as-of. The
prior year is therefore "as known then": a comparative restated in a later 10-Q counts once that
10-Q is available, and never before. Growth = current / prior - 1 as a fraction; NaN when either
TTM is unknown or the prior one is <= 0 (growth from a loss or from zero has no meaningful sign).

Companies change concepts over the years (Apple revenue moved from `SalesRevenueNet` to
`Revenues` to `RevenueFromContractWithCustomerExcludingAssessedTax`; NVIDIA capex from
`PaymentsToAcquirePropertyPlantAndEquipment` to `PaymentsToAcquireProductiveAssets`), so a fixed
first-present concept would freeze on stale data. Instead, at each as-of the concepts of a field
are ranked by their most recent period end (ties: the order in `CONCEPTS`), and each period takes
its value from the best-ranked concept that reports it. Lower-ranked concepts only fill periods the
leader lacks, which is what makes TTM work across a switch (the new concept's first 10-Q has no
prior annual figure under its own name).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, overload

import numpy as np
import pandas as pd

from trading_assets.schemas import (
    DURATION_FIELDS,
    FUNDAMENTAL_COLUMNS,
    FUNDAMENTAL_FIELDS,
    INSTANT_FIELDS,
    MARKET_TZ,
    PROVIDER_FACT_COLUMNS,
    conform,
    empty_frame,
)

SOURCE = "sec-companyfacts"

# Extra column carried next to PROVIDER_FACT_COLUMNS: the XBRL concept ("ns:Name") a row came
# from. `point_in_time_values` ranks concepts with it; without it each field is one concept.
CONCEPT_COLUMN = "concept"

# Per field, concepts in tie-break order ("ns:Name"; "a+b" = the sum of a and b reported in the
# same filing for the same period). Which one is used is decided per as-of (module docstring).
CONCEPTS: dict[str, tuple[str, ...]] = {
    "revenue": (
        "us-gaap:RevenueFromContractWithCustomerExcludingAssessedTax",
        "us-gaap:Revenues",
        "us-gaap:SalesRevenueNet",
        "us-gaap:RevenueFromContractWithCustomerIncludingAssessedTax",
    ),
    "net_income": ("us-gaap:NetIncomeLoss", "us-gaap:ProfitLoss"),
    "eps_diluted": ("us-gaap:EarningsPerShareDiluted", "us-gaap:EarningsPerShareBasicAndDiluted"),
    "operating_cash_flow": (
        "us-gaap:NetCashProvidedByUsedInOperatingActivities",
        "us-gaap:NetCashProvidedByUsedInOperatingActivitiesContinuingOperations",
    ),
    "capex": (
        "us-gaap:PaymentsToAcquirePropertyPlantAndEquipment",
        "us-gaap:PaymentsToAcquireProductiveAssets",
    ),
    "equity": (
        "us-gaap:StockholdersEquity",
        "us-gaap:StockholdersEquityIncludingPortionAttributableToNoncontrollingInterest",
    ),
    # Balance-sheet carrying amount first: `LongTermDebt` is often the face value from the debt
    # note (Alphabet 2025-12-31: 49,085M face vs 48,543M carried). Noncurrent alone is a last
    # resort for filings that do not tag the current portion (it understates by that portion).
    "debt": (
        "us-gaap:LongTermDebtNoncurrent+us-gaap:LongTermDebtCurrent",
        "us-gaap:LongTermDebt",
        "us-gaap:LongTermDebtNoncurrent",
    ),
    # The cover-page count is dated near the filing date, so it usually wins on recency; it is
    # absent for multi-class issuers (Alphabet), where the balance-sheet total is used.
    "shares": ("dei:EntityCommonStockSharesOutstanding", "us-gaap:CommonStockSharesOutstanding"),
}

FIELD_UNITS: dict[str, str] = {
    **dict.fromkeys(FUNDAMENTAL_FIELDS, "USD"),
    "eps_diluted": "USD/shares",
    "shares": "shares",
}

# Financial statements and their amendments, plus 8-K recasts. Proxy statements (DEF 14A
# pay-versus-performance tables) and prospectuses (424B*) repeat old numbers years later and are
# not statements; they are left out.
FORMS: frozenset[str] = frozenset(
    {"10-K", "10-K/A", "10-Q", "10-Q/A", "10-KT", "10-KT/A", "10-QT", "10-QT/A", "8-K", "8-K/A"}
)

# Period classification by length in days (end - start + 1); 52/53-week years give 364-371.
ANNUAL_DAYS = (350, 380)
QUARTER_DAYS = (80, 100)
_MATCH_DAYS = 3  # tolerance when chaining periods (a fiscal year starts the day after the last)
_SAME_LENGTH_DAYS = 10  # a 14-week quarter still matches last year's 13-week one
# The same period a year earlier ends 364 (52 weeks), 365/366 (calendar) or 371 (53 weeks) days
# before; +-7 days around 365 takes all of them and never a neighbouring quarter.
_YEAR_DAYS, _YEAR_TOLERANCE_DAYS = 365, 7

_TTM_NAMES: dict[str, str] = {
    "revenue": "revenue_ttm",
    "net_income": "net_income_ttm",
    "eps_diluted": "eps_ttm",
    "operating_cash_flow": "operating_cash_flow_ttm",
    "capex": "capex_ttm",
}
# Flows whose year-over-year growth is reported; the others (cash flow, capex) are too lumpy.
_GROWTH_NAMES: dict[str, str] = {
    "revenue": "revenue_growth_yoy",
    "net_income": "net_income_growth_yoy",
    "eps_diluted": "eps_growth_yoy",
}
GROWTH_COLUMNS: tuple[str, ...] = tuple(_GROWTH_NAMES.values())
VALUE_COLUMNS: tuple[str, ...] = (
    *(_TTM_NAMES[f] for f in DURATION_FIELDS),
    *INSTANT_FIELDS,
    *GROWTH_COLUMNS,
)
POINT_IN_TIME_COLUMNS: tuple[str, ...] = (
    "ticker",
    "as_of",
    *VALUE_COLUMNS,
    "period_end",
    "filed_at",
)

_NO_START = np.iinfo(np.int64).min  # instants have no period start


# --- SEC JSON -> long facts ------------------------------------------------------------------


def _parts(concept: str) -> list[tuple[str, str]]:
    """`"ns:A+ns:B"` -> [("ns", "A"), ("ns", "B")]."""
    out = []
    for part in concept.split("+"):
        namespace, _, name = part.partition(":")
        out.append((namespace, name))
    return out


def _concept_records(doc: dict[str, Any], concept: str, unit: str) -> pd.DataFrame:
    """All facts of one plain concept in one unit, with the accession number for pairing."""
    ((namespace, name),) = _parts(concept)
    facts = doc.get("facts", {}).get(namespace, {}).get(name, {}).get("units", {}).get(unit, [])
    rows = [
        (f.get("start"), f["end"], f["val"], f["filed"], f.get("form", ""), f.get("accn", ""))
        for f in facts
        if f.get("form", "") in FORMS and f.get("val") is not None and f.get("filed")
    ]
    return pd.DataFrame(rows, columns=["start", "end", "value", "filed", "form", "accn"])


def facts_from_companyfacts(doc: dict[str, Any], ticker: str) -> pd.DataFrame:
    """Every value of the mapped concepts as PROVIDER_FACT_COLUMNS (+ `concept`).

    Keeps each (period, filing) version: a 10-Q's comparative column and a later restatement are
    separate rows, and only their `filed` dates decide when each becomes usable. Within one
    filing, a period reported under several concepts of a field keeps the first in `CONCEPTS`
    order (Apple tags both `LongTermDebt` and its balance-sheet parts in the same 10-Q).
    """
    frames = []
    for field, concepts in CONCEPTS.items():
        unit = FIELD_UNITS[field]
        for priority, concept in enumerate(concepts):
            parts = [_concept_records(doc, f"{ns}:{name}", unit) for ns, name in _parts(concept)]
            frame = parts[0]
            for other in parts[1:]:  # a sum concept: both parts from the same filing and period
                frame = frame.merge(
                    other[["start", "end", "accn", "value"]],
                    on=["start", "end", "accn"],
                    suffixes=("", "_part"),
                )
                frame["value"] = frame["value"] + frame.pop("value_part")
            if frame.empty:
                continue
            frames.append(frame.assign(field=field, concept=concept, priority=priority))
    if not frames:
        return empty_frame(PROVIDER_FACT_COLUMNS).assign(
            **{CONCEPT_COLUMN: pd.Series(dtype="string")}
        )
    facts = pd.concat(frames, ignore_index=True)
    is_duration = facts["field"].isin(DURATION_FIELDS)
    facts = facts[is_duration == facts["start"].notna()]  # a flow needs a start, a stock none
    facts = facts.sort_values(["priority"], kind="stable").drop_duplicates(
        ["field", "accn", "start", "end"], keep="first"
    )
    facts = facts.drop_duplicates(["field", "concept", "start", "end", "filed", "value"])
    facts = facts.assign(
        ticker=ticker,
        source=SOURCE,
        period_start=pd.to_datetime(facts["start"]),
        period_end=pd.to_datetime(facts["end"]),
        filed=pd.to_datetime(facts["filed"]),
    ).sort_values(["field", "period_end", "filed", "priority"], kind="stable")
    return conform(facts, PROVIDER_FACT_COLUMNS)


def reduce_companyfacts(doc: dict[str, Any]) -> dict[str, Any]:
    """The same SEC JSON with only the concepts `CONCEPTS` uses (a few hundred KB, not MB).

    The structure is unchanged, so a full file from data.sec.gov and a reduced one read alike.
    """
    wanted: dict[str, set[str]] = {}
    for concepts in CONCEPTS.values():
        for concept in concepts:
            for namespace, name in _parts(concept):
                wanted.setdefault(namespace, set()).add(name)
    facts: dict[str, dict[str, Any]] = {}
    for namespace, concepts in doc.get("facts", {}).items():
        kept = {name: body for name, body in concepts.items() if name in wanted.get(namespace, ())}
        if kept:
            facts[namespace] = kept
    return {**{k: v for k, v in doc.items() if k != "facts"}, "facts": facts}


# --- availability ------------------------------------------------------------------------------


@overload
def available_at(filed: pd.Series) -> pd.Series: ...
@overload
def available_at(filed: pd.Timestamp | str) -> pd.Timestamp: ...
def available_at(filed: pd.Series | pd.Timestamp | str) -> pd.Series | pd.Timestamp:
    """When a fact filed on date D may be used: D+1 00:00 New York (naive wall clock).

    SEC's `filed` is a date without a time and EDGAR accepts filings until 22:00, after the close,
    so treating a filing as known on its own date would let a backtest trade on a 10-K during the
    hours before it was public. The next midnight is the earliest instant that is always safe.
    """
    if isinstance(filed, pd.Series):
        stamps = pd.to_datetime(filed, cache=False)
        if stamps.dt.tz is not None:
            stamps = stamps.dt.tz_convert(MARKET_TZ).dt.tz_localize(None)
        return stamps.dt.normalize() + pd.Timedelta(days=1)
    stamp = pd.Timestamp(filed)
    if stamp.tzinfo is not None:
        stamp = stamp.tz_convert(MARKET_TZ).tz_localize(None)
    return stamp.normalize() + pd.Timedelta(days=1)


# --- point-in-time values ---------------------------------------------------------------------


class _FieldFacts:
    """One ticker's facts for one field as arrays sorted by availability (prefix = known set)."""

    def __init__(self, field: str, columns: dict[str, np.ndarray], positions: np.ndarray) -> None:
        order = {c: i for i, c in enumerate(CONCEPTS.get(field, ()))}
        self.available = columns["available_ns"][positions]
        self.start = columns["_start"][positions]
        self.end = columns["_end"][positions]
        self.value = columns["value"][positions]
        codes, names = pd.factorize(columns["_concept"][positions])
        self.concept = codes.astype(np.int64)
        self.static_rank = np.array([order.get(n, len(order)) for n in names], dtype=np.int64)

    def known(self, state_ns: int) -> int:
        """How many rows are available at the availability instant `state_ns` (a prefix)."""
        return int(np.searchsorted(self.available, state_ns, side="right"))


def _days(values: pd.Series) -> np.ndarray:
    """Dates as int64 day numbers; NaT -> _NO_START (only instants' period_start is NaT)."""
    stamps = pd.to_datetime(values, cache=False).to_numpy("datetime64[D]")
    days = stamps.astype(np.int64)
    days[np.isnat(stamps)] = _NO_START
    return days


def _periods(facts: _FieldFacts, n: int) -> tuple[np.ndarray, ...]:
    """One value per period among the first `n` rows: the best-ranked concept, latest filing."""
    concept = facts.concept[:n]
    end = facts.end[:n]
    latest = np.full(facts.static_rank.size, _NO_START // 2)  # not yet reported: ranked last
    np.maximum.at(latest, concept, end)
    # concept rank at this as-of: most recent period end first, then the CONCEPTS order
    ranked = np.lexsort((facts.static_rank, -latest))
    rank = np.empty_like(ranked)
    rank[ranked] = np.arange(ranked.size)
    row_rank = rank[concept]
    start, available = facts.start[:n], facts.available[:n]
    # per (start, end): best concept, then the latest filing, then the last row of that filing
    order = np.lexsort((-np.arange(n), -available, row_rank, end, start))
    first = np.ones(n, dtype=bool)
    s, e = start[order], end[order]
    first[1:] = (s[1:] != s[:-1]) | (e[1:] != e[:-1])
    pick = order[first]
    return start[pick], end[pick], facts.value[:n][pick], available[pick]


_NONE = (np.nan, np.nan, np.nan)

# (start, end, value, available) per period, as `_periods` returns them.
Periods = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]

# Puts a value filed at one availability instant on the share basis of another (EPS only).
Rebase = Callable[[float, int, int], float]


def _instant(facts: _FieldFacts | None, n: int) -> tuple[float, float, float]:
    """(value, period_end day, available ns) of the latest balance known, NaNs if none."""
    if facts is None or n == 0:
        return _NONE
    _, end, value, available = _periods(facts, n)
    i = int(np.argmax(end))
    return float(value[i]), float(end[i]), float(available[i])


def _ttm(
    periods: Periods | None,
    rebase: Rebase | None,
    *,
    until: float | None = None,
    basis: int | None = None,
) -> tuple[float, float, float]:
    """(TTM value, period_end day, latest available ns among parts) or NaNs.

    Latest period a fiscal year -> that year. Else annual + YTD - prior-year YTD (the annual must
    end the day before the YTD starts, the prior YTD start with that annual and match its length).
    Else four consecutive reported quarters. Anything else is not guessed.

    `until` (a day number) computes the TTM ending at that period instead of the latest one.
    `basis` (an availability instant) puts every part on that instant's share basis; without it
    only an annual combined with a YTD is rebased, to the YTD's filing (the current TTM).
    """
    if periods is None:
        return _NONE
    start, end, value, available = periods
    if until is not None:
        keep = end <= until
        start, end, value, available = start[keep], end[keep], value[keep], available[keep]
    if not end.size:
        return _NONE

    def part(k: int, to: int) -> float:
        if rebase is None or (basis is None and to == available[k]):
            return float(value[k])
        return rebase(float(value[k]), int(available[k]), to)

    length = end - start + 1
    annual = (length >= ANNUAL_DAYS[0]) & (length <= ANNUAL_DAYS[1])
    last = end.max()
    at_last = np.flatnonzero(end == last)
    for i in at_last:
        if annual[i]:
            total = float(value[i]) if basis is None else part(i, basis)
            return total, float(last), float(available[i])
    for i in sorted(at_last, key=lambda j: -length[j]):
        if length[i] >= ANNUAL_DAYS[0]:
            continue
        gap = np.abs(end - (start[i] - 1))
        years = np.flatnonzero(annual & (gap <= _MATCH_DAYS))
        for a in sorted(years, key=lambda j: gap[j]):
            same = np.abs(length - length[i])
            prior = np.flatnonzero(
                (np.abs(start - start[a]) <= _MATCH_DAYS)
                & (same <= _SAME_LENGTH_DAYS)
                & (end < start[i])
            )
            if prior.size:
                p = min(prior, key=lambda j: same[j])
                if basis is None:
                    total = part(a, int(available[i])) + float(value[i]) - float(value[p])
                else:
                    total = part(a, basis) + part(i, basis) - part(p, basis)
                return total, float(last), float(max(available[[a, i, p]]))
    quarter = (length >= QUARTER_DAYS[0]) & (length <= QUARTER_DAYS[1])
    chain: list[int] = []
    target, tolerance = last, 0
    for _ in range(4):
        gap = np.abs(end - target)
        candidates = np.flatnonzero(quarter & (gap <= tolerance))
        if not candidates.size:
            return _NONE
        q = min(candidates, key=lambda j: gap[j])
        chain.append(q)
        target, tolerance = start[q] - 1, _MATCH_DAYS
    total = float(value[chain].sum()) if basis is None else sum(part(q, basis) for q in chain)
    return total, float(last), float(max(available[chain]))


def _growth(
    periods: Periods | None, current: tuple[float, float, float], rebase: Rebase | None
) -> tuple[float, float]:
    """(current / prior-year TTM - 1, latest available ns among the prior's parts) or NaNs.

    The prior year is the TTM ending a year before the current one, from the same known periods;
    for EPS its parts go on the share basis of the current TTM's latest filing, because a split
    between the two years would otherwise read as a 75% (4:1) or 90% (10:1) collapse.
    """
    value, last, available = current
    if periods is None or np.isnan(value):
        return np.nan, np.nan
    ends = np.unique(periods[1])
    offset = np.abs(last - ends - _YEAR_DAYS)
    for k in np.argsort(offset, kind="stable"):
        if offset[k] > _YEAR_TOLERANCE_DAYS:
            break
        basis = int(available) if rebase is not None else None
        prior, _, prior_available = _ttm(periods, rebase, until=float(ends[k]), basis=basis)
        if np.isnan(prior):
            continue
        if prior <= 0:
            return np.nan, np.nan
        growth = value / prior - 1.0
        return (growth, prior_available) if np.isfinite(growth) else (np.nan, np.nan)
    return np.nan, np.nan


def _per_share_rebase(shares: _FieldFacts | None) -> Rebase | None:
    """Puts last year's EPS on the share basis of the current YTD when a split lies between.

    After a split the next 10-Q restates its YTD comparatives per new share, but the 10-K's annual
    EPS stays per old share until the next 10-K; mixing them gave NVIDIA a TTM EPS of 8.46 rather
    than ~2.8 after its 2021 4:1 split. The company's own share counts at the two filings give the
    factor. Only a change of x1.5 or more counts as a new basis (buybacks move counts by a few
    percent a year), and the factor is the raw ratio, so it carries that drift (<~3%).
    """
    if shares is None:
        return None

    def rebase(value: float, from_available: int, to_available: int) -> float:
        before = _instant(shares, shares.known(from_available))[0]
        after = _instant(shares, shares.known(to_available))[0]
        if not (before > 0 and after > 0):
            return value
        factor = after / before
        return value / factor if factor >= 1.5 or factor <= 1 / 1.5 else value

    return rebase


def _snapshot(by_field: dict[str, _FieldFacts], state_ns: int) -> dict[str, Any]:
    """All values of one ticker known at one availability instant."""
    row: dict[str, Any] = {}
    ends, availables = [], []
    rebase = _per_share_rebase(by_field.get("shares"))
    for field in FUNDAMENTAL_FIELDS:
        facts = by_field.get(field)
        n = facts.known(state_ns) if facts is not None else 0
        if field in DURATION_FIELDS:
            periods = _periods(facts, n) if facts is not None and n else None
            field_rebase = rebase if field == "eps_diluted" else None
            value, end, available = _ttm(periods, field_rebase)
            if field in _GROWTH_NAMES:
                growth, prior_available = _growth(periods, (value, end, available), field_rebase)
                row[_GROWTH_NAMES[field]] = growth
                if not np.isnan(growth):
                    availables.append(prior_available)
        else:
            value, end, available = _instant(facts, n)
        row[_TTM_NAMES.get(field, field)] = value
        if not np.isnan(value):
            ends.append(end)
            availables.append(available)
    row["period_end"] = pd.Timestamp(int(max(ends)), unit="D") if ends else pd.NaT
    row["filed_at"] = pd.Timestamp(int(max(availables))) if availables else pd.NaT
    return row


def _prepare_facts(facts: pd.DataFrame) -> pd.DataFrame:
    """Contract columns + availability instant + concept (the field itself when absent)."""
    missing = [c for c in PROVIDER_FACT_COLUMNS if c not in facts.columns]
    if missing:
        raise ValueError(f"facts frame is missing {missing}")
    prepared = facts.loc[facts["field"].isin(FUNDAMENTAL_FIELDS) & facts["value"].notna()].copy()
    prepared["ticker"] = prepared["ticker"].astype(str)
    prepared["_concept"] = (
        prepared[CONCEPT_COLUMN].astype(str)
        if CONCEPT_COLUMN in prepared.columns
        else prepared["field"].astype(str)
    )
    prepared["_start"] = _days(prepared["period_start"])
    prepared["_end"] = _days(prepared["period_end"])
    prepared["available_ns"] = (
        available_at(prepared["filed"]).to_numpy("datetime64[ns]").view(np.int64)
    )
    return prepared.sort_values(["ticker", "field", "available_ns"], kind="stable")


def point_in_time_values(facts: pd.DataFrame, as_of: pd.DataFrame) -> pd.DataFrame:
    """Per (ticker, as_of) row: the fundamentals known strictly before `as_of`.

    Returns POINT_IN_TIME_COLUMNS (flows as TTM: `revenue_ttm`, ..., `eps_ttm`; stocks as the
    latest balance). `as_of` holds naive New York timestamps. Values only change when a filing
    becomes available, so each row is mapped (merge_asof) to the last availability instant of its
    ticker before `as_of`; values are computed once per distinct (ticker, instant) and broadcast.
    Rows keep the input order; `filed_at` (latest availability among the values used) is NaT when
    nothing is known yet, else always < `as_of`.
    """
    if isinstance(as_of["as_of"].dtype, pd.DatetimeTZDtype):
        raise ValueError("as_of must be naive America/New_York wall clock, not tz-aware")
    rows = pd.DataFrame(
        {
            "ticker": as_of["ticker"].astype(str).to_numpy(),
            "as_of": pd.to_datetime(as_of["as_of"], cache=False).to_numpy("datetime64[ns]"),
            "_row": np.arange(len(as_of)),
        }
    )
    prepared = _prepare_facts(facts)
    tickers = set(rows["ticker"])
    prepared = prepared[prepared["ticker"].isin(tickers)]
    states = (
        prepared[["ticker", "available_ns"]]
        .drop_duplicates()
        .assign(_state=lambda f: f["available_ns"].astype("datetime64[ns]"))
        .sort_values("_state")
    )
    mapped = pd.merge_asof(
        rows.sort_values("as_of", kind="stable"),
        states[["ticker", "_state"]],
        left_on="as_of",
        right_on="_state",
        by="ticker",
        allow_exact_matches=False,  # a fact available at exactly as_of is not "before" it
        direction="backward",
    )
    needed = mapped.loc[mapped["_state"].notna(), ["ticker", "_state"]].drop_duplicates()
    columns = {
        "available_ns": prepared["available_ns"].to_numpy(np.int64),
        "_start": prepared["_start"].to_numpy(np.int64),
        "_end": prepared["_end"].to_numpy(np.int64),
        "value": prepared["value"].to_numpy(np.float64),
        "_concept": prepared["_concept"].to_numpy(object),
    }
    groups = prepared.groupby(["ticker", "field"], sort=False).indices  # rows sorted by time
    snapshots = []
    for ticker, group in needed.groupby("ticker", sort=False):
        by_field = {
            field: _FieldFacts(field, columns, positions)
            for (owner, field), positions in groups.items()
            if owner == ticker
        }
        for state in group["_state"]:
            snapshot = _snapshot(by_field, int(state.value))
            snapshots.append({"ticker": ticker, "_state": state, **snapshot})
    table = pd.DataFrame(
        snapshots, columns=["ticker", "_state", *VALUE_COLUMNS, "period_end", "filed_at"]
    )
    table[list(VALUE_COLUMNS)] = table[list(VALUE_COLUMNS)].astype("float64")
    for column in ("_state", "period_end", "filed_at"):
        table[column] = pd.to_datetime(table[column]).astype("datetime64[ns]")
    out = mapped.merge(table, on=["ticker", "_state"], how="left").sort_values("_row")
    result = out.loc[:, list(POINT_IN_TIME_COLUMNS)].reset_index(drop=True)
    result["ticker"] = result["ticker"].astype("string")
    return result


# --- the asset frame ---------------------------------------------------------------------------


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    """numerator / denominator, NaN where the denominator is not positive or the result not finite.

    A non-positive denominator (loss-making EPS, negative equity) makes these ratios meaningless
    rather than large, so they are blanked instead of signed.
    """
    num = numerator.to_numpy(np.float64)
    den = denominator.to_numpy(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        result = np.where(den > 0, num / den, np.nan)
    result[~np.isfinite(result)] = np.nan
    return pd.Series(result, index=numerator.index)


def fundamentals_frame(facts: pd.DataFrame, prices: pd.DataFrame) -> pd.DataFrame:
    """FUNDAMENTAL_COLUMNS for each (minute, ticker) of `prices` with something already filed.

    `prices` has `minute` (naive NY bar start), `ticker`, `close`. The as-of instant is the
    partition end (minute + 1 min), so a filing available at 00:00 is used from the first bar.
    Tickers without facts (ETFs, companies without a bundled filing) give no rows.
    """
    frame = pd.DataFrame(
        {
            "minute": pd.to_datetime(prices["minute"], cache=False).to_numpy("datetime64[ns]"),
            "ticker": prices["ticker"].astype(str).to_numpy(),
            "price": prices["close"].astype("float64").to_numpy(),
        }
    )
    frame["as_of"] = frame["minute"] + pd.Timedelta(minutes=1)
    values = point_in_time_values(facts, frame[["ticker", "as_of"]])
    frame = pd.concat([frame, values.drop(columns=["ticker", "as_of"])], axis=1)
    frame = frame[frame["filed_at"].notna()].copy()
    frame["fcf_ttm"] = frame["operating_cash_flow_ttm"] - frame["capex_ttm"]
    frame["market_cap"] = frame["price"] * frame["shares"]
    frame["pe"] = _ratio(frame["price"], frame["eps_ttm"])
    frame["ps"] = _ratio(frame["market_cap"], frame["revenue_ttm"])
    frame["debt_to_equity"] = _ratio(frame["debt"], frame["equity"])
    frame["roe"] = _ratio(frame["net_income_ttm"], frame["equity"])
    frame["fcf_yield"] = _ratio(frame["fcf_ttm"], frame["market_cap"])
    frame = frame.sort_values(["minute", "ticker"], kind="stable")
    return conform(frame, FUNDAMENTAL_COLUMNS)
