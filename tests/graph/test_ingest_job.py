"""The ingest layer materialized through Dagster on real data, and its checks on corrupted data."""

import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey, DagsterInstance

from resources.providers.replay import BUNDLED_REPLAY_DIR
from tests.graph.conftest import Graph, check_results, make_graph, replay_bars_utc
from trading_assets.definitions import defs

SESSION = "2026-03-23"


def test_code_location_loads_the_three_ingest_assets_and_their_checks() -> None:
    graph = defs.resolve_asset_graph()
    ingest = {k for k in graph.get_all_asset_keys() if graph.get(k).group_name == "ingest"}
    assert {k.to_user_string() for k in ingest} == {"bars", "news", "fundamentals"}
    assert {
        "bars_valid",
        "bars_expected_tickers",
        "news_valid",
        "fundamentals_point_in_time",
    } <= {k.name for k in graph.asset_check_keys}
    assert graph.get(AssetKey("fundamentals")).parent_keys == {AssetKey("bars")}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        if not node.is_partitioned:  # the backtest report and the dbt marts span every session
            continue
        assert (
            node.backfill_policy is not None and node.backfill_policy.max_partitions_per_run is None
        )
        assert node.partitions_def is not None


@pytest.fixture(scope="module")
def full_day(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Graph, object, DagsterInstance]]:
    graph = make_graph(tmp_path_factory.mktemp("day"))
    with DagsterInstance.ephemeral() as instance:
        result = graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|15:59")
        yield graph, result, instance


def test_a_full_session_is_one_run_of_390_partitions(full_day) -> None:
    _, result, instance = full_day
    assert result.success
    assert len(instance.get_runs()) == 1
    for asset in ("bars", "news", "fundamentals"):
        parts = instance.get_materialized_partitions(AssetKey(asset))
        assert len(parts) == 390, asset
        assert min(parts) == f"{SESSION}|09:30" and max(parts) == f"{SESSION}|15:59"
    checks = check_results(result)
    assert set(checks) == {
        "bars_valid",
        "bars_expected_tickers",
        "news_valid",
        "fundamentals_point_in_time",
    }
    assert all(e.passed for e in checks.values()), {k: e.description for k, e in checks.items()}


def test_stored_bars_equal_the_source_rows(full_day) -> None:
    graph, _, _ = full_day
    source = replay_bars_utc()
    day = source[
        source["timestamp"].dt.tz_convert("America/New_York").dt.date.astype(str) == SESSION
    ]
    stored = graph.query("SELECT * FROM trading.bars ORDER BY minute, ticker")
    assert len(stored) == len(day) == 9 * 390
    stored_utc = stored.assign(
        timestamp=stored["minute"].dt.tz_localize("America/New_York").dt.tz_convert("UTC")
    )
    joined = stored_utc.merge(
        day, left_on=["ticker", "timestamp"], right_on=["symbol", "timestamp"], validate="1:1"
    )
    assert len(joined) == len(day)
    for col in ("open", "high", "low", "close", "volume"):
        assert (joined[f"{col}_x"] == joined[f"{col}_y"]).all(), col


def test_stored_news_and_fundamentals_are_point_in_time(full_day) -> None:
    graph, _, _ = full_day
    news = graph.query("SELECT * FROM trading.news")
    assert len(news) > 20
    assert (news["published_at"] < news["minute"] + pd.Timedelta(minutes=1)).all()
    assert news["news_id"].is_unique
    fundamentals = graph.query(
        "SELECT f.*, b.close FROM trading.fundamentals f JOIN trading.bars b USING (minute, ticker)"
    )
    assert set(fundamentals["ticker"]) == {"AAPL", "GOOG", "NVDA"}
    assert len(fundamentals) == 3 * 390
    assert (fundamentals["price"] == fundamentals["close"]).all()
    assert (fundamentals["filed_at"] < fundamentals["as_of"]).all()
    assert (fundamentals["as_of"] == fundamentals["minute"] + pd.Timedelta(minutes=1)).all()
    pe = fundamentals["price"] / fundamentals["eps_ttm"]
    assert (fundamentals["pe"] - pe).abs().max() < 1e-9


def test_rematerializing_a_partition_replaces_its_rows(full_day) -> None:
    graph, _, instance = full_day
    result = graph.run(instance, f"{SESSION}|10:00")
    assert result.success
    rows = graph.query(
        "SELECT count(*) AS n FROM trading.bars WHERE minute = ?",
        [pd.Timestamp(f"{SESSION} 10:00")],
    )
    assert rows["n"].iloc[0] == 9
    assert graph.query("SELECT count(*) AS n FROM trading.bars")["n"].iloc[0] == 9 * 390


