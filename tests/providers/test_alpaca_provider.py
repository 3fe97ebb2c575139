"""AlpacaProvider through alpaca-py's real clients, over real HTTP to a local Alpaca-format server.

The server serves real 1-minute bars (us_equities_1min_2026-03-12_2026-03-27.csv) and the real
recorded response bodies from alpaca-py's test suite; nothing of ours is mocked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from resources.errors import ProviderConfigError, TransientProviderError
from resources.providers.alpaca import AlpacaProvider
from resources.providers.base import BarsProvider, NewsProvider
from tests.fakes.alpaca_server import BARS_PATH, NEWS_PATH, FakeAlpacaServer, make_news_item
from tests.fakes.finnhub_server import load_aapl_news
from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest
from trading_assets.schemas import PROVIDER_BAR_COLUMNS, PROVIDER_NEWS_COLUMNS

BARS_CSV = Path("/work/shared/data/bars/us_equities_1min_2026-03-12_2026-03-27.csv")
FIXTURES = Path("/work/shared/data/api_fixtures/alpaca-py/data")
KEY, SECRET = "PKTESTKEY123", "test-secret-456"
UTC = "UTC"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz=UTC)


def fixture_body(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture(scope="module")
def real_bars() -> pd.DataFrame:
    frame = pd.read_csv(BARS_CSV)
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True)
    return frame


@pytest.fixture
def alpaca(real_bars: pd.DataFrame):
    with FakeAlpacaServer(real_bars, page_size=250, api_key=KEY, secret_key=SECRET) as server:
        yield server


def provider_for(url: str, **kwargs: Any) -> AlpacaProvider:
    kwargs.setdefault("base_delay_s", 0.0)
    return AlpacaProvider(KEY, SECRET, data_url=url, **kwargs)


def expected_bars(
    real_bars: pd.DataFrame, tickers: list[str], start: str, end: str
) -> pd.DataFrame:
    mask = (
        real_bars["symbol"].isin(tickers)
        & (real_bars["timestamp"] >= ts(start))
        & (real_bars["timestamp"] < ts(end))
    )
    return (
        real_bars[mask]
        .sort_values(["symbol", "timestamp"])
        .rename(columns={"symbol": "ticker"})
        .reset_index(drop=True)
    )


# --- bars -----------------------------------------------------------------------------------------


def test_provider_satisfies_the_protocols(alpaca: FakeAlpacaServer) -> None:
    provider = provider_for(alpaca.url)
    assert isinstance(provider, BarsProvider)
    assert isinstance(provider, NewsProvider)
    assert provider.name == "alpaca"


def test_fetch_bars_returns_exactly_the_real_bars_of_the_window(
    alpaca: FakeAlpacaServer, real_bars: pd.DataFrame
) -> None:
    tickers = ["AAPL", "MSFT", "SPY"]
    start, end = "2026-03-13 13:30", "2026-03-13 20:00"
    got = provider_for(alpaca.url).fetch_bars(tickers, ts(start), ts(end))
    want = expected_bars(real_bars, tickers, start, end)

    assert list(got.columns) == list(PROVIDER_BAR_COLUMNS)
    assert {c: str(t) for c, t in got.dtypes.items()} == PROVIDER_BAR_COLUMNS
    assert len(got) == len(want) == 3 * 390
    pd.testing.assert_series_equal(got["ticker"].astype(object), want["ticker"], check_names=False)
    pd.testing.assert_series_equal(
        got["timestamp"], want["timestamp"].astype("datetime64[ns, UTC]"), check_names=False
    )
    for column in ("open", "high", "low", "close", "volume"):
        assert got[column].tolist() == want[column].astype(float).tolist(), column
    # The CSV has no vwap/trade_count, so the server sends nulls and they arrive as NaN.
    assert got["vwap"].isna().all() and got["trade_count"].isna().all()

    pages = alpaca.requests_to(BARS_PATH)
    assert len(pages) == -(-len(want) // 250) > 1  # alpaca-py followed next_page_token
    assert pages[0].param("page_token") is None
    assert all(p.param("page_token") for p in pages[1:])
    first = pages[0]
    assert first.param("symbols") == "AAPL,MSFT,SPY"
    assert first.param("timeframe") == "1Min"
    assert first.param("feed") == "iex"
    assert ts(first.param("start") or "") == ts(start)
    assert ts(first.param("end") or "") == ts(end)
    assert first.headers["APCA-API-KEY-ID"] == KEY


def test_window_is_half_open_although_alpacas_end_is_inclusive(
    alpaca: FakeAlpacaServer, real_bars: pd.DataFrame
) -> None:
    start, end = ts("2026-03-16 14:00"), ts("2026-03-16 14:05")
    aapl = real_bars[real_bars["symbol"] == "AAPL"]
    assert (aapl["timestamp"] == end).any(), "the data must have a bar exactly at `end`"
    got = provider_for(alpaca.url).fetch_bars(["AAPL"], start, end)
    assert got["timestamp"].tolist() == list(pd.date_range(start, periods=5, freq="1min"))


def test_one_minute_partition_gives_one_bar_per_ticker(alpaca: FakeAlpacaServer) -> None:
    minute = ts("2026-03-17 15:42")
    got = provider_for(alpaca.url).fetch_bars(
        ["nvda", "TSLA"], minute, minute + pd.Timedelta(minutes=1)
    )
    assert got["ticker"].tolist() == ["NVDA", "TSLA"]
    assert (got["timestamp"] == minute).all()


def test_no_bars_gives_an_empty_contract_frame(alpaca: FakeAlpacaServer) -> None:
    saturday = ts("2026-03-14 15:00")
    got = provider_for(alpaca.url).fetch_bars(["AAPL"], saturday, saturday + pd.Timedelta(hours=1))
    assert got.empty
    assert {c: str(t) for c, t in got.dtypes.items()} == PROVIDER_BAR_COLUMNS
    assert provider_for(alpaca.url).fetch_bars([], saturday, saturday).empty


def test_naive_window_is_refused(alpaca: FakeAlpacaServer) -> None:
    with pytest.raises(ValueError, match="tz-aware"):
        provider_for(alpaca.url).fetch_bars(
            ["AAPL"], pd.Timestamp("2026-03-13 14:00"), pd.Timestamp("2026-03-13 15:00")
        )


# --- the real recorded alpaca-py bodies -----------------------------------------------------------


def recorded(pages: dict[str | None, dict[str, Any]]) -> FakeHTTPServer:
    """A server answering bars and news with recorded bodies, keyed by the page_token asked for."""

    def serve(request: RecordedRequest) -> FakeResponse:
        return FakeResponse(200, pages[request.param("page_token")])

    return FakeHTTPServer({("GET", BARS_PATH): serve, ("GET", NEWS_PATH): serve})


def test_recorded_single_symbol_bars_parse() -> None:
    body = fixture_body("test_historical_stock_data__test_get_bars__1.json")
    # The recording has a next_page_token but no captured second page: end it with an empty one.
    pages = {None: body, body["next_page_token"]: {"bars": {}, "next_page_token": None}}
    with recorded(pages) as server:
        got = provider_for(server.url).fetch_bars(["AAPL"], ts("2022-02-01"), ts("2022-02-03"))
        assert len(server.requests) == 2
    assert got["timestamp"].tolist() == [ts("2022-02-01 05:00"), ts("2022-02-02 05:00")]
    first = got.iloc[0]
    assert (first["open"], first["high"], first["low"], first["close"]) == (
        174.0,
        174.84,
        172.31,
        174.61,
    )
    assert first["volume"] == 85998033.0
    assert first["trade_count"] == 732412.0
    assert first["vwap"] == pytest.approx(173.703516)


def test_recorded_multisymbol_and_empty_bars_parse() -> None:
    body = fixture_body("test_historical_stock_data__test_multisymbol_get_bars__1.json")
    with recorded({None: body}) as server:
        got = provider_for(server.url).fetch_bars(
            ["TSLA", "AAPL"], ts("2022-03-09"), ts("2022-03-10")
        )
    assert got["ticker"].tolist() == ["AAPL", "TSLA"]
    assert got["close"].tolist() == [162.95, 858.97]
    assert got["vwap"].tolist() == pytest.approx([161.942117, 850.616587])

    for name in (
        "test_historical_stock_data__test_get_bars_single_empty_response__1.json",
        "test_historical_stock_data__test_get_bars_multi_empty_response__1.json",
    ):
        with recorded({None: fixture_body(name)}) as server:
            empty = provider_for(server.url).fetch_bars(
                ["AAPL"], ts("2022-03-09"), ts("2022-03-10")
            )
        assert empty.empty and list(empty.columns) == list(PROVIDER_BAR_COLUMNS)


def test_recorded_news_pages_parse_and_chain() -> None:
    first = fixture_body("test_historical_news_data__test_get_news__1.json")
    second = fixture_body("test_historical_news_data__test_get_news__2.json")
    with recorded({None: first, first["next_page_token"]: second}) as server:
        got = provider_for(server.url).fetch_news(
            ["AAPL", "CWAN"], ts("2024-08-01"), ts("2024-12-01")
        )
        requests = server.requests_to(NEWS_PATH)
    assert [r.param("page_token") for r in requests] == [None, first["next_page_token"]]
    assert requests[0].param("symbols") == "AAPL,CWAN"
    assert requests[0].param("include_content") in ("False", "false")
    assert list(got.columns) == list(PROVIDER_NEWS_COLUMNS)
    assert got["provider_id"].tolist() == ["40432158", "41799100"]
    assert got["provider"].unique().tolist() == ["alpaca"]
    assert got["tickers"].tolist() == [["AAPL", "QCOM"], ["CWAN"]]
    assert got["published_at"].tolist() == [ts("2024-08-18 20:15:44"), ts("2024-11-07 09:16:41")]
    assert got["summary"].tolist() == ["summary", ""]
    assert got["source"].tolist() == ["source", "benzinga"]
    assert got["headline"].iloc[1].startswith("Piper Sandler Maintains Neutral")


# --- news over many pages -------------------------------------------------------------------------


def real_headlines_as_alpaca_news() -> list[dict[str, Any]]:
    """The real Finnhub AAPL capture (233 stories) re-encoded in Alpaca's news wire format."""
    return [
        make_news_item(
            id=item["id"],
            headline=item["headline"],
            created_at=pd.Timestamp(item["datetime"], unit="s", tz=UTC),
            symbols=item["related"].split(","),
            source=item["source"],
            summary=item["summary"],
            url=item["url"],
        )
        for item in load_aapl_news()
    ]


