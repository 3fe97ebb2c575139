"""Execution: the fill model shared by the backtest and the paper broker."""

from trading_assets.execution.fills import Fill, FillModel, opposite

__all__ = ["Fill", "FillModel", "opposite"]
