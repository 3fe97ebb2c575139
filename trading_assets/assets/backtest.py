"""The backtest layer: the team's signals filled by the paper broker's rules, and how they did.

`backtest_fills` is minute-partitioned by the bar a fill happened in, so partition m holds only
what was knowable at m's close; a backfill of any range of minutes is a backtest of that range.
"""

import datetime as dt
import os

import pandas as pd
from dagster import (
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    Config,
    DagsterInstance,
    Failure,
    MetadataValue,
    TableColumn,
    TableMetadataValue,
    TableRecord,
    TableSchema,
    asset,
)
from dagster_duckdb import DuckDBResource
from duckdb import DuckDBPyConnection
from pydantic import Field

from resources.llm import LLMResource, token_cost
from resources.trading_controls import TradingControls
from resources.warehouse import SCHEMA, data_dir, table_exists
from trading_assets.assets.analysts import MINUTE_ASSET
from trading_assets.assets.decision import SESSION_HISTORY
from trading_assets.assets.ingest import PARTITION_EXPR, stamped
from trading_assets.assets.metadata import add_run_summary
from trading_assets.assets.minutes import run_minutes
from trading_assets.backtest.baselines import run_baselines
from trading_assets.backtest.chart import equity_chart_png, markdown_image
from trading_assets.backtest.metrics import equity_curve, per_ticker, performance_table
from trading_assets.backtest.schema import BACKTEST_FILL_COLUMNS
from trading_assets.backtest.simulate import STRATEGY, simulate_fills
from trading_assets.execution.fills import FillModel
from trading_assets.partitions import key_minutes, session_bounds, session_minutes_of
from trading_assets.schemas import conform

_COSTS = FillModel()


class FillCosts(Config):
    """Execution costs and limits of the simulation (the paper broker's defaults)."""

    commission_per_share: float = Field(_COSTS.commission_per_share, ge=0)
    min_commission: float = Field(_COSTS.min_commission, ge=0)
    slippage_bps: float = Field(_COSTS.slippage_bps, ge=0)
    max_volume_fraction: float = Field(_COSTS.max_volume_fraction, gt=0, le=1)

    def model(self) -> FillModel:
        return FillModel(**self.model_dump())


@asset(
    ins={
        "trade_signals": SESSION_HISTORY,
        "bars": SESSION_HISTORY,
    },
    metadata={"partition_expr": PARTITION_EXPR},
    group_name="backtest",
    kinds={"pandas", "duckdb"},
    **MINUTE_ASSET,
)
def backtest_fills(
    context: AssetExecutionContext,
    config: FillCosts,
    trade_signals: pd.DataFrame,
    bars: pd.DataFrame,
) -> pd.DataFrame:
    """Every simulated execution in the run's minutes: entries at the next bar's open with
    slippage, commission and a volume cap, bracket exits (the stop when a bar reaches both),
    flat at the close. The session's earlier signals are read too: their exits land here."""
    minutes = run_minutes(context)
    first, last = minutes.min(), minutes.max()
    fills = simulate_fills(trade_signals, bars, config.model(), horizon=last)
    fills = fills[(fills["minute"] >= first) & (fills["minute"] <= last)].reset_index(drop=True)
    entries = fills[fills["reason"] == "entry"]
    add_run_summary(
        context,
        {
            "fills": len(fills),
            "trades_entered": int(entries["trade_id"].nunique()),
            "by_reason": MetadataValue.json(fills["reason"].value_counts().to_dict()),
            "commissions_usd": round(float(fills["commission"].sum()), 2),
            "slippage_usd": round(float(fills["slippage_cost"].sum()), 2),
            "cash_flow_usd": round(float(fills["cash_delta"].sum()), 2),
            "costs": MetadataValue.json(config.model_dump()),
        },
    )
    return stamped(fills, context)


AGENT_TABLES = (
    "technical_analysis",
    "fundamental_analysis",
    "sentiment_analysis",
    "macro_analysis",
    "bull_case",
    "bear_case",
    "debate",
)


class BacktestWindow(Config):
    """Which fully backtested sessions to score (default: all of them)."""

    first_session: str = Field("", description="YYYY-MM-DD; default: the first backtested")
    last_session: str = Field("", description="YYYY-MM-DD; default: the last backtested")

    def sessions(self, instance: DagsterInstance) -> list[dt.date]:
        days = backtested_sessions(instance)
        if self.first_session:
            days = [d for d in days if d >= dt.date.fromisoformat(self.first_session)]
        if self.last_session:
            days = [d for d in days if d <= dt.date.fromisoformat(self.last_session)]
        if not days:
            raise Failure(
                description="no session is fully backtested in this window: backfill "
                "backtest_job over whole sessions first (e.g. 2026-03-12|09:30...2026-03-27|15:59)",
                allow_retries=False,
            )
        return days