def test_news_pages_through_more_than_fifty_stories_and_respects_the_window() -> None:
    items = real_headlines_as_alpaca_news()
    start, end = ts("2021-03-02"), ts("2021-03-12")
    want = sorted(
        (i for i in items if start <= pd.Timestamp(i["created_at"]) < end),
        key=lambda i: (pd.Timestamp(i["created_at"]), i["id"]),
    )
    assert len(want) > 100
    with FakeAlpacaServer(news=items, api_key=KEY, secret_key=SECRET) as server:
        got = provider_for(server.url).fetch_news(["AAPL"], start, end)
        pages = server.requests_to(NEWS_PATH)
    # Without `limit` alpaca-py asks 50 a page and follows every token (with limit=50 it
    # would stop after the first page).
    assert len(pages) == -(-len(want) // 50)
    assert {p.param("limit") for p in pages} == {"50"}
    assert got["provider_id"].tolist() == [str(i["id"]) for i in want]
    assert got["published_at"].is_monotonic_increasing
    assert (got["published_at"] < end).all()


def test_news_at_exactly_end_is_excluded() -> None:
    end = ts("2026-03-13 14:31")
    items = [
        make_news_item(
            id=1, headline="before", created_at=end - pd.Timedelta(seconds=1), symbols=["AAPL"]
        ),
        make_news_item(id=2, headline="at end", created_at=end, symbols=["AAPL"]),
    ]
    with FakeAlpacaServer(news=items) as server:
        got = provider_for(server.url).fetch_news(["AAPL"], end - pd.Timedelta(minutes=1), end)
    assert got["headline"].tolist() == ["before"]


# --- errors ---------------------------------------------------------------------------------------


def test_429_is_retried_then_succeeds(alpaca: FakeAlpacaServer) -> None:
    alpaca.fail_next(429, times=2)
    started = time.monotonic()
    got = provider_for(alpaca.url).fetch_bars(
        ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
    )
    assert len(got) == 10
    assert [r.status for r in alpaca.requests] == [429, 429, 200]
    # alpaca-py's own retry (fixed 3 s sleeps) is off: Retry-After: 0 means no waiting at all.
    assert time.monotonic() - started < 2


def test_persistent_429_ends_in_transient_error_after_our_attempts_only(
    alpaca: FakeAlpacaServer,
) -> None:
    alpaca.fail_next(429, times=None)
    with pytest.raises(TransientProviderError, match="after 3 attempts"):
        provider_for(alpaca.url, max_attempts=3).fetch_bars(
            ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
        )
    assert len(alpaca.requests) == 3


def test_server_errors_forever_give_transient_error(alpaca: FakeAlpacaServer) -> None:
    alpaca.fail_next(500, times=None)
    with pytest.raises(TransientProviderError) as info:
        provider_for(alpaca.url, max_attempts=2).fetch_news(
            ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
        )
    assert len(alpaca.requests) == 2
    assert "500" in str(info.value.__cause__.status_code)  # type: ignore[union-attr]


@pytest.mark.parametrize("status", [401, 403])
def test_rejected_key_is_a_config_error_without_the_key(
    alpaca: FakeAlpacaServer, status: int
) -> None:
    alpaca.fail_next(status, times=None)
    with pytest.raises(ProviderConfigError) as info:
        provider_for(alpaca.url).fetch_bars(
            ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
        )
    message = str(info.value)
    assert "Alpaca rejected the key: check ALPACA_API_KEY and ALPACA_SECRET_KEY" in message
    assert KEY not in message and SECRET not in message
    assert len(alpaca.requests) == 1  # never retried


def test_wrong_credentials_reach_the_server_and_are_rejected(alpaca: FakeAlpacaServer) -> None:
    provider = AlpacaProvider("PKWRONG", "wrong-secret", data_url=alpaca.url)
    with pytest.raises(ProviderConfigError, match="ALPACA_API_KEY") as info:
        provider.fetch_news(["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10"))
    assert "PKWRONG" not in str(info.value) and "wrong-secret" not in str(info.value)


def test_other_client_errors_carry_the_api_message(alpaca: FakeAlpacaServer) -> None:
    alpaca.fail_next(422, body={"code": 42210000, "message": "invalid symbol: $$$"})
    with pytest.raises(ProviderConfigError, match=r"HTTP 422: invalid symbol: \$\$\$"):
        provider_for(alpaca.url).fetch_bars(
            ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
        )


@pytest.mark.parametrize(
    ("key", "secret", "named"),
    [("", "s", "ALPACA_API_KEY"), ("k", "", "ALPACA_SECRET_KEY"), ("", "", "ALPACA_API_KEY")],
)
def test_missing_credentials_are_named(key: str, secret: str, named: str) -> None:
    with pytest.raises(ProviderConfigError, match=named):
        AlpacaProvider(key, secret)


def test_unknown_feed_is_a_config_error() -> None:
    with pytest.raises(ProviderConfigError, match="feed"):
        AlpacaProvider(KEY, SECRET, feed="nasdaq-totalview")


def test_refused_connection_is_transient() -> None:
    server = FakeHTTPServer().start()
    url = server.url
    server.stop()  # nothing listens on that port any more
    with pytest.raises(
        TransientProviderError, match=r"ConnectionError|Connection refused|Max retries"
    ):
        provider_for(url, max_attempts=2).fetch_bars(
            ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
        )


def test_stalled_server_times_out_instead_of_hanging() -> None:
    def stall(request: RecordedRequest) -> FakeResponse:
        time.sleep(1.0)
        return FakeResponse(200, {"bars": {}, "next_page_token": None})

    with FakeHTTPServer({("GET", BARS_PATH): stall}) as server:
        started = time.monotonic()
        with pytest.raises(TransientProviderError, match=r"Timeout|timed out"):
            provider_for(server.url, max_attempts=2, timeout_s=0.2).fetch_bars(
                ["AAPL"], ts("2026-03-13 14:00"), ts("2026-03-13 14:10")
            )
        assert time.monotonic() - started < 1.5
        assert len(server.requests) <= 2


# --- the real API ---------------------------------------------------------------------------------


live_alpaca = pytest.mark.skipif(
    not (os.environ.get("ALPACA_API_KEY") and os.environ.get("ALPACA_SECRET_KEY")),
    reason="needs ALPACA_API_KEY and ALPACA_SECRET_KEY",
)


@pytest.mark.live_api
@live_alpaca
def test_live_alpaca_bars_and_news() -> None:
    provider = AlpacaProvider(os.environ["ALPACA_API_KEY"], os.environ["ALPACA_SECRET_KEY"])
    start, end = ts("2026-03-13 14:00"), ts("2026-03-13 14:05")
    bars = provider.fetch_bars(["AAPL", "MSFT"], start, end)
    assert list(bars.columns) == list(PROVIDER_BAR_COLUMNS)
    assert 0 < len(bars) <= 10
    assert bars["timestamp"].between(start, end, inclusive="left").all()
    news = provider.fetch_news(["AAPL"], ts("2026-03-12"), ts("2026-03-14"))
    assert list(news.columns) == list(PROVIDER_NEWS_COLUMNS)
    assert news["published_at"].between(ts("2026-03-12"), ts("2026-03-14"), inclusive="left").all()
