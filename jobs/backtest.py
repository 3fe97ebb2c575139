"""The backtest: a backfill of the same minute partitions that run live, plus its report."""

from dagster import AssetSelection, define_asset_job

from trading_assets.assets.ingest import MINUTES

backtest_job = define_asset_job(
    name="backtest_job",
    selection=AssetSelection.groups("ingest", "events", "analysts", "research", "decision")
    | AssetSelection.assets("backtest_fills"),
    partitions_def=MINUTES,
    description="A backtest of a range of session minutes as one run: the whole team from "
    "ingest to trade_signals (sized on the backtest's own book), then backtest_fills. It is "
    "the live path's code over a range; nothing is sent to a broker.",
)

backtest_report_job = define_asset_job(
    name="backtest_report_job",
    selection=AssetSelection.assets("baseline_fills", "backtest_performance")
    | AssetSelection.groups("marts"),
    description="Score every fully backtested session: the team against the baselines with "
    "the equity and drawdown chart, then the dbt marts (trades, daily P&L, strategy "
    "performance, the agents' scorecard) with dbt's tests as checks. Not while intraday_job "
    "runs: dbt needs the DuckDB file to itself.",
)
