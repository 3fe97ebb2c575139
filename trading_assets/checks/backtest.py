"""Checks on the simulated fills: a backtest is only worth reading if its fills are possible."""

import pandas as pd
from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    MetadataValue,
)
from dagster_duckdb import DuckDBResource

from resources.warehouse import SCHEMA
from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS
from trading_assets.checks.ingest import RUN_ID, load_rows, minute_check, missing_table

SLACK = 1e-6  # float noise on prices built from bar prices


def fill_problems(fills: pd.DataFrame, bars: pd.DataFrame) -> list[str]:
    """Every fill that could not have happened: in or before the minute that decided it, based
    on a price outside its bar's low..high, moved in the trader's favour, or exiting more
    shares than the trade entered."""
    problems: list[str] = []
    early = fills[fills["minute"] <= fills["signal_minute"]]
    for row in early.head(5).itertuples():
        problems.append(f"{row.trade_id}: filled in bar {row.minute} of its own decision minute")
    merged = fills.merge(
        bars[["minute", "ticker", "low", "high"]], on=["minute", "ticker"], how="left"
    )
    no_bar = merged[merged["low"].isna()]
    for row in no_bar.head(5).itertuples():
        problems.append(f"{row.trade_id}: no {row.ticker} bar at {row.minute}")
    ref = merged["reference_price"]
    outside = merged[
        merged["low"].notna() & ((ref < merged["low"] - SLACK) | (ref > merged["high"] + SLACK))
    ]
    for row in outside.head(5).itertuples():
        problems.append(
            f"{row.trade_id}: based on {row.reference_price:.4f}, outside the {row.ticker} bar "
            f"{row.low:.4f}..{row.high:.4f} at {row.minute}"
        )
    buys, sells = merged["side"] == "buy", merged["side"] == "sell"
    favoured = merged[
        (buys & (merged["price"] < ref - SLACK)) | (sells & (merged["price"] > ref + SLACK))
    ]
    for row in favoured.head(5).itertuples():
        problems.append(
            f"{row.trade_id}: {row.side} at {row.price:.4f}, better than the bar's "
            f"{row.reference_price:.4f} (slippage must cost, never pay)"
        )
    opened = fills[fills["reason"] == "entry"].groupby("trade_id")["qty"].sum()
    closed = fills[fills["reason"] != "entry"].groupby("trade_id")["qty"].sum()
    over = closed[closed > opened.reindex(closed.index).fillna(0) + 1e-9]
    for trade_id, qty in over.head(5).items():
        problems.append(f"{trade_id}: exits {qty:g} shares, more than it entered")
    return problems


@minute_check(
    asset="backtest_fills",
    name="backtest_fills_possible",
    blocking=True,
    description="Every simulated fill happens after the minute that decided it, is based on a "
    "price inside its bar's low..high and moved against the trader by the slippage, and no "
    "trade exits more than it entered.",
)
def backtest_fills_possible(
    context: AssetCheckExecutionContext, warehouse: DuckDBResource
) -> AssetCheckResult:
    loaded = load_rows(context, warehouse, "backtest_fills", {**BACKTEST_FILL_COLUMNS, **RUN_ID})
    if loaded is None:
        return missing_table("backtest_fills")
    fills = loaded.inside
    with warehouse.get_connection() as conn:
        bars = conn.execute(
            f"SELECT minute, ticker, low, high FROM {SCHEMA}.bars WHERE minute >= ? AND minute < ?",
            [loaded.start, loaded.end],
        ).df()
    problems = fill_problems(fills, bars) if len(fills) else []
    if len(loaded.stray):
        problems.append(f"{len(loaded.stray)} rows written outside the partition range")
    return AssetCheckResult(
        passed=not problems,
        severity=AssetCheckSeverity.ERROR,
        description="; ".join(problems[:10]) or f"{len(fills)} fills possible",
        metadata={"fills": len(fills), "first_problems": MetadataValue.json(problems[:20])},
    )


BACKTEST_CHECKS = [backtest_fills_possible]
