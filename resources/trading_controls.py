"""The desk's controls: risk limits, the kill switch and the send-time checks, in one resource.

One resource (not per-asset config) because `trade_signals` and the execution op must agree:
the risk manager sizes against these limits and the op re-checks them when it sends. The kill
switch is read from TRADING_KILL_SWITCH when the code location loads, so flipping it is a
deploy/reload (or a run's resource config), never a code change.
"""

from __future__ import annotations

import os

from dagster import ConfigurableResource
from pydantic import Field

from trading_assets.decision.risk import RiskLimits

_DEFAULTS = RiskLimits()
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
LIVE_TAG = "trading/live"  # set by the intraday schedule (and the replay): runs that may trade


class TradingControls(ConfigurableResource):
    """Risk limits (issue defaults), the kill switch, where the portfolio state comes from and
    the execution op's send-time thresholds."""

    max_position_pct: float = Field(_DEFAULTS.max_position_pct, description="of equity")
    max_total_exposure_pct: float = Field(_DEFAULTS.max_total_exposure_pct)
    max_sector_exposure_pct: float = Field(_DEFAULTS.max_sector_exposure_pct)
    atr_stop_multiple: float = Field(_DEFAULTS.atr_stop_multiple)
    min_stop_pct: float = Field(_DEFAULTS.min_stop_pct)
    reward_risk: float = Field(_DEFAULTS.reward_risk)
    max_trades_per_day: int = Field(_DEFAULTS.max_trades_per_day)
    max_open_positions: int = Field(_DEFAULTS.max_open_positions)
    max_daily_loss_pct: float = Field(_DEFAULTS.max_daily_loss_pct)
    max_consecutive_losses: int = Field(_DEFAULTS.max_consecutive_losses)
    cooldown_minutes: int = Field(_DEFAULTS.cooldown_minutes)
    no_entry_minutes_before_close: int = Field(_DEFAULTS.no_entry_minutes_before_close)

    kill_switch: bool = Field(False, description="block every new entry (TRADING_KILL_SWITCH)")
    portfolio_source: str = Field(
        "auto",
        description="auto: broker for a run tagged trading/live (the schedule's), backtest for "
        "any other run (a backfill); broker: account and positions from the broker at decision "
        "time; ledger: rebuilt from the broker_orders ledger as of the minute (no broker call); "
        "backtest: the session's earlier signals filled by the paper broker's rules",
    )
    starting_equity: float = Field(
        100_000.0, description="the account's equity at a session's start (ledger, backtest)"
    )
    max_state_lag_minutes: int = Field(
        3, description="broker source: how far the broker clock may be past the minute's close"
    )
    max_signal_age_minutes: int = Field(
        2, description="the op skips a signal whose minute closed longer ago than this"
    )
    max_spread_pct: float = Field(0.01, description="skip when (ask - bid) / mid is wider")
    max_quote_age_seconds: int = Field(
        120, description="skip when the latest quote is older (stale or halted)"
    )

    def source_for(self, live: bool) -> str:
        """The portfolio source a run uses: `auto` follows whether the run may trade."""
        if self.portfolio_source == "auto":
            return "broker" if live else "backtest"
        return self.portfolio_source

    def limits(self) -> RiskLimits:
        return RiskLimits(
            **{name: getattr(self, name) for name in RiskLimits.model_fields if hasattr(self, name)}
        )


def controls_from_env() -> TradingControls:
    env = os.environ.get
    return TradingControls(
        kill_switch=env("TRADING_KILL_SWITCH", "").strip().lower() in TRUE_WORDS,
        portfolio_source=env("TRADING_PORTFOLIO_SOURCE", "auto"),
    )
