"""Column contracts shared by providers, ingest functions, checks and later layers.

Two shapes exist for each dataset:

* **provider frames**: what a provider returns. Timestamps are tz-aware UTC, because every
  API speaks UTC and mixing zones inside a provider is how off-by-an-hour bugs start.
* **asset frames**: what the ingest assets store. Every timestamp is a *naive
  America/New_York wall clock* (DESIGN: the DuckDB IO manager filters partitions with naive
  wall-clock strings, so a tz-aware column would miss every row). `minute` is the partition
  key's bar start and is the `partition_expr` of every minute asset.
"""

from __future__ import annotations

import pandas as pd

MARKET_TZ = "America/New_York"

# --- provider frames (tz-aware UTC) -----------------------------------------------------------

PROVIDER_BAR_COLUMNS: dict[str, str] = {
    "ticker": "string",
    "timestamp": "datetime64[ns, UTC]",  # bar start
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "vwap": "float64",  # NaN where the provider has none
    "trade_count": "float64",  # NaN where the provider has none
}

PROVIDER_NEWS_COLUMNS: dict[str, str] = {
    "provider": "string",  # replay | alpaca | finnhub
    "provider_id": "string",  # the provider's own id (or a hash of url + headline)
    "published_at": "datetime64[ns, UTC]",
    "headline": "string",
    "summary": "string",  # "" where the provider has none
    "source": "string",  # publisher, e.g. "Reuters"
    "url": "string",
    "tickers": "object",  # list[str] of upper-case symbols
}

# Long format: one row per reported value. `field` is one of FUNDAMENTAL_FIELDS.
# Duration fields (revenue, net_income, eps_diluted, operating_cash_flow, capex) have a
# period_start; instant fields (equity, debt, shares) have period_start = NaT.
PROVIDER_FACT_COLUMNS: dict[str, str] = {
    "ticker": "string",
    "field": "string",
    "value": "float64",
    "period_start": "datetime64[ns]",  # date, NaT for instant values
    "period_end": "datetime64[ns]",  # date
    "filed": "datetime64[ns]",  # date the filing became public (SEC `filed`)
    "form": "string",  # 10-K, 10-Q, ... or the provider's label
    "source": "string",  # sec-companyfacts | finnhub
    "concept": "string",  # the provider's own name, e.g. us-gaap:Revenues (picks per as-of)
}

DURATION_FIELDS: tuple[str, ...] = (
    "revenue",
    "net_income",
    "eps_diluted",
    "operating_cash_flow",
    "capex",
)
INSTANT_FIELDS: tuple[str, ...] = ("equity", "debt", "shares")
FUNDAMENTAL_FIELDS: tuple[str, ...] = DURATION_FIELDS + INSTANT_FIELDS

# --- asset frames (naive New York wall clock) --------------------------------------------------

BAR_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # partition key = bar start, naive NY
    "ticker": "string",
    "open": "float64",
    "high": "float64",
    "low": "float64",
    "close": "float64",
    "volume": "float64",
    "vwap": "float64",
    "trade_count": "float64",
    "provider": "string",
}

NEWS_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",  # the partition in which the story first became known
    "news_id": "string",  # stable id of the deduplicated story
    "published_at": "datetime64[ns]",  # naive NY
    "headline": "string",
    "summary": "string",
    "source": "string",  # publishers, "; "-joined when several carried the story
    "url": "string",
    "tickers": "string",  # comma-joined upper-case symbols in the universe
    "providers": "string",  # comma-joined providers that delivered the story
}

FUNDAMENTAL_COLUMNS: dict[str, str] = {
    "minute": "datetime64[ns]",
    "ticker": "string",
    "as_of": "datetime64[ns]",  # partition end: values known strictly before this instant
    "revenue_ttm": "float64",
    "net_income_ttm": "float64",
    "eps_ttm": "float64",
    "equity": "float64",
    "debt": "float64",
    "fcf_ttm": "float64",
    "shares": "float64",
    "price": "float64",  # close of the partition's bar
    "market_cap": "float64",
    "pe": "float64",
    "ps": "float64",
    "debt_to_equity": "float64",
    "roe": "float64",
    "fcf_yield": "float64",
    # Year over year, as fractions (0.12 = +12%): TTM ending at the latest known period vs the TTM
    # ending a year earlier, both as known before as_of. NaN when either TTM is unknown or the
    # prior year is <= 0 (growth from a loss has no meaningful sign).
    "revenue_growth_yoy": "float64",
    "net_income_growth_yoy": "float64",
    "eps_growth_yoy": "float64",
    "period_end": "datetime64[ns]",  # latest fiscal period end among the values used
    "filed_at": "datetime64[ns]",  # latest availability instant among the values used
}


def to_market_naive(values: pd.Series) -> pd.Series:
    """Instants (tz-aware, or naive UTC) as the naive New York wall clock the warehouse stores."""
    return pd.to_datetime(values, utc=True).dt.tz_convert(MARKET_TZ).dt.tz_localize(None)


def empty_frame(columns: dict[str, str]) -> pd.DataFrame:
    """An empty frame with the contract's columns and dtypes (a minute with no data is valid)."""
    return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})


def conform(frame: pd.DataFrame, columns: dict[str, str]) -> pd.DataFrame:
    """Select and order the contract's columns, casting to its dtypes.

    Raises a ValueError naming the missing columns so a bad provider frame fails loudly.
    """
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"frame is missing contract columns {missing}; has {list(frame.columns)}")
    out = frame.loc[:, list(columns)].copy()
    for name, dtype in columns.items():
        if dtype == "object" or str(out[name].dtype) == dtype:
            continue
        if dtype.startswith("datetime64[ns, UTC]"):
            out[name] = pd.to_datetime(out[name], utc=True).astype(dtype)
        elif dtype.startswith("datetime64"):
            out[name] = pd.to_datetime(out[name]).astype(dtype)
        else:
            out[name] = out[name].astype(dtype)
    return out.reset_index(drop=True)
