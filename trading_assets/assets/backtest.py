"""The backtest layer: the team's signals filled by the paper broker's rules, and how they did.

`backtest_fills` is minute-partitioned by the bar a fill happened in, so partition m holds only
what was knowable at m's close; a backfill of any range of minutes is a backtest of that range.
"""

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, Config, MetadataValue, asset
from pydantic import Field

from trading_assets.assets.analysts import MINUTE_ASSET, run_minutes
from trading_assets.assets.decision import SESSION_HISTORY
from trading_assets.assets.ingest import PARTITION_EXPR, stamped
from trading_assets.backtest.simulate import simulate_fills
from trading_assets.execution.fills import FillModel

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
        "trade_signals": AssetIn(partition_mapping=SESSION_HISTORY),
        "bars": AssetIn(partition_mapping=SESSION_HISTORY),
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
    context.add_output_metadata(
        {
            "fills": len(fills),
            "trades_entered": int(entries["trade_id"].nunique()),
            "by_reason": MetadataValue.json(fills["reason"].value_counts().to_dict()),
            "commissions_usd": round(float(fills["commission"].sum()), 2),
            "slippage_usd": round(float(fills["slippage_cost"].sum()), 2),
            "cash_flow_usd": round(float(fills["cash_delta"].sum()), 2),
            "costs": MetadataValue.json(config.model_dump()),
        }
    )
    return stamped(fills, context)
