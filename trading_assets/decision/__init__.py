"""Decision layer: the trading agent's proposal and the risk manager's review (pure functions)."""
