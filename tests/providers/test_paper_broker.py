"""The embedded paper broker through alpaca-py's real clients over HTTP on 127.0.0.1.

Real bundled bars (AAPL/MSFT, 2026-03-12), the real XNYS calendar, the shared FillModel; the
expected numbers are computed from the bars with pandas, independently of the broker.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderClass, OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import MarketOrderRequest, StopLossRequest, TakeProfitRequest
from requests.adapters import HTTPAdapter

from resources.paper_broker import PaperBroker
from resources.paper_broker.engine import ApiError
from resources.providers.replay import ReplayProvider
from trading_assets.execution.fills import FillModel

MODEL = FillModel()
START = "2026-03-12T14:00:30Z"  # 10:00:30 New York: the next bar is 14:01Z
KEY, SECRET = "PKPAPER", "paper-secret"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    frame = ReplayProvider().fetch_bars(["AAPL", "MSFT"], ts("2026-03-12"), ts("2026-03-13"))
    return {s: g.set_index("timestamp", drop=False) for s, g in frame.groupby("ticker")}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PaperBroker]:
    with PaperBroker(tmp_path / "paper.sqlite", start_time=START) as running:
        yield running


@pytest.fixture
def client(broker: PaperBroker) -> TradingClient:
    trading = TradingClient(KEY, SECRET, url_override=broker.url)
    trading._retry_wait = 0  # alpaca-py sleeps 3 s between 429 retries; keep tests fast
    return trading


def bracket(
    symbol: str, qty: float, take_profit: float, stop: float, cid: str
) -> MarketOrderRequest:
    return MarketOrderRequest(
        symbol=symbol,
        qty=qty,
        side=OrderSide.BUY,
        time_in_force=TimeInForce.DAY,
        order_class=OrderClass.BRACKET,
        client_order_id=cid,
        take_profit=TakeProfitRequest(limit_price=take_profit),
        stop_loss=StopLossRequest(stop_price=stop),
    )


def later_window(frame: pd.DataFrame) -> pd.DataFrame:
    """The 30 bars after the entry bar 14:01Z."""
    return frame[(frame.index >= ts("2026-03-12 14:02")) & (frame.index < ts("2026-03-12 14:32"))]


def test_account_and_clock(client: TradingClient, broker: PaperBroker) -> None:
    account = client.get_account()
    assert account.cash == "100000" and account.equity == "100000"
    assert account.status.value == "ACTIVE"
    clock = client.get_clock()
    assert clock.is_open
    assert clock.timestamp == ts(START)
    assert clock.next_close == ts("2026-03-12 20:00")  # 16:00 New York (EDT since 2026-03-08)
    broker.set_clock("2026-03-14T15:00:00Z")  # a Saturday
    clock = client.get_clock()
    assert not clock.is_open
    assert clock.next_open == ts("2026-03-16 13:30")
    with pytest.raises(ApiError, match="cannot go back"):
        broker.set_clock("2026-03-13T15:00:00Z")  # time never runs backwards


def test_bracket_entry_and_take_profit(
    client: TradingClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    aapl = bars["AAPL"]
    window = later_window(aapl)
    take_profit = round(float(window["high"].max()) - 0.005, 3)
    hit = window[window["high"] >= take_profit].iloc[0]
    stop = round(float(aapl.loc[: hit.name, "low"].min()) - 2.0, 2)  # not reached before
    order = client.submit_order(bracket("AAPL", 10, take_profit, stop, "sig-tp"))
    assert order.status == OrderStatus.NEW and order.order_class == OrderClass.BRACKET
    assert order.legs is not None and [leg.status for leg in order.legs] == ["held", "held"]
    assert {leg.type.value for leg in order.legs} == {"limit", "stop"}

    broker.set_clock("2026-03-12T14:02:00Z")  # the entry bar 14:01Z has closed
    entry_bar = aapl.loc[ts("2026-03-12 14:01")]
    expected = MODEL.entry_fill("buy", 10, entry_bar)
    assert expected is not None
    filled = client.get_order_by_client_id("sig-tp")
    assert filled.status == OrderStatus.FILLED
    assert float(filled.filled_avg_price) == expected.price == entry_bar["open"] * 1.0005
    assert filled.filled_at == ts("2026-03-12 14:02")
    assert [leg.status for leg in filled.legs or []] == ["new", "new"]
    account = client.get_account()
    assert float(account.cash) == pytest.approx(100_000 - 10 * expected.price - 0.99, abs=1e-9)
    (position,) = client.get_all_positions()
    assert position.symbol == "AAPL" and position.qty == "10"
    assert float(position.avg_entry_price) == expected.price
    assert position.qty_available == "0"  # held by the bracket legs, as on Alpaca

    broker.set_clock(hit.name + pd.Timedelta(minutes=1))
    done = client.get_order_by_client_id("sig-tp")
    legs = {leg.type.value: leg for leg in done.legs or []}
    assert legs["limit"].status == OrderStatus.FILLED
    assert legs["stop"].status == OrderStatus.CANCELED
    assert float(legs["limit"].filled_avg_price) == max(hit["open"], take_profit)
    assert client.get_all_positions() == []
    exit_price = max(hit["open"], take_profit)
    assert float(client.get_account().cash) == pytest.approx(
        100_000 - 10 * expected.price - 0.99 + 10 * exit_price - 0.99, abs=1e-9
    )


def test_stop_leg(
    client: TradingClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    msft = bars["MSFT"]
    window = later_window(msft)
    stop = round(float(window["low"].min()) + 0.005, 3)
    hit = window[window["low"] <= stop].iloc[0]
    take_profit = round(float(msft.loc[: hit.name, "high"].max()) + 2.0, 2)
    client.submit_order(bracket("MSFT", 7, take_profit, stop, "sig-stop"))
    broker.set_clock(hit.name + pd.Timedelta(minutes=1))
    done = client.get_order_by_client_id("sig-stop")
    legs = {leg.type.value: leg for leg in done.legs or []}
    assert legs["stop"].status == OrderStatus.FILLED
    assert legs["limit"].status == OrderStatus.CANCELED
    expected = MODEL.bracket_exit("buy", stop, take_profit, [hit], qty=7)
    assert expected is not None and expected.reason == "stop"
    assert float(legs["stop"].filled_avg_price) == expected.price
    assert expected.price == pytest.approx(min(hit["open"], stop) * 0.9995)


def test_duplicate_client_order_id_is_refused(client: TradingClient) -> None:
    first = client.submit_order(bracket("AAPL", 1, 400.0, 200.0, "sig-dup"))
    with pytest.raises(APIError) as refused:
        client.submit_order(bracket("AAPL", 1, 400.0, 200.0, "sig-dup"))
    assert refused.value.status_code == 422
    assert refused.value.code == 40010001
    assert refused.value.message == "client_order_id must be unique"
    assert client.get_order_by_client_id("sig-dup").id == first.id
    assert len(client.get_orders()) == 3  # the parent and its two legs, nothing else


def test_latest_quote_and_bars(broker: PaperBroker, bars: dict[str, pd.DataFrame]) -> None:
    data = StockHistoricalDataClient(KEY, SECRET, url_override=broker.url)
    quote = data.get_stock_latest_quote(StockLatestQuoteRequest(symbol_or_symbols="AAPL"))["AAPL"]
    last = bars["AAPL"].loc[ts("2026-03-12 13:59")]  # the latest bar closed by 14:00:30
    half = last["close"] * 2.0 / 20_000
    assert quote.bid_price == pytest.approx(last["close"] - half)
    assert quote.ask_price == pytest.approx(last["close"] + half)
    got = data.get_stock_bars(
        StockBarsRequest(
            symbol_or_symbols=["AAPL", "MSFT"],
            timeframe=TimeFrame.Minute,
            start=ts("2026-03-12 13:30").to_pydatetime(),
        )
    ).df
    assert len(got.loc["AAPL"]) == 30  # 13:30..13:59: nothing from the simulated future
    assert got.loc["AAPL"]["close"].iloc[-1] == last["close"]


def test_state_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "paper.sqlite"
    with PaperBroker(db, start_time=START) as first:
        client = TradingClient(KEY, SECRET, url_override=first.url)
        order = client.submit_order(bracket("AAPL", 5, 400.0, 200.0, "sig-restart"))
        first.set_clock("2026-03-12T14:05:00Z")
        cash = client.get_account().cash
    with PaperBroker(db, start_time="2026-03-20T14:00:00Z") as second:  # start_time ignored
        client = TradingClient(KEY, SECRET, url_override=second.url)
        assert second.now == ts("2026-03-12 14:05")
        assert client.get_account().cash == cash
        assert client.get_order_by_client_id("sig-restart").id == order.id
        assert [p.qty for p in client.get_all_positions()] == ["5"]
        with pytest.raises(APIError) as refused:
            client.submit_order(bracket("AAPL", 5, 400.0, 200.0, "sig-restart"))
        assert refused.value.status_code == 422


def test_close_all_positions_and_flat_at_close(
    client: TradingClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    client.submit_order(bracket("AAPL", 4, 400.0, 200.0, "sig-close"))
    broker.set_clock("2026-03-12T14:03:00Z")
    (held,) = client.close_all_positions()
    assert held.status == 403  # shares held by the bracket legs, as Alpaca answers
    (closing,) = client.close_all_positions(cancel_orders=True)
    assert closing.status == 200 and closing.body.side == OrderSide.SELL
    broker.set_clock("2026-03-12T14:05:00Z")
    assert client.get_all_positions() == []
    sold = client.get_order_by_id(closing.order_id or closing.body.id)
    expected = MODEL.entry_fill("sell", 4, bars["AAPL"].loc[ts("2026-03-12 14:03")])
    assert expected is not None and float(sold.filled_avg_price) == expected.price
    # flat at the close: a position left open is sold at the session's last bar close
    client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    broker.set_clock("2026-03-12T21:00:00Z")
    assert client.get_all_positions() == []
    last = bars["AAPL"].iloc[-1]
    keys = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    fills = requests.get(f"{broker.url}/admin/fills", headers=keys, timeout=5).json()
    assert fills[-1]["reason"] == "close"
    assert fills[-1]["price"] == pytest.approx(last["close"] * 0.9995)
    # the next day's daily-loss base is the equity at that close, not the opening cash
    account = client.get_account()
    assert float(account.last_equity) == pytest.approx(float(account.equity))
    assert float(account.last_equity) < 100_000.0  # commissions and slippage were paid


def test_fault_500_and_429(client: TradingClient, broker: PaperBroker) -> None:
    broker.inject_fault(500)
    with pytest.raises(APIError) as failed:
        client.get_account()
    assert failed.value.status_code == 500
    broker.inject_fault(429, times=1)
    assert client.get_account().cash == "100000"  # alpaca-py retried the 429 by itself
    broker.inject_fault(429, times=5)
    with pytest.raises(APIError) as limited:
        client.get_account()
    assert limited.value.status_code == 429  # after 3 retries alpaca-py gives up
    broker.clear_faults()
    raw = requests.get(
        f"{broker.url}/v2/clock",
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )
    assert raw.status_code == 200
    broker.inject_fault("429", retry_after=7)
    raw = requests.get(
        f"{broker.url}/v2/clock",
        headers={"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET},
        timeout=5,
    )
    assert raw.status_code == 429 and raw.headers["Retry-After"] == "7"


class _Timeout(HTTPAdapter):
    """alpaca-py sets no timeout of its own; this is how a caller gives it one."""

    def send(self, request, **kwargs):  # type: ignore[no-untyped-def, override]
        kwargs["timeout"] = 0.3
        return super().send(request, **kwargs)


def test_fault_timeout_and_dropped_connection(client: TradingClient, broker: PaperBroker) -> None:
    broker.inject_fault("timeout", seconds=2.0)
    client._session.mount("http://", _Timeout())
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get_account()
    client._session.mount("http://", HTTPAdapter())
    broker.inject_fault("timeout", seconds=0.2)  # no client timeout: the server hangs up
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_clock()
    broker.inject_fault("drop")
    with pytest.raises(requests.exceptions.ConnectionError):
        client.get_clock()
    assert client.get_clock().is_open  # service resumes


def test_lost_response_then_retry_finds_the_original(
    client: TradingClient, broker: PaperBroker
) -> None:
    """The exactly-once path: the order is booked, the response is lost, the retry is refused
    and the look-up by client order id returns the booked order."""
    broker.inject_fault("drop", path="/v2/orders", after_processing=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(bracket("AAPL", 2, 400.0, 200.0, "sig-lost"))
    with pytest.raises(APIError) as refused:
        client.submit_order(bracket("AAPL", 2, 400.0, 200.0, "sig-lost"))
    assert refused.value.status_code == 422
    assert client.get_order_by_client_id("sig-lost").qty == "2"


def test_auth_and_admin_http(broker: PaperBroker) -> None:
    assert requests.get(f"{broker.url}/v2/account", timeout=5).status_code == 401
    refused = requests.post(f"{broker.url}/admin/clock", json={"advance_seconds": 90}, timeout=5)
    assert refused.status_code == 401 and broker.now == ts(START)  # no keys, no clock moves
    headers = {"APCA-API-KEY-ID": "x", "APCA-API-SECRET-KEY": "y"}
    moved = requests.post(
        f"{broker.url}/admin/clock", json={"advance_seconds": 90}, headers=headers, timeout=5
    ).json()
    assert pd.Timestamp(moved["now"]) == ts(START) + pd.Timedelta(seconds=90)
    requests.post(
        f"{broker.url}/admin/faults", json={"kind": "500", "times": 2}, headers=headers, timeout=5
    )
    codes = [
        requests.get(f"{broker.url}/v2/clock", headers=headers, timeout=5).status_code
        for _ in range(3)
    ]
    assert codes == [500, 500, 200]


def test_admin_needs_the_brokers_own_keys(tmp_path: Path) -> None:
    with PaperBroker(
        tmp_path / "keyed.sqlite", start_time=START, api_key=KEY, secret_key=SECRET
    ) as keyed:
        wrong = {"APCA-API-KEY-ID": "x", "APCA-API-SECRET-KEY": "y"}
        right = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
        chaos = {"rate": 1.0, "seed": 1}
        url = f"{keyed.url}/admin/chaos"
        assert requests.post(url, json=chaos, headers=wrong, timeout=5).status_code == 401
        assert requests.get(f"{keyed.url}/v2/clock", headers=right, timeout=5).status_code == 200
        assert requests.post(url, json=chaos, headers=right, timeout=5).status_code == 200
        assert requests.get(f"{keyed.url}/v2/clock", headers=right, timeout=5).status_code >= 429


def _outcomes(broker: PaperBroker, n: int) -> list[str]:
    """What `n` GET /v2/clock calls got: a status code, or "no answer"."""
    headers = {"APCA-API-KEY-ID": KEY, "APCA-API-SECRET-KEY": SECRET}
    out = []
    for _ in range(n):
        try:
            out.append(
                str(
                    requests.get(f"{broker.url}/v2/clock", headers=headers, timeout=0.3).status_code
                )
            )
        except requests.exceptions.RequestException:
            out.append("no answer")
    return out


def test_random_faults_are_seeded_and_counted(tmp_path: Path) -> None:
    runs = []
    for name in ("a", "b"):
        with PaperBroker(tmp_path / f"{name}.sqlite", start_time=START) as fresh:
            fresh.inject_chaos(0.3, seed=11, seconds=0.5)
            runs.append((_outcomes(fresh, 200), fresh.fault_stats()))
    (first, stats), (second, _) = runs
    assert first == second  # one seed, one sequence of requests: the same faults
    failed = sum(1 for o in first if o != "200")
    assert stats["requests"] == 200 and stats["faults"] == failed
    assert 0.2 <= failed / 200 <= 0.4
    assert {"500", "429", "timeout", "drop", "lost"} <= set(stats)
    assert {"500", "429", "no answer"} == set(first) - {"200"}


def test_lost_answers_are_applied_and_method_faults_target(
    client: TradingClient, broker: PaperBroker
) -> None:
    """A "lost" random fault applies the request first: the order is booked unanswered. A
    one-off fault can target a method, so a GET of the same path passes."""
    broker.inject_chaos(1.0, seed=3, kinds=("lost",))
    with pytest.raises(requests.exceptions.ConnectionError):
        client.submit_order(bracket("AAPL", 1, 400.0, 200.0, "sig-chaos"))
    broker.clear_faults()
    assert client.get_order_by_client_id("sig-chaos").qty == "1"
    broker.inject_fault("500", 1, path="/v2/orders", method="POST")
    assert "sig-chaos" in [o.client_order_id for o in client.get_orders()]
    with pytest.raises(APIError) as failed:
        client.submit_order(bracket("AAPL", 1, 400.0, 200.0, "sig-other"))
    assert failed.value.status_code == 500
    assert broker.fault_stats()["lost"] == 1 and broker.fault_stats()["500"] == 1
