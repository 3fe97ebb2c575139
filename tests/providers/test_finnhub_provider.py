"""FinnhubProvider through finnhub-python's real Client, over real HTTP to a local Finnhub server.

News comes from the real capture company-news_AAPL_2021-03.json. Only the rate limiter's clock
is fake (so pacing is asserted without waiting); every call is a real HTTP request.
"""

from __future__ import annotations

import os
import time
from typing import Any

import finnhub
import pandas as pd
import pytest

from resources.errors import ProviderConfigError, TransientProviderError
from resources.providers.base import FactsProvider, NewsProvider
from resources.providers.finnhub import FinnhubProvider
from resources.rate_limit import RateLimiter
from tests.fakes.finnhub_server import (
    METRIC_PATH,
    NEWS_PATH,
    FakeFinnhubServer,
    load_aapl_news,
)
from tests.fakes.http_server import FakeHTTPServer, FakeResponse, RecordedRequest
from trading_assets.schemas import PROVIDER_FACT_COLUMNS, PROVIDER_NEWS_COLUMNS

KEY = "fh-test-key-0123456789"


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server():
    with FakeFinnhubServer(api_key=KEY) as fake:
        yield fake


def provider_for(url: str, clock: FakeClock, key: str = KEY, **kwargs: Any) -> FinnhubProvider:
    kwargs.setdefault("base_delay_s", 0.0)
    limiter = RateLimiter(kwargs.pop("calls_per_minute", 60), clock=clock, sleep=clock.sleep)
    return FinnhubProvider(key, base_url=url, rate_limiter=limiter, **kwargs)


# --- news -----------------------------------------------------------------------------------------


def test_provider_satisfies_the_protocols(server: FakeFinnhubServer, clock: FakeClock) -> None:
    provider = provider_for(server.api_url, clock)
    assert isinstance(provider, NewsProvider) and isinstance(provider, FactsProvider)
    assert provider.name == "finnhub"


