"""A local Finnhub server speaking Finnhub's wire format, for finnhub-python over real HTTP.

finnhub-python requests `{API_URL}//company-news` (its paths start with "/" and it joins them
with another "/"), so the request path is `/api/v1//company-news`; the base server collapses
duplicate slashes before routing, as Finnhub's own front end does.

* `/api/v1/company-news` serves news per symbol, by default the real capture
  /work/shared/data/api_fixtures/finnhub/company-news_AAPL_2021-03.json for AAPL; `from`/`to`
  are inclusive UTC dates, newest first, like the API.
* `/api/v1/stock/metric` serves `BasicFinancials` bodies (OpenAPI: symbol, metricType, metric,
  series); by default `AAPL_BASIC_FINANCIALS`. Unknown symbols get Finnhub's empty body.

Usage::

    with FakeFinnhubServer(api_key="k") as server:
        provider = FinnhubProvider("k", base_url=server.api_url)
        server.fail_next(429)  # then normal answers
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest

API_PREFIX = "/api/v1"
NEWS_PATH = f"{API_PREFIX}/company-news"
METRIC_PATH = f"{API_PREFIX}/stock/metric"
AAPL_NEWS_CAPTURE = Path("/work/shared/data/api_fixtures/finnhub/company-news_AAPL_2021-03.json")

_FAULT_MESSAGES = {
    401: "Invalid API key",
    403: "You don't have access to this resource.",
    429: "API limit reached. Please try again later. Remaining Limit: 0",
}


def _points(*pairs: tuple[str, float]) -> list[dict[str, Any]]:
    return [{"period": period, "v": v} for period, v in pairs]


# A hand-built /stock/metric?metric=all body in the shape Finnhub returns (the OpenAPI spec
# only says `series` and `metric` are objects). EPS values are Apple's reported diluted EPS
# per fiscal quarter/year (fiscal year ends late September); other series are illustrative
# and exist to prove the provider ignores what it does not map. Newest period first, as
# Finnhub sends them. One null value is included because Finnhub sends those too.
AAPL_BASIC_FINANCIALS: dict[str, Any] = {
    "symbol": "AAPL",
    "metricType": "all",
    "metric": {
        "52WeekHigh": 260.1,
        "52WeekLow": 169.21,
        "epsTTM": 7.46,
        "marketCapitalization": 3_800_000.0,
        "peTTM": 34.2,
        "revenuePerShareTTM": 27.8,
        "totalDebt/totalEquityQuarterly": 1.54,
    },
    "series": {
        "annual": {
            "eps": _points(("2025-09-27", 7.46), ("2024-09-28", 6.08), ("2023-09-30", 6.13)),
            "salesPerShare": _points(
                ("2025-09-27", 27.8), ("2024-09-28", 25.48), ("2023-09-30", 24.22)
            ),
        },
        "quarterly": {
            "eps": [
                *_points(
                    ("2025-09-27", 1.85),
                    ("2025-06-28", 1.57),
                    ("2025-03-29", 1.65),
                    ("2024-12-28", 2.40),
                    ("2024-09-28", 0.97),
                    ("2024-06-29", 1.40),
                    ("2024-03-30", 1.53),
                    ("2023-12-30", 2.18),
                    ("2023-09-30", 1.46),
                ),
                {"period": "2023-07-01", "v": None},
            ],
            "netMargin": _points(("2025-09-27", 0.2666), ("2025-06-28", 0.2492)),
            "salesPerShare": _points(("2025-09-27", 6.97), ("2025-06-28", 6.28)),
            "totalDebtToEquity": _points(("2025-09-27", 1.54), ("2025-06-28", 1.54)),
        },
    },
}
EMPTY_BASIC_FINANCIALS: dict[str, Any] = {
    "metric": {},
    "metricType": "",
    "series": {},
    "symbol": "",
}


def load_aapl_news() -> list[dict[str, Any]]:
    """The real Finnhub company-news capture for AAPL, March 2021."""
    return json.loads(AAPL_NEWS_CAPTURE.read_text())


class FakeFinnhubServer(FakeHTTPServer):
    """Finnhub's /company-news and /stock/metric. Pass `api_key` to 401 any other token."""

    def __init__(
        self,
        news: Mapping[str, Sequence[dict[str, Any]]] | None = None,
        metrics: Mapping[str, dict[str, Any]] | None = None,
        *,
        api_key: str | None = None,
    ) -> None:
        super().__init__()
        self.news = {k.upper(): list(v) for k, v in (news or {"AAPL": load_aapl_news()}).items()}
        self.metrics = {
            k.upper(): v for k, v in (metrics or {"AAPL": AAPL_BASIC_FINANCIALS}).items()
        }
        self.api_key = api_key
        self.route("GET", NEWS_PATH, self._serve_news)
        self.route("GET", METRIC_PATH, self._serve_metric)

    @property
    def api_url(self) -> str:
        """What to pass as FinnhubProvider(base_url=...) / Client.API_URL."""
        return f"{self.url}{API_PREFIX}"

    def fault_body(self, status: int) -> Any:
        return {"error": _FAULT_MESSAGES.get(status, "Internal server error")}

    def _auth_error(self, request: RecordedRequest) -> FakeResponse | None:
        token = request.param("token") or request.headers.get("X-Finnhub-Token")
        if not token or (self.api_key is not None and token != self.api_key):
            return FakeResponse(401, {"error": "Invalid API key"})
        return None

    def _serve_news(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        symbol, date_from, date_to = (request.param(p) for p in ("symbol", "from", "to"))
        if not symbol or not date_from or not date_to:
            return FakeResponse(422, {"error": "Wrong format: symbol, from and to are required"})
        first = pd.Timestamp(date_from, tz="UTC")
        after_last = pd.Timestamp(date_to, tz="UTC") + pd.Timedelta(days=1)
        items = [
            item
            for item in self.news.get(symbol.upper(), [])
            if first <= pd.Timestamp(item["datetime"], unit="s", tz="UTC") < after_last
        ]
        items.sort(key=lambda item: item["datetime"], reverse=True)
        return FakeResponse(200, items)

    def _serve_metric(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        symbol = request.param("symbol")
        if not symbol or request.param("metric") != "all":
            return FakeResponse(422, {"error": "Wrong format: symbol and metric=all required"})
        return FakeResponse(200, self.metrics.get(symbol.upper(), EMPTY_BASIC_FINANCIALS))
