"""Alpaca market data (1-minute bars, news) through alpaca-py's own clients.

alpaca-py follows `next_page_token` itself (`RESTClient._get_marketdata`), so one call returns
every page. Two of its defaults are overridden here because they would fight our retry policy:

* its RESTClient retries 429/504 three times with a fixed, blocking 3 s sleep and ignores
  Retry-After; the data clients do not expose the setting, and `retry_attempts=0` is treated as
  "use the default", so the instance's `_retry` is set to 0 and `call_with_backoff` does the
  retrying (one policy, jittered, honouring Retry-After);
* its requests Session has no timeout at all, so a stalled socket would hang a Dagster step
  forever; a session adapter supplies a default timeout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pandas as pd
import requests
from alpaca.common.exceptions import APIError
from alpaca.common.rest import RESTClient
from alpaca.data.enums import DataFeed
from alpaca.data.historical.news import NewsClient
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.data.requests import NewsRequest, StockBarsRequest
from alpaca.data.timeframe import TimeFrame
from requests.adapters import HTTPAdapter

from resources.errors import ProviderConfigError
from resources.rate_limit import call_with_backoff
from trading_assets.schemas import (
    PROVIDER_BAR_COLUMNS,
    PROVIDER_NEWS_COLUMNS,
    conform,
    empty_frame,
)

_RETRYABLE_NETWORK_ERRORS = (
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
    requests.exceptions.ChunkedEncodingError,
)
T = TypeVar("T")
_KEY_MESSAGE = "Alpaca rejected the key: check ALPACA_API_KEY and ALPACA_SECRET_KEY"


class _TimeoutAdapter(HTTPAdapter):
    """An HTTPAdapter that applies a default timeout, since alpaca-py never passes one."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self._timeout_s = timeout_s

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().send(request, **kwargs)


def tame_client(client: RESTClient, timeout_s: float) -> None:
    """Disable alpaca-py's own blocking retries and give its session a timeout (see module doc)."""
    client._retry = 0
    adapter = _TimeoutAdapter(timeout_s)
    client._session.mount("https://", adapter)
    client._session.mount("http://", adapter)


def is_retryable_error(exc: BaseException) -> bool:
    """429 and 5xx answers and network failures are worth another try; other errors are not."""
    if isinstance(exc, APIError):
        status = exc.status_code
        return status is not None and (status == 429 or status >= 500)
    return isinstance(exc, _RETRYABLE_NETWORK_ERRORS)


def api_message(exc: APIError) -> str:
    """The API's `message` field, or the raw body when it is not Alpaca's JSON error shape."""
    try:
        return str(exc.message)
    except (ValueError, KeyError, TypeError):
        return str(exc)[:500]