def test_real_capture_comes_back_exactly_for_the_window(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    start, end = ts("2021-03-08 14:30"), ts("2021-03-12 21:00")
    capture = load_aapl_news()
    want = [i for i in capture if start.timestamp() <= i["datetime"] < end.timestamp()]
    assert 0 < len(want) < len(capture)

    got = provider_for(server.api_url, clock).fetch_news(["AAPL"], start, end)

    assert list(got.columns) == list(PROVIDER_NEWS_COLUMNS)
    assert {c: str(t) for c, t in got.dtypes.items()} == PROVIDER_NEWS_COLUMNS
    assert len(got) == len(want)
    assert sorted(got["provider_id"]) == sorted(str(i["id"]) for i in want)
    assert got["published_at"].is_monotonic_increasing
    assert got["published_at"].between(start, end, inclusive="left").all()
    assert (got["provider"] == "finnhub").all()
    assert all(t == ["AAPL"] for t in got["tickers"])
    by_id = {str(i["id"]): i for i in want}
    row = got.iloc[0]
    source = by_id[row["provider_id"]]
    assert (row["headline"], row["summary"], row["source"], row["url"]) == (
        source["headline"],
        source["summary"],
        source["source"],
        source["url"],
    )
    assert row["published_at"] == pd.Timestamp(source["datetime"], unit="s", tz="UTC")

    (request,) = server.requests
    assert "//company-news" in request.raw_path  # finnhub-python's own URL joining
    assert request.path == NEWS_PATH
    assert (request.param("symbol"), request.param("from"), request.param("to")) == (
        "AAPL",
        "2021-03-07",
        "2021-03-13",
    )
    assert request.headers["X-Finnhub-Token"] == KEY
    assert "token" not in request.query and KEY not in request.raw_path  # never in a URL


def test_every_call_goes_through_the_rate_limiter(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    provider = provider_for(server.api_url, clock, calls_per_minute=30)
    got = provider.fetch_news(["AAPL", "MSFT", "NVDA"], ts("2021-03-01"), ts("2021-03-16"))
    assert len(got) == len(load_aapl_news())  # the capture is AAPL's; others are empty
    assert [r.param("symbol") for r in server.requests] == ["AAPL", "MSFT", "NVDA"]
    assert clock.sleeps == [2.0, 2.0]  # 30/min: one call every 2 s, first one free

    server.clear_log()
    server.fail_next(429)  # a retry is an HTTP call too: it must also wait for a token
    provider.fetch_facts(["AAPL"])
    assert [r.status for r in server.requests] == [429, 200]
    assert clock.sleeps == [2.0, 2.0, 2.0, 2.0]


def test_429_then_success_is_retried(server: FakeFinnhubServer, clock: FakeClock) -> None:
    server.fail_next(429, times=2)
    got = provider_for(server.api_url, clock).fetch_news(
        ["AAPL"], ts("2021-03-10"), ts("2021-03-11")
    )
    assert len(got) > 0
    assert [r.status for r in server.requests] == [429, 429, 200]


def test_persistent_401_is_a_config_error_naming_the_variable_not_the_key(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    server.fail_next(401, times=None)
    with pytest.raises(ProviderConfigError) as info:
        provider_for(server.api_url, clock).fetch_news(["AAPL"], ts("2021-03-10"), ts("2021-03-11"))
    assert "FINNHUB_API_KEY" in str(info.value)
    assert KEY not in str(info.value)
    assert len(server.requests) == 1


def test_wrong_key_is_rejected_by_the_server(server: FakeFinnhubServer, clock: FakeClock) -> None:
    with pytest.raises(ProviderConfigError, match="Finnhub rejected the key") as info:
        provider_for(server.api_url, clock, key="not-the-key").fetch_facts(["AAPL"])
    assert "not-the-key" not in str(info.value)
    assert "Invalid API key" in str(info.value)


def test_500_forever_is_transient(server: FakeFinnhubServer, clock: FakeClock) -> None:
    server.fail_next(500, times=None)
    with pytest.raises(TransientProviderError, match="after 3 attempts") as info:
        provider_for(server.api_url, clock, max_attempts=3).fetch_news(
            ["AAPL"], ts("2021-03-10"), ts("2021-03-11")
        )
    assert len(server.requests) == 3
    assert KEY not in str(info.value)


def test_other_client_errors_are_config_errors(server: FakeFinnhubServer, clock: FakeClock) -> None:
    server.fail_next(422, body={"error": "Wrong symbol format"})
    with pytest.raises(ProviderConfigError, match="HTTP 422: Wrong symbol format"):
        provider_for(server.api_url, clock).fetch_facts(["AAPL"])


def test_network_errors_never_leak_the_key(clock: FakeClock) -> None:
    dead = FakeHTTPServer().start()
    url = f"{dead.url}/api/v1"
    dead.stop()
    with pytest.raises(TransientProviderError) as info:
        provider_for(url, clock, max_attempts=2).fetch_news(
            ["AAPL"], ts("2021-03-10"), ts("2021-03-11")
        )
    chain: list[BaseException] = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    assert len(chain) >= 2
    assert "/company-news" in str(info.value)  # requests puts the URL in its message
    assert "token=" not in str(info.value)  # and the key is not in the URL
    assert all(KEY not in str(e) and KEY not in repr(e.args) for e in chain)


def test_stalled_server_times_out(clock: FakeClock) -> None:
    def stall(request: RecordedRequest) -> FakeResponse:
        time.sleep(1.0)
        return FakeResponse(200, [])

    with FakeHTTPServer({("GET", NEWS_PATH): stall}) as slow:
        started = time.monotonic()
        with pytest.raises(TransientProviderError, match="Timeout"):
            provider_for(f"{slow.url}/api/v1", clock, max_attempts=2, timeout_s=0.2).fetch_news(
                ["AAPL"], ts("2021-03-10"), ts("2021-03-11")
            )
        assert time.monotonic() - started < 1.5


def test_a_story_for_several_tickers_is_one_row_with_all_of_them(clock: FakeClock) -> None:
    shared = {
        "category": "company",
        "datetime": int(ts("2021-03-10 15:00").timestamp()),
        "headline": "Apple and Microsoft something",
        "id": 42,
        "image": "",
        "related": "AAPL,msft, GOOG",
        "source": "Reuters",
        "summary": "",
        "url": "https://example.com/42",
    }
    news = {"AAPL": [shared], "MSFT": [dict(shared, related="MSFT")]}
    with FakeFinnhubServer(news=news) as server:
        got = provider_for(server.api_url, clock).fetch_news(
            ["MSFT", "AAPL"], ts("2021-03-10"), ts("2021-03-11")
        )
    assert got["provider_id"].tolist() == ["42"]
    assert got["tickers"].tolist() == [["MSFT", "AAPL", "GOOG"]]


def test_base_url_is_per_instance_and_timeout_is_set(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    provider = provider_for(server.api_url, clock, timeout_s=3)
    assert finnhub.Client.API_URL == "https://api.finnhub.io/api/v1"
    assert finnhub.Client.DEFAULT_TIMEOUT == 10
    assert finnhub.Client(api_key="x").API_URL == "https://api.finnhub.io/api/v1"
    assert server.api_url == provider._client.API_URL
    assert provider._client.DEFAULT_TIMEOUT == 3


def test_missing_key_is_named() -> None:
    with pytest.raises(ProviderConfigError, match="FINNHUB_API_KEY"):
        FinnhubProvider("")


# --- facts ----------------------------------------------------------------------------------------


def test_quarterly_eps_becomes_eps_diluted_facts(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    got = provider_for(server.api_url, clock).fetch_facts(["aapl", "ZZZZ"])

    assert list(got.columns) == list(PROVIDER_FACT_COLUMNS)
    assert {c: str(t) for c, t in got.dtypes.items()} == PROVIDER_FACT_COLUMNS
    assert [r.param("symbol") for r in server.requests_to(METRIC_PATH)] == ["AAPL", "ZZZZ"]
    assert all(r.param("metric") == "all" for r in server.requests)
    # Only EPS is mapped: per-share/ratio series and the null point produce nothing.
    assert set(got["field"]) == {"eps_diluted"}
    assert set(got["ticker"]) == {"AAPL"}
    assert len(got) == 9
    assert (got["source"] == "finnhub").all() and (got["form"] == "finnhub-quarterly").all()
    assert got["period_end"].is_monotonic_increasing

    by_end = got.set_index("period_end")
    q3 = by_end.loc[pd.Timestamp("2025-06-28")]
    assert q3["value"] == 1.57
    assert q3["period_start"] == pd.Timestamp("2025-03-29")
    assert q3["filed"] == pd.Timestamp("2025-06-28") + pd.Timedelta(days=45)
    fiscal_q4 = by_end.loc[pd.Timestamp("2025-09-27")]  # also a fiscal-year end: 10-K deadline
    assert fiscal_q4["value"] == 1.85
    assert fiscal_q4["period_start"] == pd.Timestamp("2025-06-28")
    assert fiscal_q4["filed"] == pd.Timestamp("2025-09-27") + pd.Timedelta(days=90)
    assert (got["filed"] > got["period_end"]).all()
    assert got["period_start"].notna().all()


def test_no_financials_gives_an_empty_contract_frame(
    server: FakeFinnhubServer, clock: FakeClock
) -> None:
    got = provider_for(server.api_url, clock).fetch_facts(["ZZZZ"])
    assert got.empty
    assert {c: str(t) for c, t in got.dtypes.items()} == PROVIDER_FACT_COLUMNS


# --- the real API ---------------------------------------------------------------------------------


live_finnhub = pytest.mark.skipif(
    not os.environ.get("FINNHUB_API_KEY"), reason="needs FINNHUB_API_KEY"
)


@pytest.mark.live_api
@live_finnhub
def test_live_finnhub_news_and_facts() -> None:
    provider = FinnhubProvider(os.environ["FINNHUB_API_KEY"])
    end = pd.Timestamp.now(tz="UTC").floor("D")
    start = end - pd.Timedelta(days=7)
    news = provider.fetch_news(["AAPL"], start, end)
    assert list(news.columns) == list(PROVIDER_NEWS_COLUMNS)
    assert news["published_at"].between(start, end, inclusive="left").all()
    facts = provider.fetch_facts(["AAPL"])
    assert list(facts.columns) == list(PROVIDER_FACT_COLUMNS)
    assert (facts["field"] == "eps_diluted").any()
    assert (facts["filed"] > facts["period_end"]).all()
