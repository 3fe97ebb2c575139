"""A backtest end to end through Dagster: one real session backfilled as one run, scored against
the baselines, the dbt marts built with their tests as checks; re-running replaces rows."""

import base64
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from dagster import ExecuteInProcessResult

from benchmarks.ui_probe import UiServer, chromium_path, open_pages
from tests.graph.conftest import Graph, make_graph, throwaway_postgres_instance

SESSION = "2026-03-23"
START = 100_000.0
STRATEGIES = {"agents", "buy_and_hold", "sma_crossover", "macd", "kdj_rsi", "zero_mean_reversion"}


@dataclass
class Backtested:
    graph: Graph
    backtest: ExecuteInProcessResult
    report: ExecuteInProcessResult
    performance: pd.DataFrame
    fills_before_rerun: pd.DataFrame
    home: Path  # the instance's folder: a Postgres instance the UI can open


@pytest.fixture(scope="module")
def backtested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backtested]:
    graph = make_graph(tmp_path_factory.mktemp("backtest"))
    home = tmp_path_factory.mktemp("instance")
    with throwaway_postgres_instance(home) as (instance, _):
        assert graph.run(instance, "2026-03-20|09:30", "2026-03-20|15:59").success
        backtest = graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|15:59", job="backtest_job")
        assert backtest.success
        report = graph.defs.resolve_job_def("backtest_report_job").execute_in_process(
            instance=instance, raise_on_error=False
        )
        fills = graph.query("SELECT * EXCLUDE (run_id) FROM trading.backtest_fills ORDER BY ALL")
        # the same range again: its rows are replaced, not added
        again = graph.run(instance, f"{SESSION}|09:30", f"{SESSION}|15:59", job="backtest_job")
        assert again.success
        yield Backtested(
            graph,
            backtest,
            report,
            report.output_for_node("backtest_performance") if report.success else pd.DataFrame(),
            fills,
            home,
        )


def total(backtested: Backtested, strategy: str) -> pd.Series:
    """A strategy's row over every ticker."""
    frame = backtested.performance
    (row,) = frame[(frame["strategy"] == strategy) & (frame["scope"] == "all")].itertuples()
    return pd.Series(row._asdict())


def test_the_backfill_is_one_run_and_rerunning_replaces_its_rows(backtested: Backtested) -> None:
    # one run materialized every minute of the session, for every asset of the job
    events = backtested.backtest.get_asset_materialization_events()
    fills = {e.partition for e in events if e.asset_key.to_user_string() == "backtest_fills"}
    signals = {e.partition for e in events if e.asset_key.to_user_string() == "trade_signals"}
    assert len(fills) == len(signals) == 390
    after = backtested.graph.query(
        "SELECT * EXCLUDE (run_id) FROM trading.backtest_fills ORDER BY ALL"
    )
    pd.testing.assert_frame_equal(after, backtested.fills_before_rerun)
    signals = backtested.graph.query("SELECT signal_id FROM trading.trade_signals")
    assert signals["signal_id"].is_unique and len(signals) > 0


def test_the_report_scores_the_team_against_the_five_baselines(backtested: Backtested) -> None:
    assert backtested.report.success
    frame = backtested.performance
    table = frame[frame["scope"] == "all"].set_index("strategy")
    assert set(table.index) == STRATEGIES
    assert (table["sessions"] == 1).all()
    numbers = table.select_dtypes("number").drop(columns=["profit_factor"])
    assert numbers.map(math.isfinite).all().all()  # no NaN for a user to puzzle over
    assert (table["profit_factor"] >= 0).all()  # inf only when there were wins and no losses
    # the team's return is what its fills did: flat at the close, so the sum of their cash
    fills = backtested.graph.query("SELECT * FROM trading.backtest_fills")
    assert table.loc["agents", "cumulative_return"] == pytest.approx(
        fills["cash_delta"].sum() / START, abs=1e-12
    )
    assert table.loc["agents", "trades"] == fills["trade_id"].nunique()
    assert table.loc["agents", "commissions"] == pytest.approx(fills["commission"].sum())
    # per ticker rows add up to the total
    tickers = frame[(frame["scope"] == "ticker") & (frame["strategy"] == "agents")]
    assert tickers["pnl"].sum() == pytest.approx(fills["cash_delta"].sum())