def _config_error(exc: APIError) -> ProviderConfigError:
    """Translate a non-retryable Alpaca answer into what the user has to change."""
    status = exc.status_code
    detail = f"HTTP {status}: {api_message(exc)}"
    if status in (401, 403):
        # 403 is also how Alpaca refuses a feed the subscription lacks (e.g. recent SIP data),
        # so the API's own message is kept after the key hint.
        return ProviderConfigError(f"{_KEY_MESSAGE} ({detail})")
    return ProviderConfigError(f"Alpaca rejected the request ({detail})")


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    """Window bounds as tz-aware UTC; a naive bound is refused rather than guessed."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ValueError(f"window bounds must be tz-aware UTC, got naive {ts}")
    return ts.tz_convert("UTC")


class AlpacaProvider:
    """BarsProvider + NewsProvider over Alpaca's market-data API (free plan: `feed="iex"`).

    `data_url` overrides `https://data.alpaca.markets` (tests point it at a local server).
    A failing call is retried as a whole (all pages), which is cheap for minute-to-day windows.
    """

    name = "alpaca"

    def __init__(
        self,
        api_key: str,
        secret_key: str,
        feed: str = "iex",
        data_url: str | None = None,
        max_attempts: int = 4,
        base_delay_s: float = 1.0,
        *,
        max_delay_s: float = 30.0,
        timeout_s: float = 10.0,
    ) -> None:
        missing = [
            env
            for env, value in (("ALPACA_API_KEY", api_key), ("ALPACA_SECRET_KEY", secret_key))
            if not value
        ]
        if missing:
            raise ProviderConfigError(
                f"Alpaca needs {' and '.join(missing)}: "
                f"set {'it' if len(missing) == 1 else 'them'} in the environment "
                "(or use the offline `replay` provider)"
            )
        try:
            self.feed = DataFeed(feed)
        except ValueError:
            choices = ", ".join(f.value for f in DataFeed)
            raise ProviderConfigError(f"unknown Alpaca feed {feed!r}; one of: {choices}") from None
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self._bars_client = StockHistoricalDataClient(api_key, secret_key, url_override=data_url)
        self._news_client = NewsClient(api_key, secret_key, url_override=data_url)
        tame_client(self._bars_client, timeout_s)
        tame_client(self._news_client, timeout_s)

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            return call_with_backoff(
                fn,
                max_attempts=self.max_attempts,
                base_delay_s=self.base_delay_s,
                max_delay_s=self.max_delay_s,
                is_retryable=is_retryable_error,
                what=f"Alpaca {what}",
            )
        except APIError as exc:  # only non-retryable ones get here
            raise _config_error(exc) from exc

    def fetch_bars(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Bars starting in [start, end); Alpaca's `end` is inclusive, so drop bars at it."""
        start, end = _utc(start), _utc(end)
        symbols = sorted({t.upper() for t in tickers})
        if not symbols or start >= end:
            return empty_frame(PROVIDER_BAR_COLUMNS)
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=TimeFrame.Minute,
            start=start.to_pydatetime(),
            end=end.to_pydatetime(),
            feed=self.feed,
        )
        barset = self._call(lambda: self._bars_client.get_stock_bars(request), "bars")
        rows = [
            {
                "ticker": symbol,
                "timestamp": bar.timestamp,
                "open": bar.open,
                "high": bar.high,
                "low": bar.low,
                "close": bar.close,
                "volume": bar.volume,
                "vwap": bar.vwap,
                "trade_count": bar.trade_count,
            }
            for symbol, bars in barset.data.items()
            for bar in bars
        ]
        if not rows:
            return empty_frame(PROVIDER_BAR_COLUMNS)
        frame = pd.DataFrame(rows)
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        frame = frame[(frame["timestamp"] >= start) & (frame["timestamp"] < end)]
        frame = frame.sort_values(["ticker", "timestamp"], kind="stable")
        frame[["vwap", "trade_count"]] = frame[["vwap", "trade_count"]].astype("float64")
        return conform(frame, PROVIDER_BAR_COLUMNS)

    def fetch_news(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Stories tagged with any of `tickers`, created in [start, end).

        No `limit` is sent on purpose: in alpaca-py `limit` caps the *total* across pages (with
        `limit=50` the client stops after the first page), while without it the client pages
        through everything 50 at a time.
        """
        start, end = _utc(start), _utc(end)
        symbols = sorted({t.upper() for t in tickers})
        if not symbols or start >= end:
            return empty_frame(PROVIDER_NEWS_COLUMNS)
        request = NewsRequest(
            symbols=",".join(symbols),
            start=start.to_pydatetime(),
            end=end.to_pydatetime(),
            include_content=False,
        )
        newsset = self._call(lambda: self._news_client.get_news(request), "news")
        rows = [
            {
                "provider": self.name,
                "provider_id": str(item.id),
                "published_at": item.created_at,
                "headline": item.headline,
                "summary": item.summary or "",
                "source": item.source,
                "url": item.url or "",
                "tickers": [s.upper() for s in item.symbols],
            }
            for item in newsset.data.get("news", [])
        ]
        if not rows:
            return empty_frame(PROVIDER_NEWS_COLUMNS)
        frame = pd.DataFrame(rows)
        frame["published_at"] = pd.to_datetime(frame["published_at"], utc=True)
        frame = frame[(frame["published_at"] >= start) & (frame["published_at"] < end)]
        frame = frame.drop_duplicates("provider_id").sort_values(
            ["published_at", "provider_id"], kind="stable"
        )
        return conform(frame, PROVIDER_NEWS_COLUMNS)
