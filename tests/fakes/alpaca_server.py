"""A local Alpaca market-data server speaking Alpaca's real wire format.

Serves `GET /v2/stocks/bars` from a pandas frame of bars and `GET /v1beta1/news` from a list of
news items, shaped like the recorded bodies in
/work/shared/data/api_fixtures/alpaca-py/data/ (test_historical_stock_data__test_get_bars__1.json,
test_historical_stock_data__test_multisymbol_get_bars__1.json,
test_historical_news_data__test_get_news__1.json). Like the real API it honours
symbols/start/end (both inclusive)/limit/sort, pages with `next_page_token` (a small
`page_size` forces alpaca-py through several pages) and checks the APCA-API-* headers.

Usage::

    with FakeAlpacaServer(bars=frame, news=[make_news_item(...)], page_size=100) as server:
        provider = AlpacaProvider("key", "secret", data_url=server.url)
        server.fail_next(429, times=2)
        len(server.requests_to("/v2/stocks/bars"))  # pages fetched
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Sequence
from typing import Any

import pandas as pd

from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest

BARS_PATH = "/v2/stocks/bars"
NEWS_PATH = "/v1beta1/news"
_FAULT_MESSAGES = {
    401: (40110000, "request is not authorized"),
    403: (40310000, "forbidden"),
    429: (42910000, "rate limit exceeded"),
}


def _error(status: int, code: int, message: str) -> FakeResponse:
    return FakeResponse(status, {"code": code, "message": message})


def _rfc3339(ts: pd.Timestamp) -> str:
    """Alpaca's timestamp spelling: UTC with a trailing Z."""
    return ts.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _number(value: Any) -> int | float | None:
    """JSON-safe scalar; whole numbers as ints, the way Alpaca sends volumes and counts."""
    if value is None or pd.isna(value):
        return None
    as_float = float(value)
    return int(as_float) if as_float.is_integer() else as_float


def _token(*parts: object) -> str:
    return base64.b64encode("|".join(str(p) for p in parts).encode()).decode()


def _untoken(token: str) -> list[str]:
    return base64.b64decode(token.encode()).decode().split("|")


def make_news_item(
    *,
    id: int,
    headline: str,
    created_at: str | pd.Timestamp,
    symbols: Sequence[str],
    source: str = "benzinga",
    summary: str = "",
    url: str = "",
    author: str = "",
    content: str = "",
    updated_at: str | pd.Timestamp | None = None,
) -> dict[str, Any]:
    """One news article in Alpaca's v1beta1 wire format (every key the API always sends)."""
    created = pd.Timestamp(created_at)
    created = created.tz_localize("UTC") if created.tzinfo is None else created
    updated = created if updated_at is None else pd.Timestamp(updated_at)
    updated = updated.tz_localize("UTC") if updated.tzinfo is None else updated
    return {
        "author": author,
        "content": content,
        "created_at": _rfc3339(created),
        "headline": headline,
        "id": int(id),
        "images": [],
        "source": source,
        "summary": summary,
        "symbols": list(symbols),
        "updated_at": _rfc3339(updated),
        "url": url,
    }


