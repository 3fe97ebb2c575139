"""The dbt marts through Dagster, on a warehouse the real graph wrote.

The bundled session (2026-03-23): research (ingest .. debate) over 09:30-10:29 with the rules
agents, trade_signals decided from the ledger, the rest of the session's bars (so every trade
can reach its exit or the close), then backtest_fills: the team's signals through the lead's
`simulate_fills` and the rule baselines through `run_baselines`, both with the real FillModel.
`dbt build` then runs as the `warehouse_marts` asset, a subprocess on the same DuckDB file, and
what it wrote is compared with the same figures computed in pandas from the asset tables.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd
import pytest
import yaml
from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    define_asset_job,
    materialize,
)

from resources.trading_controls import TradingControls
from resources.warehouse import warehouse_resource
from tests.graph.conftest import Graph, make_graph
from trading_assets.assets.dbt import DBT_DIR, dbt_resource, warehouse_marts
from trading_assets.assets.ingest import MINUTES
from trading_assets.backtest.baselines import run_baselines
from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS
from trading_assets.backtest.simulate import simulate_fills
from trading_assets.execution.fills import FillModel
from trading_assets.execution.ledger import LEDGER_COLUMNS

SESSION = "2026-03-23"
FIRST, LAST = f"{SESSION}|09:30", f"{SESSION}|10:29"
REST = (f"{SESSION}|10:30", f"{SESSION}|15:59")
MARTS = ["fct_trades", "fct_daily_pnl", "mart_strategy_performance", "mart_agent_scorecard"]
MODELS = [*MARTS, "stg_bars", "stg_signals", "stg_fills", "stg_orders", "stg_agent_calls"]
AGENTS = ["fundamental", "judge", "macro", "sentiment", "technical"]

BARS_ONLY = define_asset_job(
    "bars_only", selection=AssetSelection.assets("bars"), partitions_def=MINUTES
)


@dataclass
class Built:
    graph: Graph
    fills: pd.DataFrame
    first: ExecuteInProcessResult
    second: ExecuteInProcessResult
    tables_first: dict[str, pd.DataFrame]

    def query(self, sql: str) -> pd.DataFrame:
        return self.graph.query(sql)


def build_marts(graph: Graph, instance: DagsterInstance) -> ExecuteInProcessResult:
    return materialize(
        [warehouse_marts],
        resources={"dbt": dbt_resource(), "warehouse": warehouse_resource(graph.warehouse)},
        instance=instance,
        raise_on_error=False,
    )


def read_marts(graph: Graph) -> dict[str, pd.DataFrame]:
    return {name: graph.query(f"SELECT * FROM analytics.{name}") for name in MARTS}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("marts")
    base = make_graph(tmp, controls=TradingControls(portfolio_source="ledger"))
    graph = Graph(Definitions.merge(base.defs, Definitions(jobs=[BARS_ONLY])), base.warehouse)
    with DagsterInstance.ephemeral() as instance:
        for first, last, job in [
            (FIRST, LAST, "research_job"),
            (FIRST, LAST, "decision_job"),
            (*REST, BARS_ONLY.name),
        ]:
            assert graph.run(instance, first, last, job=job).success, job
        signals = graph.query("SELECT * FROM trading.trade_signals")
        bars = graph.query("SELECT * FROM trading.bars")
        model = FillModel()
        agents = simulate_fills(signals, bars, model)
        baselines = pd.concat(run_baselines(bars, model, 100_000.0).values(), ignore_index=True)
        fills = pd.concat([agents, baselines], ignore_index=True)
        with duckdb.connect(str(graph.warehouse)) as conn:
            for table, frame in (("backtest_fills", agents), ("baseline_fills", baselines)):
                conn.register("fills_frame", frame)
                conn.execute(f"CREATE TABLE trading.{table} AS SELECT * FROM fills_frame")
                conn.unregister("fills_frame")
        first_run = build_marts(graph, instance)
        tables = read_marts(graph) if first_run.success else {}
        second_run = build_marts(graph, instance)
        yield Built(graph, fills, first_run, second_run, tables)


def test_dbt_builds_every_model_as_an_asset_with_its_tests_as_passing_checks(built) -> None:
    for result in (built.first, built.second):
        assert result.success
        materialized = {
            e.asset_key.to_user_string() for e in result.get_asset_materialization_events()
        }
        assert materialized == set(MODELS)
        evaluations = result.get_asset_check_evaluations()
        assert len(evaluations) == len(list(warehouse_marts.check_specs)) >= 40
        failed = {e.check_name: e.description for e in evaluations if not e.passed}
        assert not failed
    names = {e.check_name for e in built.first.get_asset_check_evaluations()}
    assert {
        "assert_trade_pnl_reconciles_with_fills",
        "assert_fills_at_real_bars_after_the_decision",
        "assert_trades_match_their_signals",
    } <= names


def test_sources_are_the_graphs_assets_in_a_separate_schema() -> None:
    upstream = {k.to_user_string() for k in warehouse_marts.dependency_keys} - {
        k.to_user_string() for k in warehouse_marts.keys
    }
    assert upstream == {
        "bars",
        "trade_signals",
        "backtest_fills",
        "baseline_fills",
        "broker_orders",
        "debate",
        "technical_analysis",
        "fundamental_analysis",
        "sentiment_analysis",
        "macro_analysis",
    }
    assert set(warehouse_marts.group_names_by_key.values()) == {"marts"}


def test_round_trips_and_pnl_equal_the_fills_computed_in_pandas(built) -> None:
    fills, trades = built.fills, built.tables_first["fct_trades"]
    assert {"agents", "buy_and_hold", "macd"} <= set(trades["strategy"])
    assert (trades.loc[trades["strategy"] == "agents", "is_closed"]).all()
    opening = ((fills["position_side"] == "long") & (fills["side"] == "buy")) | (
        (fills["position_side"] == "short") & (fills["side"] == "sell")
    )
    entries = fills[opening].assign(notional=lambda f: f["qty"] * f["price"])
    exits = fills[~opening].sort_values("minute")
    keys = ["strategy", "trade_id"]
    expected = (
        fills.groupby(keys)
        .agg(net_pnl=("cash_delta", "sum"), commission=("commission", "sum"))
        .join(entries.groupby(keys).agg(qty=("qty", "sum"), notional=("notional", "sum")))
        .join(
            exits.groupby(keys).agg(exit_reason=("reason", "last"), exit_minute=("minute", "max"))
        )
        .reset_index()
    )
    expected["avg_entry_price"] = expected["notional"] / expected["qty"]
    got = trades.set_index(keys).loc[expected.set_index(keys).index].reset_index()
    assert len(trades) == len(expected)
    for column in ["net_pnl", "commission", "qty", "avg_entry_price"]:
        assert got[column].to_numpy() == pytest.approx(expected[column].to_numpy(), abs=1e-6)
    assert got["exit_reason"].tolist() == expected["exit_reason"].tolist()
    # the daily and strategy marts add up to the closed trades
    closed = trades[trades["is_closed"]]
    per_strategy = closed.groupby("strategy")["net_pnl"].sum()
    performance = built.tables_first["mart_strategy_performance"].set_index("strategy")
    daily = built.tables_first["fct_daily_pnl"].groupby("strategy")["pnl"].sum()
    assert performance["total_pnl"].sort_index().to_numpy() == pytest.approx(
        per_strategy.sort_index().to_numpy()
    )
    assert daily.sort_index().to_numpy() == pytest.approx(per_strategy.sort_index().to_numpy())
    agents = performance.loc["agents"]
    assert agents["trades"] == int((trades["strategy"] == "agents").sum()) >= 1
    assert agents["wins"] == int((closed[closed["strategy"] == "agents"]["net_pnl"] > 0).sum())


def expected_scorecard(built: Built, agent: str, horizon: int) -> tuple[int, int, float]:
    """calls, hits and mean signed return of one agent at one horizon, in pandas."""
    bars = built.query("SELECT ticker, minute, close FROM trading.bars")
    if agent == "judge":
        views = built.query(
            "SELECT ticker, minute, CASE action WHEN 'BUY' THEN 1 ELSE -1 END AS direction "
            "FROM trading.debate WHERE debated AND action IN ('BUY', 'SELL')"
        )
    else:
        views = built.query(f"SELECT ticker, minute, stance FROM trading.{agent}_analysis")
        views["direction"] = views["stance"].map({"bullish": 1, "bearish": -1, "neutral": 0})
    later = bars.rename(columns={"close": "close_later"})
    later["minute"] = later["minute"] - pd.Timedelta(minutes=horizon)
    scored = views.merge(bars, on=["ticker", "minute"]).merge(later, on=["ticker", "minute"])
    same_session = (scored["minute"] + pd.Timedelta(minutes=horizon)).dt.date == scored[
        "minute"
    ].dt.date
    scored = scored[same_session & (scored["direction"] != 0)]
    signed = scored["direction"] * (scored["close_later"] / scored["close"] - 1)
    return len(scored), int((signed > 0).sum()), float(signed.mean())


@pytest.mark.parametrize(("agent", "horizon"), [("technical", 15), ("macro", 5), ("judge", 30)])
def test_agent_scorecard_equals_a_pandas_computation(built, agent: str, horizon: int) -> None:
    card = built.tables_first["mart_agent_scorecard"]
    assert sorted(card["agent"].unique()) == AGENTS and len(card) == 15
    row = card[(card["agent"] == agent) & (card["horizon_minutes"] == horizon)].iloc[0]
    calls, hits, mean = expected_scorecard(built, agent, horizon)
    assert calls > 0
    assert (row["calls"], row["hits"]) == (calls, hits)
    assert row["avg_signed_return"] == pytest.approx(mean)
    assert row["hit_rate"] == pytest.approx(hits / calls)


def test_a_rebuild_is_idempotent_and_orders_are_empty_without_a_ledger(built) -> None:
    again = read_marts(built.graph)
    for name, frame in built.tables_first.items():
        pd.testing.assert_frame_equal(frame, again[name], check_exact=False)
    # a backtest-only warehouse has no broker_orders table: stg_orders is empty but typed
    orders = built.query("SELECT * FROM analytics.stg_orders")
    assert orders.empty and {"signal_id", "side", "realised_pnl"} <= set(orders.columns)


def test_the_optional_sources_contracts_match_the_python_ones() -> None:
    project = yaml.safe_load((DBT_DIR / "dbt_project.yml").read_text())
    assert list(project["vars"]["backtest_fill_columns"]) == list(BACKTEST_FILL_COLUMNS)
    assert list(project["vars"]["ledger_columns"]) == list(LEDGER_COLUMNS)


def test_the_profile_writes_where_the_io_manager_does() -> None:
    profile = yaml.safe_load((DBT_DIR / "profiles.yml").read_text())
    output = profile["trading"]["outputs"]["warehouse"]
    assert output["path"] == "{{ env_var('TRADING_WAREHOUSE') }}"
    assert output["schema"] not in ("trading", Path("warehouse.duckdb").stem)