def corrupted_replay(tmp: Path) -> Path:
    """A copy of the bundled data with one negative price and one duplicated bar."""
    folder = tmp / "replay"
    shutil.copytree(BUNDLED_REPLAY_DIR, folder)
    path = next((folder / "bars").glob("*.parquet"))
    bars = pd.read_parquet(path)
    ts = pd.to_datetime(bars["timestamp"], utc=True)
    negative = (bars["symbol"] == "AAPL") & (ts == pd.Timestamp("2026-03-23 14:05", tz="UTC"))
    bars.loc[negative, "open"] = -bars.loc[negative, "open"]
    duplicate = bars[
        (bars["symbol"] == "MSFT") & (ts == pd.Timestamp("2026-03-23 14:10", tz="UTC"))
    ]
    pd.concat([bars, duplicate]).to_parquet(path, index=False)
    return folder


def test_bad_bars_fail_the_blocking_check_and_stop_downstream(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    graph = make_graph(tmp_path, corrupted_replay(tmp_path))
    result = graph.run(instance, f"{SESSION}|10:00", f"{SESSION}|10:29")
    bars_valid = check_results(result)["bars_valid"]
    assert not bars_valid.passed
    assert bars_valid.severity.value == "ERROR"
    assert "open > 0: 1 rows" in bars_valid.description
    assert "one bar per ticker and minute: 2 rows" in bars_valid.description
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "fundamentals" not in materialized  # blocked: nothing downstream reads bad bars


def test_a_bar_written_past_the_partition_end_fails_the_check(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    graph = make_graph(tmp_path)
    first = graph.run(instance, f"{SESSION}|10:00", f"{SESSION}|10:04")
    assert first.success
    # What a provider leaking a future bar leaves behind: a row of this run beyond its range.
    graph.execute(
        "INSERT INTO trading.bars SELECT * REPLACE (minute + INTERVAL 30 MINUTE AS minute) "
        "FROM trading.bars WHERE minute = ? AND ticker = 'SPY'",
        [pd.Timestamp(f"{SESSION} 10:04")],
    )
    bars_valid = graph.recheck(instance, f"{SESSION}|10:00", f"{SESSION}|10:04", "bars_valid")
    assert not bars_valid.passed
    assert "1 rows written outside the partition range (1 stamped at or after its end" in (
        bars_valid.description
    )


def test_a_headline_stamped_after_its_partition_end_fails_the_check(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    graph = make_graph(tmp_path)
    assert graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|10:29").success
    graph.execute(
        "UPDATE trading.news SET published_at = minute + INTERVAL 5 MINUTE "
        "WHERE news_id = (SELECT min(news_id) FROM trading.news)"
    )
    graph.execute(  # and a duplicate story
        "INSERT INTO trading.news SELECT * FROM trading.news "
        "WHERE news_id = (SELECT max(news_id) FROM trading.news)"
    )
    news_valid = graph.recheck(instance, f"{SESSION}|09:30", f"{SESSION}|10:29", "news_valid")
    assert not news_valid.passed
    assert "published before the partition end: 1 rows" in news_valid.description
    assert "no duplicate story: 2 rows" in news_valid.description


def test_a_fundamental_filed_after_the_partition_fails_the_check(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    graph = make_graph(tmp_path)
    assert graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|09:34").success
    graph.execute(
        "UPDATE trading.fundamentals SET filed_at = as_of + INTERVAL 1 DAY "
        "WHERE ticker = 'NVDA' AND minute = ?",
        [pd.Timestamp(f"{SESSION} 09:31")],
    )
    check = graph.recheck(
        instance, f"{SESSION}|09:30", f"{SESSION}|09:34", "fundamentals_point_in_time"
    )
    assert not check.passed
    assert "every value filed before the partition end: 1 rows" in check.description


def test_a_missing_ticker_is_a_warning_not_a_block(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    folder = tmp_path / "replay"
    shutil.copytree(BUNDLED_REPLAY_DIR, folder)
    path = next((folder / "bars").glob("*.parquet"))
    bars = pd.read_parquet(path)
    bars[bars["symbol"] != "TSLA"].to_parquet(path, index=False)
    graph = make_graph(tmp_path, folder, tickers="AAPL,TSLA")
    result = graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|09:39")
    tickers = check_results(result)["bars_expected_tickers"]
    assert not tickers.passed and tickers.severity.value == "WARN"
    assert tickers.description == "missing tickers: ['TSLA']"
    assert result.success  # downstream still ran


def test_a_quiet_range_still_creates_the_news_table_and_clears_old_rows(
    tmp_path: Path, instance: DagsterInstance
) -> None:
    """No news 15:50-15:52: the table exists (downstream loads work) and holds nothing there."""
    graph = make_graph(tmp_path)
    first, last = f"{SESSION}|15:50", f"{SESSION}|15:52"
    assert graph.run(instance, first, last).success
    assert graph.query("SELECT count(*) n FROM trading.news")["n"][0] == 0
    graph.execute(  # a stale row from an earlier run of the same range
        "INSERT INTO trading.news (minute, news_id, headline) "
        "VALUES ('2026-03-23 15:51:00', 'stale', 'an old headline')"
    )
    assert graph.run(instance, first, last).success
    assert graph.query("SELECT count(*) n FROM trading.news")["n"][0] == 0
