"""What a data provider must offer; each method returns a provider frame (trading_assets.schemas).

Windows are half-open `[start, end)` in tz-aware UTC. Providers do no point-in-time filtering
beyond the window: that is the ingest functions' job, so every provider is held to one rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class BarsProvider(Protocol):
    name: str

    def fetch_bars(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """1-minute bars whose bar start lies in [start, end): PROVIDER_BAR_COLUMNS."""
        ...


@runtime_checkable
class NewsProvider(Protocol):
    name: str

    def fetch_news(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Stories about any of `tickers` published in [start, end): PROVIDER_NEWS_COLUMNS."""
        ...


@runtime_checkable
class FactsProvider(Protocol):
    name: str

    def fetch_facts(self, tickers: Sequence[str]) -> pd.DataFrame:
        """Every reported fundamental value with its filing date: PROVIDER_FACT_COLUMNS."""
        ...
