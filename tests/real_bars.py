"""The bundled real 1-minute bars in the shape the `bars` asset stores (naive New York `minute`).

Unit tests of the analysts, the trader and the risk manager all start from these, read straight
from the bundled parquet (not through a provider), so they test the logic on real prices.
"""

import functools

import numpy as np
import pandas as pd

from resources.providers.replay import BUNDLED_REPLAY_DIR


@functools.cache
def _bundled() -> pd.DataFrame:
    raw = pd.read_parquet(next((BUNDLED_REPLAY_DIR / "bars").glob("*.parquet")))
    minute = raw["timestamp"].dt.tz_convert("America/New_York").dt.tz_localize(None)
    return pd.DataFrame(
        {
            "minute": minute.astype("datetime64[ns]"),
            "ticker": raw["symbol"].astype(str),
            "open": raw["open"],
            "high": raw["high"],
            "low": raw["low"],
            "close": raw["close"],
            "volume": raw["volume"].astype("float64"),
            "vwap": np.nan,
        }
    )


def bundled_bars() -> pd.DataFrame:
    """Every bundled bar, all tickers (a fresh copy: tests may change it)."""
    return _bundled().copy()


def scrambled_after(bars: pd.DataFrame, cut: pd.Timestamp, seed: int) -> pd.DataFrame:
    """`bars` with every bar after `cut` given random prices and volumes (a look-ahead probe:
    rows up to `cut` must not change)."""
    later = bars["minute"] > cut
    rng = np.random.default_rng(seed)
    changed = bars.copy()
    factor = rng.uniform(0.7, 1.4, later.sum())
    for col in ("open", "high", "low", "close"):
        changed.loc[later, col] = changed.loc[later, col] * factor
    changed.loc[later, "volume"] = rng.integers(0, 9_000_000, later.sum()).astype(float)
    return changed