def test_buy_and_hold_equals_a_direct_computation_from_the_bars(backtested: Backtested) -> None:
    bars = backtested.graph.query(
        "SELECT * FROM trading.bars WHERE minute >= ?::DATE AND minute < ?::DATE + 1 "
        "ORDER BY minute",
        [SESSION, SESSION],
    )
    per_ticker = START / bars["ticker"].nunique()
    final = 0.0
    for _, one in bars.groupby("ticker"):
        buy = one["open"].iloc[0] * 1.0005
        shares = math.floor(per_ticker / buy)
        sell = one["close"].iloc[-1] * 0.9995
        commission = 2 * max(0.99, 0.0049 * shares)
        final += per_ticker + shares * (sell - buy) - commission
    assert total(backtested, "buy_and_hold")["cumulative_return"] == pytest.approx(
        final / START - 1, rel=1e-9
    )


def test_the_chart_and_the_table_are_in_the_assets_metadata(backtested: Backtested) -> None:
    (event,) = backtested.report.asset_materializations_for_node("backtest_performance")
    chart = event.metadata["equity_and_drawdown"].value
    png = base64.b64decode(chart.split("base64,", 1)[1].split(")", 1)[0])
    assert "Equity (top" in chart  # the caption under it
    assert png.startswith(b"\x89PNG")
    table = event.metadata["performance"].value  # inline in the UI: a table, not Markdown
    rows = {r.data["strategy"]: r.data for r in table.records}
    assert set(rows) == STRATEGIES
    agents = total(backtested, "agents")
    assert rows["agents"]["return %"] == pytest.approx(agents["cumulative_return"] * 100, abs=0.01)
    assert event.metadata["agents_cumulative_return_pct"].value == rows["agents"]["return %"]
    assert Path(event.metadata["chart_path"].value).read_bytes() == png


def test_the_marts_are_built_and_every_dbt_test_passes(backtested: Backtested) -> None:
    evaluations = backtested.report.get_asset_check_evaluations()
    assert len(evaluations) >= 40
    assert [e.check_name for e in evaluations if not e.passed] == []
    marts = backtested.graph.query(
        "SELECT strategy, trades FROM analytics.mart_strategy_performance ORDER BY strategy"
    )
    assert set(marts["strategy"]) == STRATEGIES
    for row in marts.itertuples():
        assert row.trades == total(backtested, row.strategy)["trades"]


@pytest.mark.skipif(chromium_path() is None, reason="Chromium is not installed")
def test_the_backtest_is_readable_in_the_ui(backtested: Backtested, tmp_path: Path) -> None:
    """A real webserver on the backtest's instance and a real browser: the pages a user opens
    after a backtest complete (no query left pending) and show what they are for: the table
    inline, the debate's verdicts, the checks, the run's steps; no pop-up in the way."""
    pages = ["catalog", "backtest_performance_overview", "debate_overview", "bars_checks"]
    pages.append("backtest_run")
    env = {"TRADING_WAREHOUSE": str(backtested.graph.warehouse)}
    with UiServer(backtested.home, env=env) as server:
        results = open_pages(server, pages, timeout_s=45, shots=tmp_path)
    assert [r.name for r in results if not r.complete] == [], [r.reason for r in results]
    assert not any(r.community_popup for r in results)
    shown = {r.name: r.text for r in results}
    assert "return %" in shown["backtest_performance_overview"]  # the table, not a link to it
    assert "buy_and_hold" in shown["backtest_performance_overview"]
    assert "consensus" in shown["debate_overview"] and "rationale" in shown["debate_overview"]
    assert "bars_valid" in shown["bars_checks"] and "news_valid" not in shown["bars_checks"]
    steps = re.search(r"Succeeded \((\d+)\)", shown["backtest_run"])  # the gantt's step list
    assert steps and int(steps.group(1)) > 10 and "Errored (0)" in shown["backtest_run"]
