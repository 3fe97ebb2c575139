"""The ingest layer: `bars`, `news`, `fundamentals`, minute-partitioned, tickers as rows.

Thin wiring: each asset asks the market-data resource for its partition range and hands the
frame to a pure function in trading_assets.ingest. A range of partitions is one call
(BackfillPolicy.single_run), so backfilling a session is one run and one provider request.
"""

from collections.abc import Callable
from typing import TypeVar

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    BackfillPolicy,
    Backoff,
    Failure,
    Jitter,
    MetadataValue,
    RetryPolicy,
    asset,
)

from resources.errors import ProviderConfigError
from resources.market_data import MarketDataResource
from trading_assets.agents.untrusted import MAX_HEADLINE_CHARS
from trading_assets.assets.metadata import add_run_summary
from trading_assets.assets.minutes import run_minutes
from trading_assets.ingest.bars import bars_frame
from trading_assets.ingest.fundamentals import fundamentals_frame
from trading_assets.ingest.news import (
    dedupe_news,
    provider_rows_dropped,
    rows_over_storage_cap,
)
from trading_assets.partitions import (
    MINUTE_STEP,
    market_minute_partitions,
    session_minutes,
    window_to_utc,
)

MINUTES = market_minute_partitions()
PARTITION_EXPR = "minute"
# Transient provider errors (429 after backoff, 5xx, timeouts) re-run the step; configuration
# errors are raised as Failure(allow_retries=False) so a missing key does not retry three times.
TRANSIENT_RETRY = RetryPolicy(
    max_retries=3, delay=2.0, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS
)
INGEST = {
    "partitions_def": MINUTES,
    "backfill_policy": BackfillPolicy.single_run(),
    "group_name": "ingest",
    "retry_policy": TRANSIENT_RETRY,
    "kinds": {"pandas", "duckdb"},
}

T = TypeVar("T")


def provider_call(fn: Callable[[], T]) -> T:
    """Run a provider request, turning configuration errors into non-retried failures."""
    try:
        return fn()
    except ProviderConfigError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc


def stamped(frame: pd.DataFrame, context: AssetExecutionContext) -> pd.DataFrame:
    """Add the run id: checks use it to find rows a run wrote outside its own window."""
    out = frame.copy()
    out["run_id"] = context.run_id
    return out


def window(context: AssetExecutionContext) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The run's session minutes as naive NY [first bar start, last bar end)."""
    minutes = run_minutes(context)
    return minutes[0], minutes[-1] + MINUTE_STEP


@asset(metadata={"partition_expr": PARTITION_EXPR}, **INGEST)
def bars(context: AssetExecutionContext, market_data: MarketDataResource) -> pd.DataFrame:
    """1-minute OHLCV bars (+ vwap and trade count where the provider has them), one row per
    ticker and minute; `minute` is the bar start in New York time."""
    raw = provider_call(lambda: market_data.fetch_bars(*window_to_utc(*window(context))))
    frame = bars_frame(raw, market_data.bars_provider)
    add_run_summary(
        context,
        {
            "rows": len(frame),
            "tickers": MetadataValue.text(",".join(sorted(frame["ticker"].unique()))),
            "partitions": len(context.partition_keys),
            **market_data.describe(),
        },
    )
    return stamped(frame, context)


@asset(metadata={"partition_expr": PARTITION_EXPR}, **INGEST)
def news(context: AssetExecutionContext, market_data: MarketDataResource) -> pd.DataFrame:
    """Headlines about the universe, deduplicated across providers and repeats, each in the
    partition where it first became known (premarket news lands in the 09:30 partition)."""
    start, end = window(context)
    lookback = pd.Timedelta(days=market_data.news_lookback_days)
    # The grid must reach back past the previous close so overnight stories find their minute.
    grid = session_minutes(
        (start - lookback - pd.Timedelta(days=7)).strftime("%Y-%m-%d"), end.strftime("%Y-%m-%d")
    )
    previous_close = grid[grid < start].max() if (grid < start).any() else start
    fetch_start = min(start - lookback, previous_close)
    raw = provider_call(
        lambda: market_data.fetch_news(
            fetch_start.tz_localize("America/New_York").tz_convert("UTC"),
            end.tz_localize("America/New_York").tz_convert("UTC"),
        )
    )
    frame = dedupe_news(raw, market_data.universe(), grid, start, end)
    dropped = provider_rows_dropped(raw, market_data.universe())
    add_run_summary(
        context,
        {
            "stories": len(frame),
            "provider_rows_read": len(raw),
            # Not silent: rows that could not become a story, and why (the read includes the
            # look-back, so these count over the whole read, not only the run's minutes).
            "provider_rows_blank_headline": dropped["blank_headline"],
            "provider_rows_no_universe_ticker": dropped["no_universe_ticker"],
            # ... and rows whose text was cut to what the table keeps (MAX_STORED_CHARS)
            "provider_rows_text_truncated": rows_over_storage_cap(raw),
            "headlines_over_prompt_cap": int(
                (frame["headline"].str.len() > MAX_HEADLINE_CHARS).sum()
            ),
            "partitions": len(context.partition_keys),
            **market_data.describe(),
        },
    )
    return stamped(frame, context)


@asset(
    metadata={"partition_expr": PARTITION_EXPR},
    ins={"bars": AssetIn()},
    **INGEST,
)
def fundamentals(
    context: AssetExecutionContext, market_data: MarketDataResource, bars: pd.DataFrame
) -> pd.DataFrame:
    """A point-in-time snapshot per ticker and minute: the latest values filed before the
    partition end (TTM revenue, net income, EPS, FCF; equity, debt, shares) and the ratios
    that need that minute's close (P/E, P/S, debt/equity, ROE, FCF yield)."""
    facts = provider_call(market_data.fetch_facts)
    frame = fundamentals_frame(facts, bars[["minute", "ticker", "close"]])
    add_run_summary(
        context,
        {
            "rows": len(frame),
            "tickers_with_facts": MetadataValue.text(",".join(sorted(frame["ticker"].unique()))),
            "facts_read": len(facts),
            **market_data.describe(),
        },
    )
    return stamped(frame, context)
