"""Finnhub company news and basic financials through finnhub-python.

finnhub-python builds every URL from `self.API_URL` and every timeout from
`self.DEFAULT_TIMEOUT`, so both are set as *instance* attributes: overriding the base URL for
one client never leaks into other clients through the class. finnhub-python puts the key in
every URL as a `token=` query parameter, where urllib3's debug log, requests' error messages
and any proxy's access log would show it; the key is moved to the `X-Finnhub-Token` header
instead (Finnhub accepts either). Network errors are still re-raised with anything that looks
like the key redacted and without their original chain before anything can log them.

Every HTTP call, retries included, first takes a token from a `RateLimiter` (free tier: 60
calls/minute); 429s that still happen are retried with backoff.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import finnhub
import pandas as pd
import requests

from resources.errors import ProviderConfigError
from resources.rate_limit import RateLimiter, call_with_backoff
from trading_assets.schemas import (
    PROVIDER_FACT_COLUMNS,
    PROVIDER_NEWS_COLUMNS,
    conform,
    empty_frame,
)

# Finnhub series key -> our field. Only values Finnhub reports as such are mapped (see
# FinnhubProvider.fetch_facts for what stays missing and why).
QUARTERLY_FIELD_MAP: dict[str, str] = {"eps": "eps_diluted"}

# Latest a periodic report can become public after the period ends (SEC deadlines for the
# slowest, non-accelerated filers): 10-Q 45 days, 10-K 90 days.
QUARTER_FILING_LAG = pd.Timedelta(days=45)
FISCAL_YEAR_FILING_LAG = pd.Timedelta(days=90)

_KEY_MESSAGE = "Finnhub rejected the key: check FINNHUB_API_KEY"


class _FinnhubNetworkError(Exception):
    """A connection/timeout failure, re-raised with the API key scrubbed from its message."""


def _is_retryable(exc: BaseException) -> bool:
    """429, 5xx, network failures, and a 200 whose body is not JSON (a broken gateway)."""
    if isinstance(exc, finnhub.FinnhubAPIException):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, _FinnhubNetworkError | finnhub.FinnhubRequestException)


def _utc(ts: pd.Timestamp) -> pd.Timestamp:
    """Window bounds as tz-aware UTC; a naive bound is refused rather than guessed."""
    ts = pd.Timestamp(ts)
    if ts.tzinfo is None:
        raise ValueError(f"window bounds must be tz-aware UTC, got naive {ts}")
    return ts.tz_convert("UTC")


class FinnhubProvider:
    """NewsProvider (`/company-news`) + FactsProvider (`/stock/metric`) over Finnhub.

    `base_url` replaces `https://api.finnhub.io/api/v1` (tests point it at a local server).
    `rate_limiter` may be shared between instances that use the same key; by default each
    instance paces itself at `calls_per_minute`.
    """

    name = "finnhub"

    def __init__(
        self,
        api_key: str,
        base_url: str | None = None,
        calls_per_minute: int = 60,
        max_attempts: int = 4,
        base_delay_s: float = 1.0,
        timeout_s: float = 10,
        *,
        max_delay_s: float = 30.0,
        rate_limiter: RateLimiter | None = None,
    ) -> None:
        if not api_key:
            raise ProviderConfigError(
                "Finnhub needs FINNHUB_API_KEY: set it in the environment "
                "(or use the offline `replay` provider)"
            )
        self._api_key = api_key
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.rate_limiter = rate_limiter or RateLimiter(calls_per_minute)
        self._client = finnhub.Client(api_key=api_key)
        # The key in a header, not in the URL (module docstring: URLs get logged).
        self._client._session.params.pop("token", None)
        self._client._session.headers["X-Finnhub-Token"] = api_key
        if base_url is not None:
            self._client.API_URL = base_url.rstrip("/")
        self._client.DEFAULT_TIMEOUT = timeout_s

    # --- plumbing -------------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        text = text.replace(self._api_key, "***")
        return re.sub(r"token=[^&\s'\"]*", "token=***", text)

    def _once(self, call: Callable[[finnhub.Client], Any]) -> Any:
        self.rate_limiter.acquire()
        try:
            return call(self._client)
        except requests.exceptions.RequestException as exc:
            message = self._redact(f"{type(exc).__name__}: {exc}")
        # Raised outside the except block so the unredacted original is not chained.
        raise _FinnhubNetworkError(message)

    def _call(self, call: Callable[[finnhub.Client], Any], what: str) -> Any:
        try:
            return call_with_backoff(
                lambda: self._once(call),
                max_attempts=self.max_attempts,
                base_delay_s=self.base_delay_s,
                max_delay_s=self.max_delay_s,
                is_retryable=_is_retryable,
                what=f"Finnhub {what}",
            )
        except finnhub.FinnhubAPIException as exc:  # only non-retryable ones get here
            detail = f"HTTP {exc.status_code}: {self._redact(str(exc.message))}"
            if exc.status_code in (401, 403):
                # 403 also means "endpoint not in your plan"; the API's message says which.
                raise ProviderConfigError(f"{_KEY_MESSAGE} ({detail})") from exc
            raise ProviderConfigError(
                f"Finnhub rejected the request for {what} ({detail})"
            ) from exc

    # --- news -----------------------------------------------------------------------------------

    def fetch_news(
        self, tickers: Sequence[str], start: pd.Timestamp, end: pd.Timestamp
    ) -> pd.DataFrame:
        """Company news published in [start, end), one `/company-news` call per ticker.

        Finnhub filters by whole dates (`from`/`to`, inclusive, zone undocumented), so the date
        range is widened by a day on each side and the exact window applied to `datetime`
        (unix seconds, UTC). A story returned for several tickers becomes one row whose
        `tickers` is the union.
        """
        start, end = _utc(start), _utc(end)
        symbols = list(dict.fromkeys(t.upper() for t in tickers))
        if not symbols or start >= end:
            return empty_frame(PROVIDER_NEWS_COLUMNS)
        date_from = (start - pd.Timedelta(days=1)).date().isoformat()
        date_to = (end + pd.Timedelta(days=1)).date().isoformat()
        start_s, end_s = start.timestamp(), end.timestamp()

        stories: dict[str, dict[str, Any]] = {}
        for symbol in symbols:
            items = self._call(
                lambda c, s=symbol: c.company_news(s, _from=date_from, to=date_to),
                f"company news for {symbol}",
            )
            for item in items or []:
                published = item.get("datetime")
                if published is None or not start_s <= float(published) < end_s:
                    continue
                related = [r.strip().upper() for r in str(item.get("related") or "").split(",")]
                found = [symbol, *(r for r in related if r)]
                provider_id = str(item["id"])
                if provider_id in stories:
                    known = stories[provider_id]["tickers"]
                    known.extend(t for t in found if t not in known)
                    continue
                stories[provider_id] = {
                    "provider": self.name,
                    "provider_id": provider_id,
                    "published_at": pd.Timestamp(int(published), unit="s", tz="UTC"),
                    "headline": item.get("headline") or "",
                    "summary": item.get("summary") or "",
                    "source": item.get("source") or "",
                    "url": item.get("url") or "",
                    "tickers": list(dict.fromkeys(found)),
                }
        if not stories:
            return empty_frame(PROVIDER_NEWS_COLUMNS)
        frame = pd.DataFrame(list(stories.values()))
        frame = frame.sort_values(["published_at", "provider_id"], kind="stable")
        return conform(frame, PROVIDER_NEWS_COLUMNS)

    # --- facts ----------------------------------------------------------------------------------

    def fetch_facts(self, tickers: Sequence[str]) -> pd.DataFrame:
        """Quarterly values from `/stock/metric?metric=all` (`series.quarterly`) as fact rows.

        Mapped: `eps` -> eps_diluted (a quarter's EPS; Finnhub does not say basic or diluted, and
        reports EPS as a company does, i.e. diluted for US filers). period_start is
        period_end - 3 months + 1 day.

        Missing for finnhub: revenue, net_income, operating_cash_flow, capex, equity, debt,
        shares. Finnhub's series hold per-share values, margins and ratios (salesPerShare,
        netMargin, totalDebtToEquity, ...), not the totals; rebuilding totals from them needs a
        share count Finnhub's series does not carry, and multiplying estimates would present
        derived numbers as reported ones. `bookValue` (equity) is left out because its unit is
        undocumented in the OpenAPI spec.

        Finnhub gives no filing date. `filed` is a conservative estimate from SEC deadlines:
        period_end + 45 days (10-Q, non-accelerated filers; large filers file sooner), and
        period_end + 90 days when the period is also a fiscal-year end in `series.annual`
        (that quarter arrives with the 10-K). Estimating late keeps backtests free of
        look-ahead at the cost of using a value a few weeks after it was really public.
        """
        rows: list[dict[str, Any]] = []
        for symbol in dict.fromkeys(t.upper() for t in tickers):
            body = self._call(
                lambda c, s=symbol: c.company_basic_financials(s, "all"),
                f"basic financials for {symbol}",
            )
            series = (body or {}).get("series") or {}
            quarterly = series.get("quarterly") or {}
            fiscal_year_ends = {
                point.get("period")
                for points in (series.get("annual") or {}).values()
                for point in points or []
            }
            for key, field in QUARTERLY_FIELD_MAP.items():
                for point in quarterly.get(key) or []:
                    value, period = point.get("v"), point.get("period")
                    if value is None or not period:
                        continue
                    period_end = pd.Timestamp(period)
                    lag = (
                        FISCAL_YEAR_FILING_LAG if period in fiscal_year_ends else QUARTER_FILING_LAG
                    )
                    rows.append(
                        {
                            "ticker": symbol,
                            "field": field,
                            "value": float(value),
                            "period_start": period_end
                            - pd.DateOffset(months=3)
                            + pd.Timedelta(days=1),
                            "period_end": period_end,
                            "filed": period_end + lag,
                            "form": "finnhub-quarterly",
                            "concept": "finnhub:series.quarterly.eps",
                            "source": self.name,
                        }
                    )
        if not rows:
            return empty_frame(PROVIDER_FACT_COLUMNS)
        frame = pd.DataFrame(rows).sort_values(["ticker", "field", "period_end"], kind="stable")
        return conform(frame, PROVIDER_FACT_COLUMNS)
