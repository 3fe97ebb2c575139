"""Provider bars -> the `bars` asset frame (naive New York wall clock, one row per ticker-minute).

Nothing is repaired here: a bad bar is stored as delivered so that the blocking checks see it and
stop it from reaching any analyst or order. Silently fixing prices would hide a broken feed.
"""

from __future__ import annotations

import pandas as pd

from trading_assets.schemas import BAR_COLUMNS, conform, empty_frame, to_market_naive


def bars_frame(provider_bars: pd.DataFrame, provider: str) -> pd.DataFrame:
    """Stamp each bar with its partition minute (its start, naive NY) and the provider name."""
    if provider_bars.empty:
        return empty_frame(BAR_COLUMNS)
    out = provider_bars.copy()
    out["minute"] = to_market_naive(out["timestamp"])
    out["provider"] = provider
    frame = conform(out, BAR_COLUMNS)
    return frame.sort_values(["minute", "ticker"], kind="stable").reset_index(drop=True)