class FakeAlpacaServer(FakeHTTPServer):
    """Alpaca's data API over `bars` and `news`.

    `bars` has columns symbol (or ticker), timestamp (UTC bar start), open, high, low, close,
    volume and optionally vwap and trade_count; where those two are absent the server sends
    `"vw": null, "n": null` (alpaca-py requires both keys to be present).
    `page_size` caps items per page below Alpaca's own caps (10000 bars, 50 news).
    If `api_key`/`secret_key` are given, other credentials get a 401.
    """

    def __init__(
        self,
        bars: pd.DataFrame | None = None,
        news: Iterable[dict[str, Any]] = (),
        *,
        page_size: int = 1000,
        news_page_size: int = 50,
        api_key: str | None = None,
        secret_key: str | None = None,
    ) -> None:
        super().__init__()
        self.page_size = page_size
        self.news_page_size = news_page_size
        self.api_key = api_key
        self.secret_key = secret_key
        self._bars = self._prepare_bars(bars)
        self._news = [dict(item) for item in news]
        self.route("GET", BARS_PATH, self._serve_bars)
        self.route("GET", NEWS_PATH, self._serve_news)

    def fault_body(self, status: int) -> Any:
        code, message = _FAULT_MESSAGES.get(status, (status * 100000, "internal server error"))
        return {"code": code, "message": message}

    @staticmethod
    def _prepare_bars(bars: pd.DataFrame | None) -> pd.DataFrame:
        if bars is None:
            bars = pd.DataFrame(
                columns=["symbol", "timestamp", "open", "high", "low", "close", "volume"]
            )
        frame = bars.rename(columns={"ticker": "symbol"}).copy()
        frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
        for optional in ("vwap", "trade_count"):
            if optional not in frame:
                frame[optional] = None
        return frame.sort_values(["symbol", "timestamp"], kind="stable").reset_index(drop=True)

    def _auth_error(self, request: RecordedRequest) -> FakeResponse | None:
        key = request.headers.get("APCA-API-KEY-ID")
        secret = request.headers.get("APCA-API-SECRET-KEY")
        if not key or not secret:
            return _error(401, 40110000, "request is not authorized")
        if (self.api_key is not None and key != self.api_key) or (
            self.secret_key is not None and secret != self.secret_key
        ):
            return _error(401, 40110000, "request is not authorized")
        return None

    @staticmethod
    def _limit(request: RecordedRequest, default: int, maximum: int) -> int | FakeResponse:
        raw = request.param("limit")
        if raw is None or raw == "":
            return default
        try:
            limit = int(raw)
        except ValueError:
            return _error(400, 40010001, f"invalid limit: {raw}")
        if not 1 <= limit <= maximum:
            return _error(422, 42210000, f"invalid limit: must be between 1 and {maximum}")
        return limit

    def _serve_bars(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        symbols = [s for s in (request.param("symbols") or "").split(",") if s]
        if not symbols:
            return _error(422, 42210000, "symbols is required")
        if request.param("timeframe") != "1Min":
            return _error(422, 42210000, "this fake serves timeframe=1Min only")
        limit = self._limit(request, default=1000, maximum=10000)
        if isinstance(limit, FakeResponse):
            return limit
        frame = self._bars[self._bars["symbol"].isin(symbols)]
        if start := request.param("start"):
            frame = frame[frame["timestamp"] >= pd.Timestamp(start)]
        if end := request.param("end"):
            frame = frame[frame["timestamp"] <= pd.Timestamp(end)]  # Alpaca's end is inclusive
        if request.param("sort") == "desc":
            frame = frame.iloc[::-1]
        if token := request.param("page_token"):
            symbol, _timeframe, ts = _untoken(token)
            keys = list(zip(frame["symbol"], frame["timestamp"], strict=True))
            after = keys.index((symbol, pd.Timestamp(ts))) + 1
            frame = frame.iloc[after:]
        size = min(limit, self.page_size)
        page, rest = frame.iloc[:size], frame.iloc[size:]
        body: dict[str, Any] = {"bars": {}, "next_page_token": None}
        for row in page.itertuples(index=False):
            body["bars"].setdefault(row.symbol, []).append(
                {
                    "t": _rfc3339(row.timestamp),
                    "o": _number(row.open),
                    "h": _number(row.high),
                    "l": _number(row.low),
                    "c": _number(row.close),
                    "v": _number(row.volume),
                    "n": _number(row.trade_count),
                    "vw": _number(row.vwap),
                }
            )
        if len(rest) and len(page):
            last = page.iloc[-1]
            body["next_page_token"] = _token(last["symbol"], "M", last["timestamp"].isoformat())
        return FakeResponse(200, body)

    def _serve_news(self, request: RecordedRequest) -> FakeResponse:
        if (denied := self._auth_error(request)) is not None:
            return denied
        limit = self._limit(request, default=10, maximum=50)
        if isinstance(limit, FakeResponse):
            return limit
        wanted = {s for s in (request.param("symbols") or "").split(",") if s}
        start = pd.Timestamp(s) if (s := request.param("start")) else None
        end = pd.Timestamp(e) if (e := request.param("end")) else None
        include_content = (request.param("include_content") or "false").lower() == "true"

        def key(item: dict[str, Any]) -> tuple[int, int]:
            return pd.Timestamp(item["created_at"]).value, int(item["id"])

        items = [
            item
            for item in self._news
            if (not wanted or wanted & set(item["symbols"]))
            and (start is None or pd.Timestamp(item["created_at"]) >= start)
            and (end is None or pd.Timestamp(item["created_at"]) <= end)
        ]
        descending = (request.param("sort") or "desc") == "desc"
        items.sort(key=key, reverse=descending)
        if token := request.param("page_token"):
            ns, item_id = (int(p) for p in _untoken(token))
            items = [
                i
                for i in items
                if (key(i) < (ns, item_id) if descending else key(i) > (ns, item_id))
            ]
        size = min(limit, self.news_page_size)
        page, rest = items[:size], items[size:]
        news = [dict(item, content=item["content"] if include_content else "") for item in page]
        next_token = _token(*key(page[-1])) if rest and page else None
        return FakeResponse(200, {"news": news, "next_page_token": next_token})