class BaselineConfig(BacktestWindow):
    costs: FillCosts = Field(default_factory=FillCosts)


def session_bars(warehouse: DuckDBResource, sessions: list[dt.date]) -> pd.DataFrame:
    """The stored bars of exactly these sessions."""
    first, end = sessions[0], sessions[-1] + dt.timedelta(days=1)
    with warehouse.get_connection() as conn:
        bars = conn.execute(
            f"SELECT * EXCLUDE (run_id) FROM {SCHEMA}.bars WHERE minute >= ? AND minute < ? "
            "ORDER BY minute, ticker",
            [first, end],
        ).df()
    return bars[bars["minute"].dt.date.isin(set(sessions))].reset_index(drop=True)


def backtested_sessions(instance: DagsterInstance) -> list[dt.date]:
    """Sessions whose every minute of `backtest_fills` has been materialized."""
    keys = instance.get_materialized_partitions(AssetKey("backtest_fills"))
    done = pd.Series(1, index=session_minutes_of(key_minutes(keys)))  # no after-close labels
    sessions = []
    for day, count in done.groupby(done.index.date).sum().items():
        bounds = session_bounds(day)
        if bounds is not None and count == (bounds[1] - bounds[0]) / pd.Timedelta(minutes=1):
            sessions.append(day)
    return sessions


def _llm_cost(conn: DuckDBPyConnection, llm: LLMResource, first: dt.date, end: dt.date) -> float:
    """What the team's model calls over the sessions cost at the resource's prices (tokens are
    recorded per row when a call is made; a cached re-run still carries them)."""
    tokens_in = tokens_out = 0
    for table in AGENT_TABLES:
        if not table_exists(conn, table):
            continue
        row = conn.execute(
            f"SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) "
            f"FROM {SCHEMA}.{table} WHERE minute >= ? AND minute < ?",
            [first, end],
        ).fetchone()
        tokens_in, tokens_out = tokens_in + int(row[0]), tokens_out + int(row[1])
    return token_cost(tokens_in, tokens_out, llm.input_usd_per_mtok, llm.output_usd_per_mtok)


@asset(deps=["bars", "backtest_fills"], group_name="backtest", kinds={"pandas", "duckdb"})
def baseline_fills(
    context: AssetExecutionContext,
    config: BaselineConfig,
    warehouse: DuckDBResource,
    controls: TradingControls,
) -> pd.DataFrame:
    """The TradingAgents paper's baselines (buy and hold, SMA crossover, MACD, KDJ with RSI,
    zero mean reversion) over the sessions the team was backtested on, with the same fill
    model and starting equity split equally between the tickers."""
    sessions = config.sessions(context.instance)
    bars = session_bars(warehouse, sessions)
    runs = run_baselines(bars, config.costs.model(), controls.starting_equity)
    frame = pd.concat(runs.values(), ignore_index=True)
    context.add_output_metadata(
        {
            "sessions": len(sessions),
            "fills": MetadataValue.json(frame["strategy"].value_counts().to_dict()),
            "costs": MetadataValue.json(config.costs.model_dump()),
        }
    )
    return frame


