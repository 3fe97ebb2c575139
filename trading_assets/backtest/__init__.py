"""The backtest: simulated fills of the trade signals, performance metrics and baselines."""
