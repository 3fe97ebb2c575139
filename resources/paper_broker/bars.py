"""The replay folder's 1-minute bars, per symbol, as the paper broker reads them."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pandas as pd

from resources.paper_broker.clock import MARKET_TZ
from resources.providers.replay import ReplayProvider

ONE_MINUTE = pd.Timedelta(minutes=1)


class BarStore:
    """The replay folder's 1-minute bars, per symbol, with each session's last bar marked."""

    def __init__(self, folder: str | Path) -> None:
        provider = ReplayProvider(folder)
        tickers = provider.default_tickers()
        frame = provider.fetch_bars(
            tickers, pd.Timestamp("1900-01-01", tz="UTC"), pd.Timestamp("2200-01-01", tz="UTC")
        )
        self._bars: dict[str, pd.DataFrame] = {}
        self._starts: dict[str, np.ndarray] = {}
        for symbol, bars in frame.groupby("ticker", sort=True):
            bars = bars.sort_values("timestamp").reset_index(drop=True)
            day = bars["timestamp"].dt.tz_convert(MARKET_TZ).dt.date
            bars["last_of_session"] = day.ne(day.shift(-1))
            self._bars[str(symbol)] = bars
            naive = bars["timestamp"].dt.tz_convert("UTC").dt.tz_localize(None)
            self._starts[str(symbol)] = naive.to_numpy(dtype="datetime64[ns]")

    @property
    def symbols(self) -> list[str]:
        return list(self._bars)

    @property
    def first_start(self) -> pd.Timestamp:
        return min(b["timestamp"].iloc[0] for b in self._bars.values())

    def _index(self, symbol: str, ts: pd.Timestamp, side: str) -> int:
        key = ts.tz_convert("UTC").tz_localize(None).to_datetime64()
        return int(np.searchsorted(self._starts[symbol], key, side=side))  # type: ignore[call-overload]

    def closed_between(self, symbol: str, start: pd.Timestamp, now: pd.Timestamp) -> pd.DataFrame:
        """Bars starting at or after `start` that have closed by `now`."""
        if symbol not in self._bars:
            return self._bars[next(iter(self._bars))].iloc[0:0]
        lo = self._index(symbol, start, "left")
        hi = self._index(symbol, now - ONE_MINUTE, "right")
        return self._bars[symbol].iloc[lo : max(lo, hi)]

    def latest_closed(self, symbol: str, now: pd.Timestamp) -> pd.Series | None:
        if symbol not in self._bars:
            return None
        hi = self._index(symbol, now - ONE_MINUTE, "right")
        return None if hi == 0 else self._bars[symbol].iloc[hi - 1]


@functools.lru_cache(maxsize=4)
def bar_store(folder: str) -> BarStore:
    """Bars are read-only and shared by every broker on the same folder (tests start many)."""
    return BarStore(folder)