@asset(
    ins={"baseline_fills": AssetIn()},
    deps=["backtest_fills", "bars", *AGENT_TABLES],
    group_name="backtest",
    kinds={"pandas", "duckdb"},
)
def backtest_performance(
    context: AssetExecutionContext,
    config: BacktestWindow,
    warehouse: DuckDBResource,
    llm: LLMResource,
    controls: TradingControls,
    baseline_fills: pd.DataFrame,
) -> pd.DataFrame:
    """The team against the baselines over every fully backtested session: return, Sharpe,
    Sortino, drawdown, win rate, profit factor, turnover, exposure, trades and the LLM bill
    (tokens x the resource's prices) as a cost line; a row per ticker too. The strategy table
    shows inline on this page, the equity and drawdown chart one click away."""
    sessions = config.sessions(context.instance)
    first, end = sessions[0], sessions[-1] + dt.timedelta(days=1)
    bars = session_bars(warehouse, sessions)
    with warehouse.get_connection() as conn:
        fills = conn.execute(
            f"SELECT * FROM {SCHEMA}.backtest_fills WHERE minute >= ? AND minute < ?",
            [first, end],
        ).df()
        llm_cost = _llm_cost(conn, llm, first, end)
    fills = conform(fills[fills["minute"].dt.date.isin(set(sessions))], BACKTEST_FILL_COLUMNS)
    runs = {STRATEGY: fills}
    baselines = conform(baseline_fills, BACKTEST_FILL_COLUMNS)
    for name, run in baselines.groupby("strategy", sort=False):
        runs[str(name)] = run.reset_index(drop=True)
    equity = controls.starting_equity
    table = performance_table(runs, bars, equity, llm_cost_usd={STRATEGY: llm_cost})
    table.insert(1, "scope", "all")
    table.insert(2, "ticker", "ALL")
    table["pnl"] = table["cumulative_return"] * equity
    table["return"] = table["cumulative_return"]
    tickers = [
        per_ticker(run, bars, equity).assign(strategy=name, scope="ticker")
        for name, run in runs.items()
    ]
    # ticker rows carry pnl, trades, win rate, return and commissions; the rest only the total
    frame = pd.concat([table, *tickers], ignore_index=True)
    frame.insert(3, "sessions", len(sessions))
    curves = {name: equity_curve(run, bars, equity) for name, run in runs.items()}
    png = equity_chart_png(curves, f"{len(sessions)} sessions, {first} .. {sessions[-1]}")
    chart_path = data_dir() / "backtest" / "equity_drawdown.png"
    chart_path.parent.mkdir(parents=True, exist_ok=True)
    # Written aside, then renamed over the old one (atomic): a run killed mid-write leaves the
    # previous chart, never half a PNG.
    partial = chart_path.with_name(f".{chart_path.name}.{os.getpid()}.tmp")
    partial.write_bytes(png)
    partial.replace(chart_path)
    agents = table.iloc[0]
    context.add_output_metadata(
        {
            "performance": performance_metadata(table),
            "equity_and_drawdown": MetadataValue.md(
                markdown_image(png, "equity and drawdown") + "\n\n" + chart_caption(sessions)
            ),
            "sessions": len(sessions),
            "first_session": str(first),
            "last_session": str(sessions[-1]),
            "agents_cumulative_return_pct": round(float(agents["cumulative_return"]) * 100, 2),
            "agents_pnl_usd": round(float(agents["pnl"]), 2),
            "llm_cost_usd": round(llm_cost, 4),
            "chart_path": MetadataValue.path(str(chart_path)),
        }
    )
    return frame


# The strategy table as shown: each figure in one unit, named in its label (the fractions the
# warehouse stores are shown in percent).
SHOWN = {
    "cumulative_return": ("return %", 100.0),
    "annualised_return": ("annualised %", 100.0),
    "sharpe": ("sharpe", 1.0),
    "sortino": ("sortino", 1.0),
    "max_drawdown": ("max drawdown %", 100.0),
    "win_rate": ("win rate %", 100.0),
    "profit_factor": ("profit factor", 1.0),
    "turnover": ("turnover (x equity)", 1.0),
    "exposure": ("exposure %", 100.0),
    "trades": ("trades", 1.0),
    "commissions": ("commissions USD", 1.0),
    "llm_cost_usd": ("LLM cost USD", 1.0),
}


def performance_shown(table: pd.DataFrame) -> pd.DataFrame:
    """One row per strategy, the figures scaled to their shown unit (percent for fractions)."""
    shown = table[["strategy"]].copy()
    for column, (_, scale) in SHOWN.items():
        shown[column] = (table[column] * scale).round(2 if scale != 1.0 else 3)
    return shown


def performance_markdown(table: pd.DataFrame) -> str:
    """The strategy table as the terminal shows it (returns in percent)."""
    return performance_shown(table).to_markdown(index=False)


def performance_metadata(table: pd.DataFrame) -> TableMetadataValue:
    """The strategy table as the asset page shows it inline, each column named with its unit."""
    shown = performance_shown(table)
    columns = [TableColumn("strategy", "string")] + [
        TableColumn(label, "float") for label, _ in SHOWN.values()
    ]
    records = [
        TableRecord(
            {"strategy": str(row["strategy"])}
            | {label: float(row[column]) for column, (label, _) in SHOWN.items()}
        )
        for row in shown.to_dict("records")
    ]
    return MetadataValue.table(records=records, schema=TableSchema(columns=columns))


def chart_caption(sessions: list[dt.date]) -> str:
    return (
        f"*Equity (top, 1.0 = the starting equity) and drawdown (bottom, % below the running "
        f"peak) of the team (`agents`, black) and the five baselines over {len(sessions)} "
        f"sessions, {sessions[0]} .. {sessions[-1]}: every strategy through the same next-bar "
        "fill model with costs. The x axis counts trading minutes (nights left out).*"
    )
