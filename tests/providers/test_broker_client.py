"""BrokerResource / BrokerClient over real HTTP through alpaca-py against the embedded broker.

Real bundled bars (AAPL/MSFT, 2026-03-12), the real XNYS calendar and the shared FillModel;
faults are the paper broker's own (500, 429 with Retry-After, timeouts, dropped connections,
including "booked but the answer was lost"). Nothing of ours is patched.
"""

from __future__ import annotations

import os
import pickle
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from resources.broker import (
    BrokerClient,
    BrokerConfigError,
    BrokerRejected,
    BrokerResource,
    BrokerUnavailable,
    OrderState,
    SubmitResult,
    broker_from_env,
)
from resources.errors import ProviderConfigError, TransientProviderError
from resources.paper_broker import PaperBroker
from resources.providers.replay import ReplayProvider
from trading_assets.execution.fills import FillModel

START = "2026-03-12T14:00:30Z"  # 10:00:30 New York; the next bar starts 14:01Z
SINCE = pd.Timestamp("2026-03-12T13:00:00Z")
FAKE_KEY = f"test-key-{uuid.uuid4().hex[:8]}"  # made per run, never a real key
FAKE_SECRET = "fake-secret-Zq9xW7vU5tS3rQ1p"  # recognisable: must never be printed
ORDERS = "/v2/orders"


