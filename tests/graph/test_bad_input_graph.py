"""End to end: corrupted bars stop the whole team before any signal or order can exist.

The real code location on a throw-away DuckDB warehouse and Dagster instance runs the intraday
job (ingest .. trade_signals) for one minute of a copy of the bundled replay in which that
minute's bars carry a NaN close, a negative open and a duplicated ticker-minute (and a story
without a headline, which must be dropped and counted, not lost silently). The blocking
`bars_valid` check must fail naming all three, and no asset downstream of `bars` (analysts,
debate, trade_signals) may be materialized: with no trade signal there is nothing to order.
"""

import shutil
from pathlib import Path

import pandas as pd
from dagster import AssetKey, AssetSelection, DagsterInstance

from resources.providers.replay import BUNDLED_REPLAY_DIR
from tests.graph.conftest import check_results, make_graph

SESSION = "2026-03-23"
MINUTE_UTC = pd.Timestamp(f"{SESSION} 14:00", tz="UTC")  # 10:00 New York


def corrupted_minute(tmp: Path) -> Path:
    """The bundled replay with the 10:00 bars broken three ways (real rows, mutated)."""
    folder = tmp / "replay"
    shutil.copytree(BUNDLED_REPLAY_DIR, folder)
    path = next((folder / "bars").glob("*.parquet"))
    bars = pd.read_parquet(path)
    at = pd.to_datetime(bars["timestamp"], utc=True) == MINUTE_UTC
    bars.loc[at & (bars["symbol"] == "AAPL"), "close"] = float("nan")
    bars.loc[at & (bars["symbol"] == "MSFT"), "open"] *= -1
    again = bars[at & (bars["symbol"] == "NVDA")]
    pd.concat([bars, again], ignore_index=True).to_parquet(path, index=False)
    news = next((folder / "news").glob("*.csv"))
    with news.open("a") as fh:  # and a story with no headline, a minute before
        fh.write("2026-03-23T13:59:30Z,AAPL,Nobody,,https://example.invalid,x.md\n")
    return folder


def test_corrupted_bars_block_every_signal_and_order(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    graph = make_graph(tmp_path, corrupted_minute(tmp_path))
    result = graph.run(instance, f"{SESSION}|10:00", job="intraday_job")

    bars_valid = check_results(result)["bars_valid"]
    assert not bars_valid.passed and bars_valid.severity.value == "ERROR"
    for problem in ("close present: 1 rows", "open > 0: 1 rows", "one bar per ticker and minute"):
        assert problem in bars_valid.description, bars_valid.description

    below = AssetSelection.assets("bars").downstream().resolve(graph.defs.resolve_asset_graph())
    downstream = {k.to_user_string() for k in below} - {"bars"}
    assert {"technical_analysis", "debate", "trade_signals"} <= downstream
    events = {e.asset_key.to_user_string(): e for e in result.get_asset_materialization_events()}
    materialized = set(events)
    assert "bars" in materialized
    # The headline-less story is not stored, and the news asset says so.
    news_meta = events["news"].materialization.metadata
    assert news_meta["provider_rows_blank_headline"].value == 1
    assert not materialized & downstream, materialized & downstream
    assert not instance.get_materialized_partitions(AssetKey("trade_signals"))
    tables = set(graph.query("SELECT table_name FROM information_schema.tables")["table_name"])
    assert "trade_signals" not in tables and "broker_orders" not in tables