def ts(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


@pytest.fixture(scope="module")
def bars() -> dict[str, pd.DataFrame]:
    frame = ReplayProvider().fetch_bars(["AAPL", "MSFT"], ts("2026-03-12"), ts("2026-03-13"))
    return {str(s): g.set_index("timestamp", drop=False) for s, g in frame.groupby("ticker")}


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[PaperBroker]:
    with PaperBroker(tmp_path / "paper.sqlite", start_time=START) as running:
        yield running


def resource_for(broker: PaperBroker, **kwargs: Any) -> BrokerResource:
    kwargs.setdefault("backoff_s", 0.01)
    return BrokerResource(mode="embedded", base_url=broker.url, **kwargs)


@pytest.fixture
def client(broker: PaperBroker) -> Iterator[BrokerClient]:
    with resource_for(broker).client() as opened:
        yield opened


def prices(bars: dict[str, pd.DataFrame], symbol: str = "AAPL") -> tuple[float, float]:
    """(take_profit, stop) $5 either side of the 13:59Z close, out of reach for a while."""
    close = float(bars[symbol].loc[ts("2026-03-12 13:59"), "close"])
    return round(close + 5.0, 2), round(close - 5.0, 2)


def submit(client: BrokerClient, bars: dict[str, pd.DataFrame], cid: str, qty: int = 5):
    take_profit, stop = prices(bars)
    return client.submit_bracket(
        client_order_id=cid,
        symbol="AAPL",
        side="buy",
        qty=qty,
        take_profit=take_profit,
        stop_loss=stop,
    )


def with_id(client: BrokerClient, cid: str) -> list[OrderState]:
    return [o for o in client.orders_since(SINCE) if o.client_order_id == cid]


# --- reads ----------------------------------------------------------------------------------------


def test_clock_account_positions_quote(
    client: BrokerClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    clock = client.clock()
    assert clock.now == ts(START) and clock.is_open
    assert clock.next_close == ts("2026-03-12 20:00")  # 16:00 New York
    account = client.account()
    assert account.equity == account.cash == account.buying_power == 100_000.0
    assert account.last_equity == 100_000.0
    assert not account.trading_blocked and account.status == "ACTIVE"
    assert client.positions() == []

    quote = client.latest_quote("aapl")
    assert quote is not None and quote.symbol == "AAPL"
    last_closed = bars["AAPL"].loc[ts("2026-03-12 13:59")]  # 14:00Z bar has not closed yet
    assert quote.mid == pytest.approx(float(last_closed["close"]), rel=1e-12)
    assert quote.bid < quote.ask
    assert 0 < quote.spread_pct == pytest.approx(2e-4)  # the broker's 2 bps default
    assert quote.timestamp == ts("2026-03-12 14:00") <= clock.now
    assert client.latest_quote("NOPE") is None

    broker.set_clock("2026-03-12T20:00:30Z")  # past the 16:00 New York close
    after_close = client.clock()
    assert not after_close.is_open
    assert after_close.next_open == ts("2026-03-13 13:30")


def test_reads_are_retried(client: BrokerClient, broker: PaperBroker) -> None:
    broker.inject_fault("500", times=2, path="/v2/account")
    broker.inject_fault("drop", path="/v2/clock")
    broker.inject_fault("429", retry_after=0, path="/v2/positions")
    assert client.account().cash == 100_000.0
    assert client.clock().is_open
    assert client.positions() == []
    broker.inject_fault("500", times=10, path="/v2/account")
    with pytest.raises(BrokerUnavailable, match="4 attempts") as exhausted:
        client.account()
    assert isinstance(exhausted.value, TransientProviderError)
    assert "TRADING_BROKER_URL" in str(exhausted.value)


# --- orders -------------------------------------------------------------------------------------


def test_bracket_is_placed_and_fills(
    client: BrokerClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    take_profit, stop = prices(bars)
    result = submit(client, bars, "sig-fill", qty=10)
    assert isinstance(result, SubmitResult)
    assert (result.outcome, result.attempts) == ("submitted", 1)
    order = result.order
    assert order.client_order_id == "sig-fill" and order.symbol == "AAPL"
    assert (order.side, order.qty, order.type, order.order_class) == (
        "buy",
        10.0,
        "market",
        "bracket",
    )
    assert order.status == "new" and order.filled_qty == 0 and order.filled_avg_price is None
    assert order.submitted_at == ts(START)
    assert len(order.legs) == 2 and {leg.status for leg in order.legs} == {"held"}
    assert order.take_profit_leg is not None and order.stop_loss_leg is not None
    assert order.take_profit_leg.limit_price == take_profit
    assert order.stop_loss_leg.stop_price == stop
    assert {leg.side for leg in order.legs} == {"sell"}

    broker.advance("2min")  # the entry bar 14:01Z has closed
    expected = FillModel().entry_fill("buy", 10, bars["AAPL"].loc[ts("2026-03-12 14:01")])
    assert expected is not None
    filled = client.order_by_client_id("sig-fill")
    assert filled is not None and filled.id == order.id
    assert filled.status == "filled" and filled.filled_qty == 10
    assert filled.filled_avg_price == pytest.approx(expected.price) and expected.price > 0
    assert filled.filled_at == ts("2026-03-12 14:02")
    assert {leg.status for leg in filled.legs} == {"new"}
    (position,) = client.positions()
    assert (position.symbol, position.qty) == ("AAPL", 10.0)
    assert position.avg_entry_price == pytest.approx(expected.price)
    assert position.current_price is not None and position.current_price > 0
    assert client.order_by_client_id("never-sent") is None


def test_same_client_order_id_is_not_sent_twice(
    client: BrokerClient, bars: dict[str, pd.DataFrame]
) -> None:
    first = submit(client, bars, "sig-dup")
    again = submit(client, bars, "sig-dup")
    assert (again.outcome, again.attempts) == ("already_existed", 0)
    assert again.order.id == first.order.id
    (only,) = with_id(client, "sig-dup")
    assert only.id == first.order.id and len(only.legs) == 2


def test_racing_submitters_place_one_order(
    broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    """Two runs with the same id: both first POSTs are rate-limited, both wait the same
    Retry-After, then race look-up and POST; the loser finds the order (by look-up or via the
    broker's 422 duplicate answer) and reports it as already existing."""
    broker.inject_fault("429", times=2, path=ORDERS, retry_after=1)
    clients = [resource_for(broker).client() for _ in range(2)]
    results: list[SubmitResult] = []
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def run(c: BrokerClient) -> None:
        start.wait()
        try:
            results.append(submit(c, bars, "sig-race"))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sorted(r.outcome for r in results) == ["already_existed", "submitted"]
    assert len({r.order.id for r in results}) == 1
    assert sorted(r.attempts for r in results)[1] == 2  # the winner: 429, then the POST
    assert len(with_id(clients[0], "sig-race")) == 1


@pytest.mark.parametrize(
    ("fault", "options", "outcome", "attempts"),
    [
        ("500", {}, "submitted", 2),  # refused before booking: the second POST places it
        ("429", {"retry_after": 0}, "submitted", 2),
        ("drop", {"after_processing": True}, "submitted", 1),  # booked, answer lost: found
        ("timeout", {"after_processing": True, "seconds": 3.0}, "submitted", 1),
    ],
)
def test_faults_on_submit_end_with_exactly_one_order(
    broker: PaperBroker,
    bars: dict[str, pd.DataFrame],
    fault: str,
    options: dict[str, Any],
    outcome: str,
    attempts: int,
) -> None:
    cid = f"sig-{fault}"
    broker.inject_fault(fault, path=ORDERS, **options)
    with resource_for(broker, timeout_s=0.5).client() as client:
        started = time.monotonic()
        result = submit(client, bars, cid)
        elapsed = time.monotonic() - started
        assert (result.outcome, result.attempts) == (outcome, attempts)
        assert result.order.client_order_id == cid and len(result.order.legs) == 2
        (only,) = with_id(client, cid)
        assert only.id == result.order.id
    if fault == "timeout":
        assert 0.5 <= elapsed < 2.5  # our timeout fired; the broker held the socket for 3 s


def test_retry_after_is_honoured(broker: PaperBroker, bars: dict[str, pd.DataFrame]) -> None:
    broker.inject_fault("429", path=ORDERS, retry_after=1)
    with resource_for(broker).client() as client:  # backoff 0.01 s unless the server says
        started = time.monotonic()
        result = submit(client, bars, "sig-retry-after")
        assert time.monotonic() - started >= 0.95
    assert (result.outcome, result.attempts) == ("submitted", 2)


def test_exhausted_attempts_raise_and_place_nothing(
    broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    broker.inject_fault("500", times=5, path=ORDERS)
    with resource_for(broker, max_attempts=3).client() as client:
        with pytest.raises(BrokerUnavailable) as failed:
            submit(client, bars, "sig-down")
        text = str(failed.value)
        assert "sig-down" in text and "3 POST attempt(s)" in text and "HTTP 500" in text
        assert "re-running the step is safe" in text
        broker.clear_faults()
        assert with_id(client, "sig-down") == []
        assert client.order_by_client_id("sig-down") is None
        assert client.positions() == []


def test_rejections(client: BrokerClient, bars: dict[str, pd.DataFrame]) -> None:
    take_profit, stop = prices(bars)
    with pytest.raises(BrokerRejected) as poor:
        submit(client, bars, "sig-huge", qty=1_000_000)
    # Alpaca (and the paper broker) answer insufficient buying power with 403 code 40310000:
    # an order refusal, not a key problem.
    assert poor.value.status == 403
    assert poor.value.message == "insufficient buying power"
    assert "insufficient buying power" in str(poor.value) and "sig-huge" in str(poor.value)
    with pytest.raises(BrokerRejected) as inverted:
        client.submit_bracket(
            client_order_id="sig-inverted",
            symbol="AAPL",
            side="buy",
            qty=1,
            take_profit=stop,
            stop_loss=take_profit,
        )
    assert inverted.value.status == 422 and "take_profit" in inverted.value.message
    with pytest.raises(BrokerRejected, match="not found") as unknown:
        client.submit_bracket(
            client_order_id="sig-unknown",
            symbol="NOPE",
            side="buy",
            qty=1,
            take_profit=10.0,
            stop_loss=5.0,
        )
    assert unknown.value.status == 422
    assert client.orders_since(SINCE) == []
    copy = pickle.loads(pickle.dumps(poor.value))
    assert (copy.status, copy.message, str(copy)) == (403, poor.value.message, str(poor.value))


def test_orders_since_pages_oldest_first(
    broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    """Five orders, two sharing each of the first two timestamps, paged three at a time."""
    with resource_for(broker).client() as setup:
        for i, step in enumerate([None, None, "1s", None, "1s"]):
            if step:
                broker.advance(step)
            submit(setup, bars, f"sig-page-{i}", qty=1)
    # alpaca-py clients built by hand: BrokerClient tames them itself
    trading = TradingClient("PKANY", "any", url_override=broker.url)
    data = StockHistoricalDataClient("PKANY", "any", url_override=broker.url)
    paged = BrokerClient(trading, data, backoff_s=0.01, page_size=3)
    assert trading._retry == 0
    orders = paged.orders_since(SINCE)
    assert [o.client_order_id for o in orders] == [f"sig-page-{i}" for i in range(5)]
    assert all(len(o.legs) == 2 for o in orders)  # legs nested, not listed on their own
    stamps = [o.submitted_at for o in orders]
    assert stamps == sorted(stamps) and stamps[0] == ts(START)
    assert [o.client_order_id for o in paged.orders_since(ts(START))] == [
        "sig-page-2",
        "sig-page-3",
        "sig-page-4",
    ]  # strictly after
    with pytest.raises(ValueError, match="tz-aware"):
        paged.orders_since(pd.Timestamp("2026-03-12 13:00"))


def test_cancel_all_and_close_all_positions(
    client: BrokerClient, broker: PaperBroker, bars: dict[str, pd.DataFrame]
) -> None:
    submit(client, bars, "sig-hold", qty=4)
    broker.advance("2min")
    (position,) = client.positions()
    assert position.qty == 4.0
    closing = client.close_all_positions()  # cancels the bracket legs first, then sells
    assert [(o.symbol, o.side, o.qty, o.order_class) for o in closing] == [
        ("AAPL", "sell", 4.0, "simple")
    ]
    broker.advance("2min")
    assert client.positions() == []
    entry = client.order_by_client_id("sig-hold")
    assert entry is not None and {leg.status for leg in entry.legs} == {"canceled"}
    sold = client.order_by_client_id(closing[0].client_order_id)
    assert sold is not None and sold.status == "filled"
    assert client.close_all_positions() == []

    submit(client, bars, "sig-open-1", qty=1)
    submit(client, bars, "sig-open-2", qty=1)
    assert client.cancel_all_orders() == 2
    for cid in ("sig-open-1", "sig-open-2"):
        order = client.order_by_client_id(cid)
        assert order is not None and order.status == "canceled"
        assert {leg.status for leg in order.legs} == {"canceled"}
    assert client.cancel_all_orders() == 0


# --- configuration and secrets ------------------------------------------------------------------


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        assert FAKE_SECRET not in text and FAKE_KEY not in text


def test_resource_validation_never_shows_secrets() -> None:
    with pytest.raises(BrokerConfigError) as no_keys:
        BrokerResource(mode="paper").client()
    assert "ALPACA_API_KEY and ALPACA_SECRET_KEY" in str(no_keys.value)
    assert isinstance(no_keys.value, ProviderConfigError)

    live = BrokerResource(mode="live", api_key=FAKE_KEY, secret_key=FAKE_SECRET)
    with pytest.raises(BrokerConfigError, match="TRADING_ALLOW_LIVE") as refused:
        live.client()
    assert live.describe().startswith("Alpaca LIVE")
    assert "api.alpaca.markets" in live.describe()
    assert_no_secret(str(refused.value), repr(refused.value), live.describe(), repr(live))

    paper = BrokerResource(mode="paper", api_key=FAKE_KEY, secret_key=FAKE_SECRET)
    assert paper.describe() == "Alpaca paper (https://paper-api.alpaca.markets)"
    with paper.client() as built:  # no request is made; only the wiring is checked
        assert_no_secret(repr(built), paper.describe(), repr(paper), str(paper))
    allowed = BrokerResource(
        mode="live", api_key=FAKE_KEY, secret_key=FAKE_SECRET, allow_live=True
    ).client()
    assert "LIVE" in allowed.label and allowed._trading._base_url == "https://api.alpaca.markets"

    assert BrokerResource().describe() == "embedded paper broker at http://127.0.0.1:8765"
    with pytest.raises(BrokerConfigError, match="TRADING_BROKER_MODE"):
        BrokerResource(mode="papr").client()
    with pytest.raises(BrokerConfigError, match="http"):
        BrokerResource(base_url="127.0.0.1:8765").client()
    with pytest.raises(BrokerConfigError, match="feed"):
        BrokerResource(feed="nasdaq").client()


def test_rejected_keys_are_a_config_error(tmp_path: Path) -> None:
    with PaperBroker(
        tmp_path / "keyed.sqlite", start_time=START, api_key="PKRIGHT", secret_key="right"
    ) as keyed:
        wrong = resource_for(keyed, api_key=FAKE_KEY, secret_key=FAKE_SECRET)
        with wrong.client() as client, pytest.raises(BrokerConfigError, match="401") as denied:
            client.account()
        assert "ALPACA_API_KEY" in str(denied.value)
        assert_no_secret(str(denied.value), repr(denied.value), wrong.describe(), repr(wrong))
        with pytest.raises(BrokerConfigError):  # placeholder keys are refused there too
            resource_for(keyed).client().clock()
        right = resource_for(keyed, api_key="PKRIGHT", secret_key="right")
        assert right.client().clock().is_open


def test_broker_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in (
        "TRADING_BROKER_MODE",
        "TRADING_BROKER_URL",
        "TRADING_BROKER_DATA_URL",
        "TRADING_ALLOW_LIVE",
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "ALPACA_DATA_FEED",
    ):
        monkeypatch.delenv(name, raising=False)
    default = broker_from_env()
    assert (default.mode, default.api_key, default.allow_live) == ("embedded", "", False)
    assert default.describe() == "embedded paper broker at http://127.0.0.1:8765"
    for value, expected in (("true", True), ("1", True), ("yes", True), ("on", False), ("", False)):
        monkeypatch.setenv("TRADING_ALLOW_LIVE", value)
        assert broker_from_env().allow_live is expected

    with PaperBroker(
        tmp_path / "env.sqlite", start_time=START, api_key=FAKE_KEY, secret_key=FAKE_SECRET
    ) as keyed:
        monkeypatch.setenv("TRADING_BROKER_URL", keyed.url)
        monkeypatch.setenv("ALPACA_API_KEY", FAKE_KEY)
        monkeypatch.setenv("ALPACA_SECRET_KEY", FAKE_SECRET)
        resource = broker_from_env()
        assert isinstance(resource.secret_key, dg.EnvVar)  # only the name is configured
        assert_no_secret(repr(resource), resource.describe())
        # outside a run the EnvVar is resolved by client(); inside one by Dagster
        assert resource.client().account().cash == 100_000.0

        @dg.asset  # `context` unannotated: Dagster cannot resolve string annotations on it
        def broker_probe(context, broker: BrokerResource) -> None:  # type: ignore[no-untyped-def]
            with broker.client() as client:
                context.add_output_metadata(
                    {"equity": client.account().equity, "broker": broker.describe()}
                )

        run = dg.materialize([broker_probe], resources={"broker": resource})
        assert run.success
        (mat,) = run.asset_materializations_for_node("broker_probe")
        meta = {k: v.value for k, v in mat.metadata.items()}
        assert meta["equity"] == 100_000.0 and meta["broker"].startswith("embedded")
        assert_no_secret(str(meta))


@pytest.mark.live_api
@pytest.mark.skipif(
    not (os.environ.get("ALPACA_API_KEY") and os.environ.get("ALPACA_SECRET_KEY")),
    reason="needs ALPACA_API_KEY and ALPACA_SECRET_KEY (paper keys)",
)
def test_live_alpaca_paper_account_reads() -> None:
    """Alpaca paper trading with real keys: read-only (no order is placed)."""
    resource = BrokerResource(
        mode="paper",
        api_key=os.environ["ALPACA_API_KEY"],
        secret_key=os.environ["ALPACA_SECRET_KEY"],
    )
    with resource.client() as client:
        clock = client.clock()
        assert clock.next_open > clock.now - pd.Timedelta(days=7)
        account = client.account()
        assert account.equity >= 0 and account.status
        assert client.order_by_client_id("sig-never-sent-" + "0" * 8) is None
        quote = client.latest_quote("AAPL")
        assert quote is None or quote.ask >= quote.bid > 0
